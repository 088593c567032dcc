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
    assert done.names_dropped > 10 and done.fp16_constants > 0 and done.row_scale_tables == 1
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


def _lookups(model):
    from ai_edge_litert import schema_py_generated as S

    code = {i: max(oc.builtinCode, oc.deprecatedBuiltinCode) for i, oc in enumerate(model.operatorCodes)}
    graph = model.subgraphs[0]
    return [op for op in graph.operators if code[op.opcodeIndex] == S.BuiltinOperator.EMBEDDING_LOOKUP], code


def test_row_scales_of_the_word_table_move_to_a_float_table_bit_identically(quantized, tmp_path):
    """The word embedding, quantized per row, keeps its int8 rows at scale 1; its row scales
    become a float table looked up with the same ids, and a MUL applies them: the same product,
    so every output is bit-identical, and 8 bytes a row are saved."""
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from edgekit.backends.tflite.compact import _row_scale_lookups, _write

    model = fbu.read_model(str(quantized))
    (words, *_), _ = _lookups(model)
    rows, dim = model.subgraphs[0].tensors[words.inputs[1]].shape
    scales = np.array(model.subgraphs[0].tensors[words.inputs[1]].quantization.scale)
    assert len(scales) == rows and len(np.unique(scales)) > 1  # per row, as ai-edge-quantizer wrote it
    assert _row_scale_lookups(model, S, fbu, np, min_rows=10**6) == 0  # under the row threshold: untouched
    assert _row_scale_lookups(model, S, fbu, np, min_rows=64) == 1  # the token-type table (2 rows) stays
    path = tmp_path / "r.tflite"
    _write(model, path, fbu, S)

    _, ref = _run(quantized)
    _, out = _run(path)
    for k, v in ref.items():
        assert np.array_equal(v, out[k]), k

    model, _ = _model(path)
    graph = model.subgraphs[0]
    lookups, code = _lookups(model)
    by_table = {tuple(graph.tensors[op.inputs[1]].shape): op for op in lookups}
    table = graph.tensors[by_table[(rows, dim)].inputs[1]]
    assert list(table.quantization.scale) == [1.0] and list(table.quantization.zeroPoint) == [0]
    assert table.type == S.TensorType.INT8
    scale_table = graph.tensors[by_table[(rows, 1)].inputs[1]]
    assert scale_table.type == S.TensorType.FLOAT32
    stored = np.frombuffer(bytes(model.buffers[scale_table.buffer].data), np.float32) if model.buffers[
        scale_table.buffer].data is not None else None
    if stored is None:  # written after the flatbuffer, by offset
        buf = model.buffers[scale_table.buffer]
        stored = np.frombuffer(path.read_bytes()[buf.offset:buf.offset + buf.size], np.float32)
    np.testing.assert_array_equal(stored, scales.astype(np.float32))
    muls = [op for op in graph.operators if code[op.opcodeIndex] == S.BuiltinOperator.MUL
            and set(op.inputs) == {by_table[(rows, dim)].outputs[0], by_table[(rows, 1)].outputs[0]}]
    assert len(muls) == 1


def test_a_lookup_table_with_zero_points_or_two_readers_is_left_alone(quantized):
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from edgekit.backends.tflite.compact import _row_scale_lookups

    model = fbu.read_model(str(quantized))
    (words, *_), _ = _lookups(model)
    zp = model.subgraphs[0].tensors[words.inputs[1]].quantization.zeroPoint
    zp[3] = 1  # an asymmetric row: its zero point would be lost
    assert _row_scale_lookups(model, S, fbu, np, min_rows=64) == 0

    model = fbu.read_model(str(quantized))
    (words, *_), _ = _lookups(model)
    twin = S.OperatorT()
    twin.opcodeIndex, twin.inputs, twin.outputs = words.opcodeIndex, list(words.inputs), list(words.outputs)
    model.subgraphs[0].operators.append(twin)  # a second reader of the same table
    assert _row_scale_lookups(model, S, fbu, np, min_rows=64) == 0


def test_equal_zero_point_vectors_are_written_once(quantized, tmp_path):
    """Every per-channel weight carries an all-zero int64 zero-point vector; equal vectors are
    stored once and shared, and the runtime reads each tensor's parameters unchanged."""
    from ai_edge_litert import schema_py_generated as S
    from ai_edge_litert.tools import flatbuffer_utils as fbu

    from edgekit.backends.tflite.compact import _write

    model = fbu.read_model(str(quantized))
    want = [None if t.quantization is None or t.quantization.zeroPoint is None else list(t.quantization.zeroPoint)
            for t in model.subgraphs[0].tensors]
    path = tmp_path / "z.tflite"
    _write(model, path, fbu, S)
    raw = path.read_bytes()
    packed = S.Model.GetRootAs(raw, 0).Subgraphs(0)
    where, n = set(), 0
    for i in range(packed.TensorsLength()):
        q = packed.Tensors(i).Quantization()
        if q is None or q.ZeroPointIsNone():
            assert want[i] in (None, [])
            continue
        assert list(q.ZeroPointAsNumpy()) == want[i]
        if q.ZeroPointLength() > 1:
            where.add(q._tab.Vector(q._tab.Offset(10)))  # the zero_point field's vector position
            n += 1
    assert n > 4 and len(where) < n / 2
    _, out = _run(path)
    _, ref = _run(quantized)
    for k, v in ref.items():
        assert np.array_equal(v, out[k]), k
