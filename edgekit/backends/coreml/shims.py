"""Converters for torch ops coremltools 9 lacks, registered once before converting.

Each shim is a small function keyed by op name (an extension point is a dict).
"""

from __future__ import annotations

_done = False


def _new_ones(context, node):
    """x.new_ones(size, dtype=None): ones of x's dtype unless one is given."""
    import numpy as np
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil import types

    inputs = ops._get_inputs(context, node, min_expected=2)
    x, size = inputs[0], inputs[1]
    dtype = ops._get_kwinputs(context, node, "dtype", default=[None])[0]
    dtype = getattr(dtype, "val", dtype)
    if dtype is None:
        name = types.builtin_to_string(x.dtype)
    else:
        num = ops.TORCH_DTYPE_TO_NUM.get(dtype, dtype)
        name = ops.NUM_TO_DTYPE_STRING[num]
    if isinstance(size, list):
        size = mb.concat(values=size, axis=0)
    if size.val is not None and np.size(size.val) == 0:  # a 0-d tensor
        ones = mb.const(val=np.float32(1.0))
    else:
        if types.is_float(size.dtype):
            size = mb.cast(x=size, dtype="int32")
        ones = mb.fill(shape=size, value=1.0)
    context.add(mb.cast(x=ones, dtype=name, name=node.name) if name != "fp32" else
                mb.identity(x=ones, name=node.name))


def _value(inputs, i, default):
    """The constant value of optional input ``i`` (``default`` when absent or None)."""
    if len(inputs) <= i or inputs[i] is None:
        return default
    val = getattr(inputs[i], "val", inputs[i])
    return default if val is None else val


def _diff(context, node):
    """torch.diff(x, n=1, dim=-1, prepend=None, append=None): x[1:] - x[:-1] along dim, n times
    (GPT-2's attention mask in transformers 5 uses it)."""
    from coremltools.converters.mil import Builder as mb
    from coremltools.converters.mil.frontend.torch import ops
    from coremltools.converters.mil.mil import types

    inputs = ops._get_inputs(context, node, min_expected=1)
    x = inputs[0]
    n, dim = int(_value(inputs, 1, 1)), int(_value(inputs, 2, -1))
    ends = [inputs[i] for i in (3, 4) if len(inputs) > i and inputs[i] is not None
            and getattr(inputs[i], "val", 0) is not None]
    axis = dim % x.rank
    if len(inputs) > 3 and inputs[3] is not None and ends and ends[0] is inputs[3]:
        x = mb.concat(values=[inputs[3], x], axis=axis)
    if len(inputs) > 4 and inputs[4] is not None and inputs[4] in ends:
        x = mb.concat(values=[x, inputs[4]], axis=axis)
    full = [True] * x.rank
    for _ in range(n):
        hi = mb.slice_by_index(x=x, begin=[1 if a == axis else 0 for a in range(x.rank)], end=[0] * x.rank,
                               begin_mask=[a != axis for a in range(x.rank)], end_mask=full)
        lo = mb.slice_by_index(x=x, begin=[0] * x.rank, end=[-1 if a == axis else 0 for a in range(x.rank)],
                               begin_mask=full, end_mask=[a != axis for a in range(x.rank)])
        x = mb.logical_xor(x=hi, y=lo) if types.is_bool(x.dtype) else mb.sub(x=hi, y=lo)
    context.add(mb.identity(x=x, name=node.name))


SHIMS = {"new_ones": _new_ones, "diff": _diff}
# Python operators that reach coremltools under their dunder name (transformers' masks)
ALIASES = {"__and__": "bitwise_and", "__or__": "bitwise_or", "__invert__": "bitwise_not",
           # torch.where(cond, tensor, scalar): eager attention's mask; coremltools has only the ScalarSelf form
           "where.scalarother": "where", "where_scalarother": "where",
           # torch.less & co. (onnx2torch's Less/Greater) keep their long names through torch.jit.trace
           "less": "lt", "greater": "gt", "less_equal": "le", "greater_equal": "ge"}


def register() -> None:
    global _done
    if _done:
        return
    from coremltools.converters.mil.frontend.torch.torch_op_registry import (
        _TORCH_OPS_REGISTRY,
        register_torch_op,
    )

    for name, fn in SHIMS.items():
        if name not in _TORCH_OPS_REGISTRY:
            fn.__name__ = name
            register_torch_op(fn)
    for name, existing in ALIASES.items():
        if name not in _TORCH_OPS_REGISTRY and existing in _TORCH_OPS_REGISTRY:
            _TORCH_OPS_REGISTRY[name] = _TORCH_OPS_REGISTRY[existing]
    _done = True
