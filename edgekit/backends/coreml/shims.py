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


SHIMS = {"new_ones": _new_ones}
# Python operators that reach coremltools under their dunder name (transformers' masks)
ALIASES = {"__and__": "bitwise_and", "__or__": "bitwise_or", "__invert__": "bitwise_not",
           # torch.where(cond, tensor, scalar): eager attention's mask; coremltools has only the ScalarSelf form
           "where.scalarother": "where", "where_scalarother": "where"}


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
