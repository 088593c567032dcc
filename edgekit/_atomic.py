"""Atomic output folders: a run writes everything into a temporary folder beside ``out``, which
replaces ``out`` only when the whole run succeeded. A failed or interrupted run leaves ``out``
as it was (no half-written folder), and no temporary folder behind."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ._errors import EdgekitError

RESULT_FILES = ("manifest.json", "report.json")  # a folder holding one of these was written by edgekit


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder edgekit did not write (unless ``force``)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise EdgekitError(f"--out {out} is a file", "give a folder path")
    ours = any((out / name).is_file() for name in RESULT_FILES)
    if out.is_dir() and any(out.iterdir()) and not ours and not force:
        raise EdgekitError(f"--out {out} is a non-empty folder edgekit did not write",
                           "give a new or empty folder, or pass --force to replace it")


@contextlib.contextmanager
def atomic_folder(out: Path) -> Iterator[Path]:
    """Yield a new empty folder beside ``out`` (``.NAME.tmp-XXXX``, mode 0755) to write into.

    When the block ends normally, the folder replaces ``out`` (an existing ``out`` is removed
    first); when it raises anything (KeyboardInterrupt too), the folder is removed, ``out`` is
    untouched and the exception propagates. ``out``'s parent is created when missing.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
