"""A long-lived worker process for the conformance harness, with a timeout per job.

Each job (a JSON object) goes to the worker on its stdin; the worker writes its answer, one JSON
object, to the job's ``result`` file. A job that runs past its timeout, or a worker that dies
(a converter's segfault, the OOM killer), kills the worker; the next job starts a fresh one. The
worker's own stdout/stderr (converters' chatter) go to a log file, never to the harness's output.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class Worker:
    """``run(job, timeout)`` -> the worker's answer, or {"status": "error", "error": ...}."""

    def __init__(self, workdir: Path, log: Path):
        self.workdir = workdir
        self.log = log
        self.proc: subprocess.Popen | None = None

    def _start(self) -> subprocess.Popen:
        # OPENBLAS_NUM_THREADS=1: with LiteRT/TF threads in the same process, OpenBLAS's threaded
        # dot product was seen to deadlock in edgekit's parity check (exec_blas_async_wait).
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "HF_HUB_OFFLINE": "1", "OPENBLAS_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        logf = open(self.log, "ab")  # noqa: SIM115 - handed to the child, closed with it
        # a session of its own: close() kills the worker and whatever it forked (converters fork helpers)
        proc = subprocess.Popen([sys.executable, str(HERE / "_conformance_worker.py")], stdin=subprocess.PIPE,
                                stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT, env=env, text=True,
                                start_new_session=True)
        logf.close()
        return proc

    def run(self, job: dict, timeout: float) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        result = self.workdir / f"result-{uuid.uuid4().hex}.json"
        self.workdir.mkdir(parents=True, exist_ok=True)
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({**job, "result": str(result)}) + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            self.close()
            return {"status": "error", "error": "worker died before the job started"}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result.exists():
                answer = json.loads(result.read_text())
                result.unlink()
                return answer
            if self.proc.poll() is not None:
                code = self.proc.returncode
                self.proc = None
                return {"status": "error", "error": f"worker crashed (exit code {code})"}
            time.sleep(0.05)
        self.close()
        return {"status": "error", "error": f"timeout after {timeout:.0f} s"}

    def close(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the worker and its children
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.proc = None
