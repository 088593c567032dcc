"""ExecuTorch: torch.export lowered to the XNNPACK delegate, written as a .pte, run by
ExecuTorch's Python runtime; int8 by pt2e with the XNNPACK quantizer.

    convert.from_torch(model, dest_dir, precision, ctx) -> (Path, notes)   # the one route
    runtime.ExecuTorchRunner(path, threads=None, source=None)  .signature  .run(feeds)
    quantize.quantize(src, dest_dir, mode, calib, opts, model=source) -> QuantResult
    device.load(path, threads) -> (run, handle, runtime_info)   # numpy + executorch only

Importing this package imports neither torch nor executorch; ``SPEC`` describes the target.
"""

from .spec import SPEC

__all__ = ["SPEC"]
