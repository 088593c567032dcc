"""Shared bits of the conformance harness: the environment a run records, error grouping, JSON."""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import subprocess
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgekit", "onnx", "onnxruntime", "openvino", "onnx2tf", "tensorflow", "ai-edge-litert",
            "litert-torch", "onnx2torch", "coremltools", "torch", "transformers", "numpy")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        from edgekit._cpu import host

        return host().model
    except Exception:
        return "unknown"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment() -> dict:
    """Date (UTC), CPU, core count, git commit and the versions of the converters and runtimes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "edgekit", "converters"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
        if dirty:
            commit += f" + {len(dirty)} uncommitted files in edgekit/ and converters/"
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cpu": _cpu_name(),
            "cores": os.cpu_count(), "commit": commit,
            "versions": {p: v for p in PACKAGES if (v := _version(p))}}


_PATH = re.compile(r"(/[\w.+-]+){2,}/?")
_NUM = re.compile(r"(?<![A-Za-z])\d+(\.\d+)?(e-?\d+)?")
_QUOTED = re.compile(r"(?<!named )'[^']{1,60}'")  # keeps module names


def error_key(answer: dict) -> str:
    """A message with paths, numbers and quoted names blanked, so like errors group together."""
    text = answer.get("error") or answer.get("status", "")
    text = _PATH.sub("<path>", str(text))
    text = _QUOTED.sub("'…'", text)
    text = _NUM.sub("N", text)
    return f"{answer.get('status')}: {text[:140]}"


def write_json(path: Path, doc: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)
