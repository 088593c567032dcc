"""RNN/GRU/LSTM unrolled before onnx2tf: tiny graphs give ONNX Runtime's outputs (or, under
layout=1, which ONNX Runtime lacks, ONNX's reference implementation's) before and after."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgekit.backends.tflite import _rewrites_rnn  # noqa: E402

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
SEQ, BATCH, IN, HID = 4, 3, 2, 5


def _model(op: str, dirs: int = 1, consts: bool = True, extras: tuple = (), layout: int = 0, **attrs):
    """A one-node graph of ``op``: X fed, W/R/B (and ``extras``: sequence_lens, initial_h,
    initial_c, P) as initializers when ``consts``, else as inputs too. Returns (model, feeds)."""
    rng = np.random.default_rng(len(op) + dirs + 7 * len(extras) + layout)
    gates = _GATES[op]
    xshape = [SEQ, BATCH, IN] if layout == 0 else [BATCH, SEQ, IN]
    hshape = [dirs, BATCH, HID] if layout == 0 else [BATCH, dirs, HID]
    values = {"X": rng.standard_normal(xshape).astype(np.float32),
              "W": rng.standard_normal([dirs, gates * HID, IN]).astype(np.float32) * 0.5,
              "R": rng.standard_normal([dirs, gates * HID, HID]).astype(np.float32) * 0.5,
              "B": rng.standard_normal([dirs, 2 * gates * HID]).astype(np.float32) * 0.5,
              "sequence_lens": np.array([SEQ, 1, 3][:BATCH], np.int32),
              "initial_h": rng.standard_normal(hshape).astype(np.float32),
              "initial_c": rng.standard_normal(hshape).astype(np.float32),
              "P": rng.standard_normal([dirs, 3 * HID]).astype(np.float32)}
    order = ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"]
    used = {"X", "W", "R", "B", *extras}
    ins = [n if n in used else "" for n in order]
    while not ins[-1]:
        ins.pop()
    outs = ["Y", "Y_h", "Y_c"][: 3 if op == "LSTM" else 2]
    y_shape = [SEQ, dirs, BATCH, HID] if layout == 0 else [BATCH, SEQ, dirs, HID]
    out_shapes = [y_shape, hshape, hshape]
    node = helper.make_node(op, ins, outs, hidden_size=HID, layout=layout,
                            direction="bidirectional" if dirs == 2 else attrs.pop("direction", "forward"), **attrs)
    fed = [n for n in ins if n and (n == "X" or not consts)]
    inits = [numpy_helper.from_array(values[n], n) for n in ins if n and n not in fed]
    graph = helper.make_graph(
        [node], op,
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(values[n].dtype), values[n].shape)
         for n in fed],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in zip(outs, out_shapes, strict=False)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    return model, {n: values[n] for n in fed}


def _run(model, feeds, reference: bool = False):
    if reference:
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, feeds)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _check(model, feeds, reference: bool = False) -> None:
    before = _run(model, feeds, reference)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    rewrite, note = _rewrites_rnn.REWRITES[0]
    assert rewrite(onnx, rewritten) == 1, note(0)
    assert not {n.op_type for n in rewritten.graph.node} & set(_GATES)
    onnx.checker.check_model(rewritten, full_check=True)
    after = _run(rewritten, feeds)
    assert len(after) == len(before)
    for a, b in zip(after, before, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions_with_biases_and_initial_state(op, direction):
    extras = ("initial_h", "initial_c") if op == "LSTM" else ("initial_h",)
    dirs = 2 if direction == "bidirectional" else 1
    _check(*_model(op, dirs, extras=extras, **({} if dirs == 2 else {"direction": direction})))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_weights_fed_at_run_time(op):
    _check(*_model(op, 2, consts=False, extras=("initial_h",)))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("consts", [True, False])
def test_sequence_lens_keep_state_and_zero_y(op, consts):
    """Past a batch entry's length Y is 0 and h is kept; the reverse direction starts at the last
    valid step of each entry."""
    _check(*_model(op, 2, consts=consts, extras=("sequence_lens", "initial_h")))


def test_gru_linear_before_reset():
    _check(*_model("GRU", 2, consts=False, linear_before_reset=1))
    _check(*_model("GRU", 1, linear_before_reset=1, direction="reverse"))


def test_lstm_peepholes_and_sequence_lens():
    _check(*_model("LSTM", 2, extras=("sequence_lens", "initial_h", "initial_c", "P")))
    _check(*_model("LSTM", 1, consts=False, extras=("initial_c", "P")))


def test_activations_given():
    _check(*_model("RNN", 2, activations=["Relu", "Sigmoid"]))
    _check(*_model("GRU", 1, activations=["Sigmoid", "Relu"]))
    _check(*_model("LSTM", 1, activations=["Sigmoid", "Tanh", "Relu"]))


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
def test_layout_batch_first(op):
    """layout=1 (ONNX Runtime lacks it: the reference implementation gives the outputs)."""
    extras = ("initial_h", "initial_c") if op == "LSTM" else ("initial_h",)
    _check(*_model(op, 2 if op != "LSTM" else 1, extras=extras, layout=1), reference=True)


@pytest.mark.parametrize("attrs", [{"clip": 1.0}, {"activations": ["Affine"], "activation_alpha": [0.5],
                                                   "activation_beta": [0.1]}])
def test_left_alone(attrs):
    model, _ = _model("RNN", **attrs)
    rewrite, _ = _rewrites_rnn.REWRITES[0]
    assert rewrite(onnx, model) == 0
    assert model.graph.node[0].op_type == "RNN"
