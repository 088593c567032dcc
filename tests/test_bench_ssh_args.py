"""The bench's ssh and scp command lines: every remote argument quoted, ``--`` before the host.

No sshd is needed: ``ssh`` and ``scp`` on PATH are stand-ins that record their argv and
succeed, so the exact command lines edgekit runs can be read back and parsed as the
remote shell would parse them.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
from pathlib import Path

import numpy as np

from edgekit.bench.host import Item, SSHDevice

RECORDER = """#!{python}
import json, sys
with open({log!r}, "a") as fh:
    fh.write(json.dumps(sys.argv) + "\\n")
"""


def _recorders(tmp_path: Path, monkeypatch) -> Path:
    import sys

    bin_dir, log = tmp_path / "bin", tmp_path / "argv.jsonl"
    bin_dir.mkdir()
    for name in ("ssh", "scp"):
        exe = bin_dir / name
        exe.write_text(RECORDER.format(python=sys.executable, log=str(log)))
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def test_ssh_and_scp_commands_quote_everything_and_end_options(tmp_path, monkeypatch):
    log = _recorders(tmp_path, monkeypatch)
    evil_user = "-oProxyCommand=touch${IFS}pwned"  # a host that would be read as an option without "--"
    dev = SSHDevice(f"ssh://{evil_user}@device.local:2222", python="python3")
    target = f"{evil_user}@device.local"
    artifact = tmp_path / "my model.onnx"
    artifact.write_bytes(b"onnx")
    inputs = tmp_path / "inputs.npz"
    np.savez(inputs, x=np.zeros(1))
    fmt = "onnx;touch pwned"  # a format from a hostile manifest: one argument, never a second command
    item = Item(artifact, fmt, "my model.onnx", None, {})
    dev.run(item, inputs, ["--threads", "2", "--profile $(id)"], timeout=30, workdir="/tmp/edgekit-bench.ab12")
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    ssh_calls = [c for c in calls if Path(c[0]).name == "ssh"]
    scp_calls = [c for c in calls if Path(c[0]).name == "scp"]
    assert ssh_calls and scp_calls
    for argv in ssh_calls:
        assert argv[-3:-1] == ["--", target], argv  # "--" right before the host; the command after it
    for argv in scp_calls:
        dashes = argv.index("--")  # options before it; files and host:path after, never read as options
        assert not any(target in a for a in argv[:dashes]), argv
        assert any(a.startswith(f"{target}:") for a in argv[dashes + 1:]), argv
    remote = shlex.split(ssh_calls[-1][-1])  # as the device's shell splits it
    assert remote[:3] == ["cd", remote[1], "&&"]
    runner = remote[3:]
    assert runner[runner.index("--format") + 1] == fmt
    assert runner[runner.index("--artifact") + 1] == "my model.onnx"
    assert runner[-3:] == ["--threads", "2", "--profile $(id)"]
    assert ";" not in [t for t in remote if t != fmt]
