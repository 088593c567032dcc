import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(autouse=True)
def _repo_cwd(monkeypatch):
    """Run from the repository root, so `tests.fixtures:...` factory specs import."""
    monkeypatch.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from tests.fixtures import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_bert_classifier(tmp_path_factory) -> Path:
    from tests.fixtures import tiny_bert_folder

    return tiny_bert_folder(tmp_path_factory.mktemp("tiny-bert-cls"), classify=True)


def run_cli(*args: str, env: dict | None = None):
    """The real `edgekit` command in a subprocess: (exit code, stdout, stderr)."""
    import subprocess

    proc = subprocess.run([sys.executable, "-m", "edgekit", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=900)
    return proc.returncode, proc.stdout, proc.stderr
