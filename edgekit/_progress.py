"""How a long run shows its progress: the stages it goes through, and training's steps.

A *stage* is a named part of a run ("converting the fp32 baselines"): ``stage(text)`` returns a
context manager around it (the CLI shows a spinner, then the time it took). Training reports
``training(step, total, loss, elapsed)`` as it goes. Both are optional: by default nothing shows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Stage = Callable[[str], contextlib.AbstractContextManager]


def no_stage(_text: str) -> contextlib.AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class Progress:
    """The callbacks of one run: ``stage`` around each stage, ``training`` for training steps."""

    stage: Stage = no_stage
    training: Callable[..., Any] | None = None
