"""Where the data folders shipped with edgekit (targets/, models/, converters/) live."""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

_PKG = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """The installed copy (wheel) or, in a source checkout, the repository's folder."""
    for candidate in (_PKG / "_data" / name, _PKG.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"edgekit data folder {name!r} is missing from this installation")


@cache
def load_toml(folder: str, name: str) -> dict:
    with open(data_dir(folder) / name, "rb") as fh:
        return tomllib.load(fh)
