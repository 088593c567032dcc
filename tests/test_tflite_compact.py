"""LiteRT compaction: a quantized tiny BERT, compacted, computes what it computed before, in the
real LiteRT runtime, and is smaller; its buffers stay 16-byte aligned; its signature is intact."""

import shutil

import numpy as np
import pytest

import edgekit

pytest.importorskip("ai_edge_quantizer")


@pytest.fixture(scope="module")
def quantized(tiny_bert, tmp_path_factory):
    """A dynamic-range int8 tiny BERT as ai-edge-quantizer writes it (not compacted)."""
    from ai_edge_quantizer import quantizer, recipe

    tmp = tmp_path_factory.mktemp("compact")
    fp32 = edgekit.convert(edgekit.load(tiny_bert, dims={"sequence": 16}), targets=["tflite"], out=tmp / "fp32")
    dest = tmp / "q.tflite"
    quantizer.Quantizer(str(fp32.artifacts[0].path), recipe.dynamic_wi8_afp32()).quantize().export_model(str(dest))
    return dest


def _run(path):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    key, sig = next(iter(interp.get_signature_list().items()))
    runner = interp.get_signature_runner(key)
    rng = np.random.default_rng(0)
    details = runner.get_input_details()
    ids, *rest = sig["inputs"]  # input_ids, then token types and the attention mask: ones are valid for both
    feeds = {ids: rng.integers(1, 20, details[ids]["shape"]).astype(details[ids]["dtype"])}
    feeds |= {n: np.ones(details[n]["shape"], details[n]["dtype"]) for n in rest}
    return interp.get_signature_list(), runner(**feeds)


def _model(path):
    from ai_edge_litert import schema_py_generated as S

    raw = path.read_bytes()

    return S.ModelT.InitFromObj(S.Model.GetRootAs(raw, 0)), raw


def test_compact_shrinks_and_computes_the_same(quantized, tmp_path):
    from ai_edge_litert import schema_py_generated as S

    from edgekit.backends.tflite.compact import compact

    path = tmp_path / "c.tflite"
    shutil.copy(quantized, path)
    before, (sigs, ref) = quantized.stat().st_size, _run(quantized)
    done = compact(path, min_elements=64)  # the tiny model's LayerNorm weights are 64 wide
    assert done.bytes_after == path.stat().st_size < before
    assert done.names_dropped > 10 and done.fp16_constants > 0
    assert done.note().startswith(f"compacted: {done.names_dropped} tensor names dropped")

    sigs2, out = _run(path)
    assert sigs2 == sigs  # signature names and keys unchanged
    for k, v in ref.items():
        cos = float((v * out[k]).sum() / (np.linalg.norm(v) * np.linalg.norm(out[k])))
        assert cos > 0.99999 and np.abs(v - out[k]).max() < 1e-2 * np.abs(v).max(), k

    model, raw = _model(path)
    graph = model.subgraphs[0]
    io = set(graph.inputs) | set(graph.outputs)
    assert all(t.name for i, t in enumerate(graph.tensors) if i in io)
    assert not any(t.name for i, t in enumerate(graph.tensors) if i not in io)
    code = {i: max(oc.builtinCode, oc.deprecatedBuiltinCode) for i, oc in enumerate(model.operatorCodes)}
    deq = [op for op in graph.operators if code[op.opcodeIndex] == S.BuiltinOperator.DEQUANTIZE]
    assert len(deq) == done.fp16_constants
    assert all(graph.tensors[op.inputs[0]].type == S.TensorType.FLOAT16 for op in deq)
    made = {op.outputs[0] for op in deq}
    for op in graph.operators:  # fully connected biases stay fp32 constants (XNNPACK's hybrid kernels)
        if code[op.opcodeIndex] == S.BuiltinOperator.FULLY_CONNECTED and len(op.inputs) > 2 and op.inputs[2] >= 0:
            assert op.inputs[2] not in made
    stored = [b for b in model.buffers if b.size]
    assert stored and all(b.offset % 16 == 0 for b in stored)
    assert max(b.offset + b.size for b in stored) == len(raw)  # nothing after the last buffer


def test_keep_names_and_an_idle_pass(quantized, tmp_path):
    from edgekit.backends.tflite.compact import compact

    path = tmp_path / "k.tflite"
    shutil.copy(quantized, path)
    done = compact(path, keep_names=True, min_elements=10**9)
    assert (done.names_dropped, done.fp16_constants, done.note()) == (0, 0, "compacted: nothing to do")
    model, _ = _model(path)
    named = [t for t in model.subgraphs[0].tensors if t.name]
    assert len(named) == len(model.subgraphs[0].tensors)
    _, out = _run(path)
    _, ref = _run(quantized)
    for k, v in ref.items():
        np.testing.assert_allclose(out[k], v, rtol=1e-6, atol=1e-6)


def test_a_shared_buffer_is_left_alone(quantized):
    """Converters deduplicate equal constants into one buffer; halving it for one tensor would
    leave the others without data, so such buffers stay fp32."""
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from edgekit.backends.tflite.compact import _fp16_constants

    model = fbu.read_model(str(quantized))
    n_before = len(model.subgraphs[0].operators)
    alone = _fp16_constants(model, S, fbu, np, 64)
    assert alone >= 1
    halved = model.subgraphs[0].operators[0].outputs[0]  # the DEQUANTIZEs come first
    assert len(model.subgraphs[0].operators) == n_before + alone

    model = fbu.read_model(str(quantized))
    graph = model.subgraphs[0]
    twin = S.TensorT()
    twin.shape, twin.type, twin.buffer = graph.tensors[halved].shape, S.TensorType.FLOAT32, graph.tensors[halved].buffer
    graph.tensors.append(twin)
    assert _fp16_constants(model, S, fbu, np, 64) == alone - 1
    kept = graph.tensors[halved]
    assert kept.type == S.TensorType.FLOAT32 and kept.buffer == twin.buffer and len(model.buffers[kept.buffer].data)
