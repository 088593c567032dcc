"""Recurrent ops (``RNN``, ``GRU``, ``LSTM``) unrolled over their static sequence length into
Gather/MatMul/Add and the gate activations: onnx2tf 1.29's own converters for them fail on
ONNX's node cases (reverse and bidirectional directions, biases, initial states, peepholes).
Each step follows ONNX's operator spec: gates in ONNX's order (GRU z, r, h; LSTM i, o, f, c; P
as i, o, f), ``linear_before_reset``, ``layout``, and ``sequence_lens`` (past a batch entry's
length its state is kept and Y is zero, the reverse direction starting at its last valid step)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._onnx_rewrites import Graph, _attr, _input, _rewrite

_GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
_DEFAULT_ACTS = {"RNN": ("Tanh",), "GRU": ("Sigmoid", "Tanh"), "LSTM": ("Sigmoid", "Tanh", "Tanh")}
# the activations written here (none of them takes activation_alpha/beta, so those are unused)
_ACTS = {"tanh": "Tanh", "sigmoid": "Sigmoid", "relu": "Relu"}
_MAX_STEPS = 512
_FLOATS = (np.float16, np.float32, np.float64)


@dataclass
class _Rnn:
    """One recurrent node being unrolled: its sizes, activations, and the nodes written so far."""

    g: Graph
    node: object
    t: str  # prefix of the names written
    steps: int
    batch: int
    hidden: int
    dtype: object
    reverse: list[bool]  # per direction
    acts: list[list[str]]  # per direction, the op's activations (f, g, h)
    nodes: list = field(default_factory=list)
    masks: dict = field(default_factory=dict)  # step -> (mask, 1 - mask), [batch, 1]; empty: none
    one: str = ""  # the constant 1
    rbh: list = field(default_factory=list)  # per direction, a GRU's Rb of h under linear_before_reset
    peepholes: list = field(default_factory=list)  # per direction, LSTM's P as [Pi, Po, Pf] (None: none)
    _names: int = 0

    @property
    def op(self) -> str:
        return self.node.op_type

    @property
    def layout(self) -> int:
        return _attr(self.node, "layout", 0) or 0

    def add(self, op: str, inputs: list[str], out: str | None = None, **attrs) -> str:
        """Append ``op`` on ``inputs``; returns its output (a fresh name unless ``out``)."""
        if out is None:
            self._names += 1
            out = f"{self.t}_{self._names}"
        self.nodes.append(self.g.node(op, inputs, [out], **attrs))
        return out

    def const(self, value, kind=None) -> str:
        self._names += 1
        return self.g.const(f"{self.t}_c{self._names}", np.asarray(value, kind or self.dtype))

    def unsqueeze(self, x: str, axes: list[int], out: str | None = None) -> str:
        if self.g.opset >= 13:
            return self.add("Unsqueeze", [x, self.const(axes, np.int64)], out)
        return self.add("Unsqueeze", [x], out, axes=axes)

    def act(self, d: int, k: int, x: str) -> str:
        return self.add(self.acts[d][k], [x])


def _activations(node, dirs: int) -> list[list[str]] | None:
    """Each direction's activations (ONNX's defaults unless given), or None for one not written here."""
    n = len(_DEFAULT_ACTS[node.op_type])
    names = _attr(node, "activations")
    names = [a.decode() if isinstance(a, bytes) else a for a in names] if names else list(_DEFAULT_ACTS[node.op_type]) * dirs
    if len(names) != n * dirs or any(a.lower() not in _ACTS for a in names):
        return None
    return [[_ACTS[a.lower()] for a in names[d * n:(d + 1) * n]] for d in range(dirs)]


def unrolled(node) -> bool:
    """Whether the node's attributes are ones written here (its shapes must also be static, with
    at most ``_MAX_STEPS`` steps): what ``edgekit check`` reads."""
    direction = _attr(node, "direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs = 2 if direction == "bidirectional" else 1
    return (direction in ("forward", "reverse", "bidirectional") and _attr(node, "clip") is None
            and not _attr(node, "input_forget", 0) and _activations(node, dirs) is not None)


def _plan(g: Graph, node) -> _Rnn | None:
    """The node's sizes when they are static and modest and every attribute is one written here."""
    x, w, r = node.input[0], node.input[1], node.input[2]
    if any(len(g.shapes.get(v, ())) != 3 for v in (x, w, r)) or g.types.get(x) is None:
        return None
    dtype = g.np_type(x)
    direction = _attr(node, "direction", b"forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    dirs, gates = (2 if direction == "bidirectional" else 1), _GATES[node.op_type]
    layout = _attr(node, "layout", 0) or 0
    steps, batch = g.shapes[x][:2] if layout == 0 else g.shapes[x][1::-1]
    hidden = g.shapes[r][-1]
    if (dtype not in _FLOATS or not unrolled(node)
            or g.shapes[w] != (dirs, gates * hidden, g.shapes[x][2]) or g.shapes[r] != (dirs, gates * hidden, hidden)
            or _attr(node, "hidden_size", hidden) != hidden or not 0 < steps <= _MAX_STEPS):
        return None
    acts = _activations(node, dirs)
    reverse = [direction == "reverse"] if dirs == 1 else [False, True]
    return _Rnn(g, node, _first_output(node) + "__unrolled", steps, batch, hidden, dtype, reverse, acts)


def _first_output(node) -> str:
    return next(o for o in node.output if o)


def _part(r: _Rnn, name: str, d: int, start: int, count: int) -> str:
    """``name[d, start:start + count]`` (a constant when ``name`` is one)."""
    value = r.g.value(name)
    if value is not None:
        return r.const(value[d, start:start + count])
    row = r.add("Gather", [name, r.const(d, np.int64)], axis=0)
    return r.add("Gather", [row, r.const(np.arange(start, start + count), np.int64)], axis=0)


def _transposed(r: _Rnn, name: str, d: int, start: int) -> str:
    """``name[d, start:start + hidden]^T`` (a constant when ``name`` is one)."""
    value = r.g.value(name)
    if value is not None:
        return r.const(value[d, start:start + r.hidden].T)
    return r.add("Transpose", [_part(r, name, d, start, r.hidden)], perm=[1, 0])


def _bias(r: _Rnn, d: int, gate: int, recurrent: bool = True) -> str | None:
    """``Wb`` (+ ``Rb``) of one gate, or None without B."""
    b = _input(r.node, 3)
    if not b:
        return None
    h, gates = r.hidden, _GATES[r.op]
    value = r.g.value(b)
    if value is not None:
        return r.const(value[d, gate * h:(gate + 1) * h] + (value[d, (gates + gate) * h:(gates + gate + 1) * h]
                                                            if recurrent else 0))
    wb = _part(r, b, d, gate * h, h)
    return r.add("Add", [wb, _part(r, b, d, (gates + gate) * h, h)]) if recurrent else wb


def _gate_inputs(r: _Rnn, d: int, xs: str) -> tuple[list[str], list[str]]:
    """Per gate, ``X @ W^T + Wb (+ Rb)`` over every step ([steps, batch, hidden]) and ``R^T``; a
    GRU's ``Rb`` of h is added inside the step under ``linear_before_reset``."""
    xw, rt = [], []
    lbr = r.op == "GRU" and _attr(r.node, "linear_before_reset", 0)
    for k in range(_GATES[r.op]):
        y = r.add("MatMul", [xs, _transposed(r, r.node.input[1], d, k * r.hidden)])
        bias = _bias(r, d, k, recurrent=not (lbr and k == 2))
        xw.append(r.add("Add", [y, bias]) if bias else y)
        rt.append(_transposed(r, r.node.input[2], d, k * r.hidden))
    return xw, rt


def _initial(r: _Rnn, index: int, d: int) -> str:
    """The direction's initial h (input 5) or c (input 6), [batch, hidden]; zeros when absent."""
    name = _input(r.node, index)
    if not name:
        return r.const(np.zeros([r.batch, r.hidden]))
    value = r.g.value(name)
    if value is not None:
        return r.const(value[d] if r.layout == 0 else value[:, d])
    return r.add("Gather", [name, r.const(d, np.int64)], axis=r.layout)


def _rnn_step(r: _Rnn, d: int, x: list[str], state: tuple, rt: list[str]) -> tuple:
    h, _ = state
    return r.act(d, 0, r.add("Add", [x[0], r.add("MatMul", [h, rt[0]])])), None


def _gru_step(r: _Rnn, d: int, x: list[str], state: tuple, rt: list[str]) -> tuple:
    """``z, r = f(...)``; ``h~ = g(x Wh + (r * h) Rh + Rbh)`` or, under linear_before_reset,
    ``g(x Wh + r * (h Rh + Rbh))``; ``h' = (1 - z) * h~ + z * h``."""
    h, _ = state
    z = r.act(d, 0, r.add("Add", [x[0], r.add("MatMul", [h, rt[0]])]))
    reset = r.act(d, 0, r.add("Add", [x[1], r.add("MatMul", [h, rt[1]])]))
    if _attr(r.node, "linear_before_reset", 0):
        hr = r.add("MatMul", [h, rt[2]])
        if _input(r.node, 3):
            hr = r.add("Add", [hr, r.rbh[d]])
        pre = r.add("Add", [x[2], r.add("Mul", [reset, hr])])
    else:
        pre = r.add("Add", [x[2], r.add("MatMul", [r.add("Mul", [reset, h]), rt[2]])])
    cand = r.act(d, 1, pre)
    keep = r.add("Sub", [r.one, z])
    return r.add("Add", [r.add("Mul", [keep, cand]), r.add("Mul", [z, h])]), None


def _lstm_step(r: _Rnn, d: int, x: list[str], state: tuple, rt: list[str]) -> tuple:
    """``i, f = f(... + P * c)``, ``c' = f * c + i * g(...)``, ``o = f(... + Po * c')``, ``h' =
    o * h(c')``."""
    h, c = state
    pre = [r.add("Add", [x[k], r.add("MatMul", [h, rt[k]])]) for k in range(4)]
    peep = r.peepholes[d]
    if peep:
        pre[0] = r.add("Add", [pre[0], r.add("Mul", [peep[0], c])])
        pre[2] = r.add("Add", [pre[2], r.add("Mul", [peep[2], c])])
    i, f, cand = r.act(d, 0, pre[0]), r.act(d, 0, pre[2]), r.act(d, 1, pre[3])
    c2 = r.add("Add", [r.add("Mul", [f, c]), r.add("Mul", [i, cand])])
    if peep:
        pre[1] = r.add("Add", [pre[1], r.add("Mul", [peep[1], c2])])
    return r.add("Mul", [r.act(d, 0, pre[1]), r.act(d, 2, c2)]), c2


_STEPS = {"RNN": _rnn_step, "GRU": _gru_step, "LSTM": _lstm_step}


def _masks(r: _Rnn) -> None:
    """Per step, 1 where the step is within a batch entry's ``sequence_lens`` (and 1 minus it);
    none when there are no lengths or every length is the full sequence."""
    lens = _input(r.node, 4)
    if not lens:
        return
    value = r.g.value(lens)
    if value is not None:
        if (np.asarray(value) >= r.steps).all():
            return
        for p in range(r.steps):
            m = (p < np.asarray(value)).astype(r.dtype)[:, None]
            r.masks[p] = (r.const(m), r.const(1 - m))
        return
    to = r.g.helper.np_dtype_to_tensor_dtype(np.dtype(r.dtype))
    col = r.unsqueeze(r.add("Cast", [lens], to=to), [1])
    for p in range(r.steps):
        m = r.add("Cast", [r.add("Less", [r.const(p), col])], to=to)
        r.masks[p] = (m, r.add("Sub", [r.one, m]))


def _direction(r: _Rnn, d: int, xs: str) -> tuple[list[str], str, str | None]:
    """One direction over every step: Y's steps in time order, the last h and c."""
    xw, rt = _gate_inputs(r, d, xs)
    state = (_initial(r, 5, d), _initial(r, 6, d) if r.op == "LSTM" else None)
    ys = [""] * r.steps
    for p in range(r.steps - 1, -1, -1) if r.reverse[d] else range(r.steps):
        index = r.const(p, np.int64)
        x = [r.add("Gather", [v, index], axis=0) for v in xw]
        new = _STEPS[r.op](r, d, x, state, rt)
        if p in r.masks:
            m, keep = r.masks[p]
            ys[p] = r.add("Mul", [m, new[0]])
            new = tuple(None if v is None else r.add("Add", [r.add("Mul", [m, v]), r.add("Mul", [keep, old])])
                        for v, old in zip(new, state, strict=True))
        else:
            ys[p] = new[0]
        state = new
    return ys, state[0], state[1]


def _stack(r: _Rnn, parts: list[str], axis: int, out: str | None = None) -> str:
    if len(parts) == 1:
        return r.add("Identity", parts, out)
    return r.add("Concat", parts, out, axis=axis)


def _outputs(r: _Rnn, runs: list[tuple]) -> None:
    """Y [steps, dirs, batch, hidden], Y_h and Y_c [dirs, batch, hidden] (batch first under layout 1)."""
    outs = list(r.node.output) + [""] * 3
    if outs[0]:
        per_dir = [r.unsqueeze(_stack(r, [r.unsqueeze(y, [0]) for y in ys], 0), [1]) for ys, _, _ in runs]
        if r.layout:
            r.add("Transpose", [_stack(r, per_dir, 1)], outs[0], perm=[2, 0, 1, 3])
        else:
            _stack(r, per_dir, 1, outs[0])
    for k in (1, 2):
        if not outs[k]:
            continue
        parts = [r.unsqueeze(run[k], [0]) for run in runs]
        if r.layout:
            r.add("Transpose", [_stack(r, parts, 0)], outs[k], perm=[1, 0, 2])
        else:
            _stack(r, parts, 0, outs[k])


def _unroll(g: Graph, node):
    """The node as its steps (see the module's note), or None to leave it."""
    r = _plan(g, node)
    if r is None:
        return None
    r.one = r.const(1.0)
    xs = node.input[0] if r.layout == 0 else r.add("Transpose", [node.input[0]], perm=[1, 0, 2])
    dirs = len(r.reverse)
    r.rbh = [_part(r, node.input[3], d, 5 * r.hidden, r.hidden) if r.op == "GRU" and _input(node, 3)
             and _attr(node, "linear_before_reset", 0) else None for d in range(dirs)]
    p = _input(node, 7)
    r.peepholes = [[_part(r, p, d, k * r.hidden, r.hidden) for k in range(3)] if p else None for d in range(dirs)]
    _masks(r)
    _outputs(r, [_direction(r, d, xs) for d in range(dirs)])
    return r.nodes


REWRITES = (
    (_rewrite(set(_GATES), _unroll),
     lambda n: f"{n} RNN/GRU/LSTM unrolled over their static sequence length (onnx2tf's converters fail on them)"),
)
