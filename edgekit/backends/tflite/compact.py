"""Shrink a quantized LiteRT flatbuffer without changing what it computes.

Three passes on the flatbuffer that ai-edge-quantizer wrote, and a leaner way of writing it:

- **Names.** Converters name every intermediate tensor with its full module path (in MiniLM
  0.20 MB of strings). They are dropped, except the model's inputs and outputs, which the
  signature needs. Off with ``keep_names`` (for Model Explorer or Netron).
- **Float constants in fp16.** Float constants that quantization left (LayerNorm weights,
  position tables) are stored as fp16 behind a DEQUANTIZE op, the same form LiteRT's own fp16
  quantization uses: XNNPACK and the builtin kernels unpack them once, when the model loads,
  so the run-time work is unchanged. Biases of fully connected and convolution layers stay fp32
  (XNNPACK's dynamically quantized kernels want a static fp32 bias).
- **Row scales of lookup tables.** The schema stores a per-channel scale with an int64 zero
  point: 12 bytes for each of a word embedding's rows (0.37 MB in MiniLM). A table quantized per
  row with zero points of 0 keeps its int8 rows, with scale 1, and its row scales move into a
  float table looked up with the same ids; a MUL applies them. ``q * 1.0 * s`` is the product the
  kernel computed (``q * s``), so the outputs are bit-identical, for 4 bytes a row.

Writing: equal vectors (the all-zero zero points of every per-channel weight) are stored once and
shared, which flatbuffers allow; buffers go after the flatbuffer, 16-byte aligned, as
ai-edge-quantizer writes them.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from ..._lazy import require

MIN_ELEMENTS = 256  # smaller float constants (scalars, masks' fill values) stay fp32: nothing to gain
_BIASED = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "TRANSPOSE_CONV", "CONV_3D")


@dataclass
class Compacted:
    bytes_before: int
    bytes_after: int
    names_dropped: int
    fp16_constants: int
    row_scale_tables: int = 0

    def note(self) -> str:
        parts = [f"{self.names_dropped} tensor names dropped"] if self.names_dropped else []
        if self.fp16_constants:
            parts.append(f"{self.fp16_constants} float constants stored as fp16")
        if self.row_scale_tables:
            parts.append(f"row scales of {self.row_scale_tables} lookup table{'s' * (self.row_scale_tables > 1)} "
                         "as a float table")
        saved = (self.bytes_before - self.bytes_after) / 1e6
        return f"compacted: {', '.join(parts)} (-{saved:.2f} MB)" if parts else "compacted: nothing to do"


def compact(path: Path, *, keep_names: bool = False, min_elements: int = MIN_ELEMENTS) -> Compacted:
    """Rewrite the .tflite at ``path`` in place (through a temporary file) and say what changed."""
    np, fbu, schema = _modules()
    path = Path(path)
    before = path.stat().st_size
    model = fbu.read_model(str(path))
    dropped = 0 if keep_names else _drop_names(model)
    halved = _fp16_constants(model, schema, fbu, np, min_elements)
    tables = _row_scale_lookups(model, schema, fbu, np, min_elements)
    _replace(model, path, fbu, schema)
    return Compacted(before, path.stat().st_size, dropped, halved, tables)


def keep_float16(path: Path, min_elements: int = MIN_ELEMENTS) -> Compacted:
    """Store as fp16 (behind a DEQUANTIZE) each float32 constant of the .tflite at ``path`` that
    is exactly a float16 value: a float16 source's weights, which onnx2tf wrote as float32. What
    the model computes is unchanged, bit for bit; names are kept; other constants stay float32."""
    np, fbu, schema = _modules()
    path = Path(path)
    before = path.stat().st_size
    model = fbu.read_model(str(path))
    halved = _fp16_constants(model, schema, fbu, np, min_elements, exact=True)
    if halved:
        _replace(model, path, fbu, schema)
    return Compacted(before, path.stat().st_size, 0, halved)


def widen_float16(path: Path) -> bytearray | None:
    """The .tflite at ``path`` with its float16 constants behind a DEQUANTIZE (``keep_float16``'s,
    or LiteRT's own fp16 form) made float32 constants again, or None where it has none: what
    ai-edge-quantizer reads as float weights (it leaves a DEQUANTIZE's output float)."""
    np, fbu, schema = _modules()
    deq, done = schema.BuiltinOperator.DEQUANTIZE, 0
    packed = schema.Model.GetRootAs(Path(path).read_bytes(), 0)  # a quick look first: no DEQUANTIZE, nothing to do
    if not any(fbu.get_builtin_code_from_operator_code(packed.OperatorCodes(i)) == deq
               for i in range(packed.OperatorCodesLength())):
        return None
    model = fbu.read_model(str(path))
    readers = _buffer_readers(model)
    for graph in model.subgraphs:
        keep = []
        for op in graph.operators:
            src = graph.tensors[op.inputs[0]] if op.inputs is not None and len(op.inputs) == 1 else None
            out = graph.tensors[op.outputs[0]] if src is not None else None
            data = None if src is None else model.buffers[src.buffer].data
            if (src is None or fbu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]) != deq
                    or src.type != schema.TensorType.FLOAT16 or data is None or readers[src.buffer] > 1
                    or out.type != schema.TensorType.FLOAT32 or model.buffers[out.buffer].data is not None):
                keep.append(op)
                continue
            wide = schema.BufferT()
            wide.data = np.frombuffer(np.frombuffer(bytes(data), np.float16).astype(np.float32).tobytes(), np.uint8)
            model.buffers.append(wide)
            model.buffers[src.buffer].data = None
            out.buffer, src.buffer = len(model.buffers) - 1, 0  # the float16 tensor is left unread and empty
            done += 1
        graph.operators = keep
    if not done:
        return None
    import tempfile

    with tempfile.TemporaryDirectory(prefix="edgekit-widen-") as tmp:
        _write(model, Path(tmp) / "model.tflite", fbu, schema)
        return bytearray((Path(tmp) / "model.tflite").read_bytes())


def _modules():
    return (require("numpy", "LiteRT compaction"), require("ai_edge_litert.tools.flatbuffer_utils", "LiteRT"),
            require("ai_edge_litert.schema_py_generated", "LiteRT"))


def _replace(model, path: Path, fbu, schema) -> None:
    """``model`` written over ``path``, through a temporary file."""
    tmp = path.with_name(f".{path.name}.compact")
    try:
        _write(model, tmp, fbu, schema)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _drop_names(model) -> int:
    n = 0
    for g, graph in enumerate(model.subgraphs):
        keep = set(graph.inputs) | set(graph.outputs)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == g:
                keep |= {t.tensorIndex for t in [*(sig.inputs or []), *(sig.outputs or [])]}
        for i, tensor in enumerate(graph.tensors):
            if i not in keep and tensor.name:
                tensor.name, n = None, n + 1
    return n


def _opcode(model, schema, fbu, name: str, version: int) -> int:
    """The index of builtin op ``name`` in the model's operator codes, added if missing."""
    code = getattr(schema.BuiltinOperator, name)
    for i, oc in enumerate(model.operatorCodes):
        if fbu.get_builtin_code_from_operator_code(oc) == code:
            return i
    oc = schema.OperatorCodeT()
    oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), version
    model.operatorCodes.append(oc)
    return len(model.operatorCodes) - 1


def _fp16_constants(model, schema, fbu, np, min_elements: int, exact: bool = False) -> int:
    """Each large float32 constant becomes an fp16 constant and a DEQUANTIZE that yields the
    original tensor, so its consumers are untouched. ``exact``: only those that fp16 holds exactly."""
    biased = {getattr(schema.BuiltinOperator, n) for n in _BIASED}
    users = _buffer_readers(model)  # a buffer shared by several tensors (deduplicated constants) is left alone
    deq = None  # DEQUANTIZE's operator code, added on first use
    done = 0
    for graph in model.subgraphs:
        biases = {op.inputs[2] for op in graph.operators
                  if fbu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]) in biased
                  and len(op.inputs) > 2 and op.inputs[2] >= 0}
        io = set(graph.inputs) | set(graph.outputs)
        new_ops = []
        for i, tensor in enumerate(list(graph.tensors)):
            buf = model.buffers[tensor.buffer]
            constant = tensor.type == schema.TensorType.FLOAT32 and buf.data is not None
            quantized = tensor.quantization is not None and tensor.quantization.scale
            if (not constant or len(buf.data) < 4 * min_elements or quantized
                    or i in biases or i in io or users[tensor.buffer] > 1):
                continue
            values = np.frombuffer(bytes(buf.data), np.float32)
            half = values.astype(np.float16)
            if not np.all(np.isfinite(half)) or (exact and not np.array_equal(half.astype(np.float32), values)):
                continue  # outside fp16's range (or, ``exact``, not a float16 value): leave it
            new_buf = schema.BufferT()
            new_buf.data = np.frombuffer(half.tobytes(), np.uint8)
            model.buffers.append(new_buf)
            h = schema.TensorT()
            h.shape, h.type, h.buffer = tensor.shape, schema.TensorType.FLOAT16, len(model.buffers) - 1
            h.name = None if tensor.name is None else _name(tensor.name) + b"/fp16"  # a tool reading names needs one
            graph.tensors.append(h)
            buf.data = None
            tensor.buffer = 0  # the empty buffer: now computed, by the DEQUANTIZE below
            if deq is None:
                deq = _opcode(model, schema, fbu, "DEQUANTIZE", 3)
            op = schema.OperatorT()
            op.opcodeIndex = deq
            op.inputs, op.outputs = [len(graph.tensors) - 1], [i]
            new_ops.append(op)
        graph.operators = new_ops + list(graph.operators)  # constants first: a valid order
        done += len(new_ops)
    return done


def _name(name) -> bytes:
    return name if isinstance(name, bytes) else name.encode()


def _row_scale_lookups(model, schema, fbu, np, min_rows: int) -> int:
    """EMBEDDING_LOOKUP(ids, table per row) becomes MUL(EMBEDDING_LOOKUP(ids, table scale 1),
    EMBEDDING_LOOKUP(ids, row scales)). Only for a 2-D table of ``min_rows`` rows or more,
    quantized along its rows with zero points of 0, that nothing else reads."""
    lookup = schema.BuiltinOperator.EMBEDDING_LOOKUP
    readers = _buffer_readers(model)
    mul, done = None, 0
    for graph in model.subgraphs:
        uses = Counter(i for op in graph.operators for i in op.inputs)
        ops = []
        for op in graph.operators:
            ops.append(op)
            if fbu.get_builtin_code_from_operator_code(model.operatorCodes[op.opcodeIndex]) != lookup:
                continue
            ids, table_i = op.inputs[0], op.inputs[1]
            table, out = graph.tensors[table_i], graph.tensors[op.outputs[0]]
            q = table.quantization
            if (q is None or q.scale is None or len(table.shape) != 2 or table.shape[0] < min_rows
                    or len(q.scale) != table.shape[0] or q.quantizedDimension != 0
                    or q.zeroPoint is None or np.any(np.asarray(q.zeroPoint) != 0)
                    or uses[table_i] != 1 or readers[table.buffer] != 1
                    or out.type != schema.TensorType.FLOAT32):
                continue
            scales = np.asarray(q.scale, np.float32)
            q.scale, q.zeroPoint = np.ones(1, np.float32), np.zeros(1, np.int64)
            s_buf = schema.BufferT()
            s_buf.data = np.frombuffer(scales.tobytes(), np.uint8)
            model.buffers.append(s_buf)
            s_table = _tensor(schema, [len(scales), 1], len(model.buffers) - 1)
            rows = _tensor(schema, list(out.shape), 0, out.shapeSignature)
            picked = _tensor(schema, [*list(out.shape)[:-1], 1], 0,
                             None if out.shapeSignature is None else [*list(out.shapeSignature)[:-1], 1])
            first = len(graph.tensors)
            graph.tensors += [s_table, rows, picked]
            final, op.outputs = op.outputs[0], [first + 1]
            scale_op = schema.OperatorT()
            scale_op.opcodeIndex, scale_op.inputs, scale_op.outputs = op.opcodeIndex, [ids, first], [first + 2]
            if mul is None:
                mul = _opcode(model, schema, fbu, "MUL", 1)
            mul_op = schema.OperatorT()
            mul_op.opcodeIndex, mul_op.inputs, mul_op.outputs = mul, [first + 1, first + 2], [final]
            mul_op.builtinOptionsType, mul_op.builtinOptions = schema.BuiltinOptions.MulOptions, schema.MulOptionsT()
            ops += [scale_op, mul_op]
            done += 1
        graph.operators = ops
    return done


def _buffer_readers(model) -> Counter:
    """How many tensors, over all subgraphs, point at each buffer."""
    return Counter(t.buffer for graph in model.subgraphs for t in graph.tensors)


def _tensor(schema, shape, buffer: int, signature=None):
    t = schema.TensorT()
    t.shape, t.type, t.buffer, t.shapeSignature = shape, schema.TensorType.FLOAT32, buffer, signature
    return t


def _write(model, dest: Path, fbu, schema) -> None:
    """Flatbuffer first, then each buffer's bytes 16-byte aligned, addressed by offset and size."""
    flatbuffers = require("flatbuffers", "LiteRT")
    payload = {}
    for i, buf in enumerate(model.buffers):
        if buf.data is not None and len(buf.data):
            payload[i] = bytes(buf.data)
            buf.data, buf.offset, buf.size = None, 1, 1  # placeholders, so the fields are packed
    builder = _sharing_builder(flatbuffers)(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    head = bytearray(builder.Output())
    packed = schema.Model.GetRootAs(head, 0)
    offsets, pos = [], _align(len(head))
    for i, data in payload.items():
        fbu.update_packed_buffer(packed.Buffers(i), offset=pos, size=len(data))  # patches `head`
        offsets.append(pos)
        pos = _align(pos + len(data))
    with open(dest, "wb") as fh:
        fh.write(head)
        for off, data in zip(offsets, payload.values(), strict=True):
            fh.write(bytes(off - fh.tell()))
            fh.write(data)


def _sharing_builder(flatbuffers):
    class SharingBuilder(flatbuffers.Builder):
        """Writes each distinct numeric vector once; later equal ones point at it."""

        def __init__(self, size):
            super().__init__(size)
            self._seen = {}

        def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers' name)
            key = (x.dtype.str, x.shape, x.tobytes())
            if key not in self._seen:
                self._seen[key] = super().CreateNumpyVector(x)
            return self._seen[key]

    return SharingBuilder


def _align(n: int) -> int:
    return (n + 15) & ~15
