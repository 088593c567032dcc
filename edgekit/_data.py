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


def load_device_profile(name: str, what: str = "device profile") -> dict:
    """``targets/NAME.toml``; an EdgekitError listing the profiles for an unknown name."""
    from ._errors import EdgekitError

    files = {p.stem: p.name for p in data_dir("targets").glob("*.toml")}
    if name not in files:
        raise EdgekitError(f"unknown {what} {name!r}", f"use one of {', '.join(sorted(files))} (targets/*.toml)")
    return load_toml("targets", files[name])
