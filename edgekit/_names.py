"""One meaning per word, and the names 0.1 used, still accepted (with a warning) for one release.

- a **target** is an output format: ``--to onnx,tflite`` (``backends/<target>/``);
- a **device** is a profile in ``targets/*.toml`` (CPU, threads, runtimes, budgets): ``--device
  raspberry-pi-5``; before, ``--target`` (and the recipe's ``[compress] target_device``);
- where `edgekit bench` runs is ``--on local|ssh://user@host|adb://SERIAL``; before, ``--device``;
- where training runs is ``--train-device auto|cpu|cuda``; before, ``compress --device``.

The old spellings are told apart from the new by their values: a place has ``://`` (or is
``local``), a training device is a torch device name; neither can name a profile.
"""

from __future__ import annotations

import re
import warnings

_TORCH_DEVICE = re.compile(r"(auto|cpu|mps|xpu|cuda)(:\d+)?")


def is_place(value: str) -> bool:
    """Where a benchmark runs (``local``, ``ssh://...``, ``adb://...``), not a device profile."""
    return value == "local" or "://" in value


def is_torch_device(value: str) -> bool:
    """A training device (``auto``, ``cpu``, ``cuda``, ``cuda:1``...), not a device profile."""
    return _TORCH_DEVICE.fullmatch(value) is not None


def deprecated(message: str) -> None:
    """Warn (FutureWarning: shown by default, on stderr) that an old name was used."""
    warnings.warn(message, FutureWarning, stacklevel=3)
