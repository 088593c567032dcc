"""Training on Ray Train (`--backend ray`): a short distillation on a local Ray, and the errors around it.

Marked ``ray``: each run starts (and stops) a local Ray of 2 CPUs; `-m 'not ray'` skips.
"""

import json
import shutil
from pathlib import Path

import pytest

from edgekit import EdgekitError
from edgekit.steps.train import TrainConfig
from tests.conftest import run_cli

pytestmark = pytest.mark.ray


@pytest.fixture
def digits_cache(tmp_path):
    """An $EDGEKIT_CACHE holding the trained digits CNN, so the subprocess does not train it again."""
    from edgekit.zoo import digits

    digits.cnn()
    (tmp_path / "cache" / "zoo").mkdir(parents=True)
    shutil.copy(digits._cache_path(), tmp_path / "cache" / "zoo")
    return tmp_path / "cache"


def test_digits_distilled_on_ray_is_converted_and_verified(tmp_path, digits_cache):
    storage = tmp_path / "ray-storage"
    args = ("compress", "--recipe", "models/digits-pruned.toml", "--to", "onnx", "--train-steps", "60",
            "--runs", "5", "--threads", "1", "--json")
    rc, out, err = run_cli(*args, "--out", str(tmp_path / "p"), "--backend", "ray", "--workers", "2",
                           "--storage", str(storage), "--dump-recipe", str(tmp_path / "run.toml"),
                           env={"EDGEKIT_CACHE": str(digits_cache)})
    assert rc == 0, err
    doc = json.loads(out)  # nothing from Ray or its workers reached stdout
    trained = doc["student"]["trained"]
    assert trained["backend"] == "ray" and trained["workers"] == 2 and trained["steps_done"] == 60
    assert "training on Ray Train (a local Ray): 2 workers" in err and "training: step" in err
    # the job's checkpoint is in the storage it was given, under a name made of the run's digest
    assert trained["checkpoint"].startswith(str(storage))
    assert list(storage.glob("edgekit-*/checkpoint_*/state.pt"))
    # the student came back and went through the local pipeline: converted, verified, evaluated
    (v,) = doc["variants"]
    assert (v["target"], v["mode"], v["status"]) == ("onnx", "prune", "pass"), v
    assert v["drop"] <= 2.0 and v["params"] <= 0.55 * v["baseline_params"]
    manifest = json.loads((tmp_path / "p" / "student" / "manifest.json").read_text())
    assert [a["target"] for a in manifest["artifacts"]] == ["onnx"]
    assert all(a["parity"]["status"] == "pass" for a in manifest["artifacts"]), manifest["artifacts"]
    assert (tmp_path / "p" / v["path"]).is_file()
    # --dump-recipe records where the job ran
    recipe = (tmp_path / "run.toml").read_text()
    assert 'backend = "ray"' in recipe and "workers = 2" in recipe and str(storage) in recipe
    # where a job runs is not part of what it trains: the same run, local, takes the cached student
    rc, out, err = run_cli(*args, "--out", str(tmp_path / "p2"), env={"EDGEKIT_CACHE": str(digits_cache)})
    assert rc == 0, err
    assert json.loads(out)["student"]["trained"]["cached"] is True


@pytest.fixture
def local_ray():
    """A Ray the test starts: train_on_ray uses it and leaves it running."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_layer_reduced_student_on_ray_stops_and_resumes(tmp_path, tiny_bert, local_ray):
    """A Hugging Face student (frozen embeddings) under DDP; a stopped job resumes from its Ray checkpoint."""
    import edgekit
    from edgekit.steps.distill import DistillConfig, distill, layer_reduced
    from tests.test_prune_distill import _sentences

    teacher = edgekit.load(tiny_bert, dims={"sequence": 32})
    samples = _sentences(teacher, 256).calibration.samples
    cfg = DistillConfig(loss="embedding", batch_size=16, train=TrainConfig(
        steps=20, lr=1e-3, checkpoint_every=10, time_budget_s=1e-6, backend="ray", workers=2,
        storage=str(tmp_path / "storage")))
    untrained = layer_reduced(teacher, 1).module.state_dict()
    student = layer_reduced(teacher, 1)
    first = distill(teacher, student, samples, None, cfg, tmp_path / "run")
    assert (first.backend, first.workers, first.stopped_early, first.steps_done) == ("ray", 2, True, 1)
    changed = [k for k, v in student.module.state_dict().items() if not v.equal(untrained[k])]
    assert changed  # the trained weights came back into the local module
    cfg.train.time_budget_s = None  # not part of the digest: the same run, resumed
    resumed = distill(teacher, layer_reduced(teacher, 1), samples, None, cfg, tmp_path / "run")
    assert resumed.resumed_from == 1 and resumed.steps_done == 20 and not resumed.stopped_early
    assert resumed.checkpoint.startswith(str(tmp_path / "storage" / "edgekit-run-"))
    assert (Path(resumed.checkpoint) / "state.pt").is_file()
    assert local_ray.is_initialized()  # a Ray it did not start is left running


def test_digest_ignores_where_the_job_runs():
    base = TrainConfig(steps=10)
    ray = TrainConfig(steps=10, backend="ray", address="ray://head:10001", workers=4, storage="s3://bucket/runs")
    assert base.digest() == ray.digest() != TrainConfig(steps=11).digest()


def test_unreachable_address_is_named_with_the_fix(tmp_path, digits_cache):
    import socket

    with socket.socket() as s:  # a port nothing listens at
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, _, err = run_cli("compress", "edgekit.zoo.digits:cnn", "--data", "edgekit.zoo.digits:data", "--prune",
                         "structured:0.5", "--to", "onnx", "--out", str(tmp_path / "o"), "--train-steps", "5",
                         "--backend", "ray", "--address", f"ray://127.0.0.1:{port}",
                         env={"EDGEKIT_CACHE": str(digits_cache)})
    assert rc == 2, err
    assert f"the Ray cluster at ray://127.0.0.1:{port} cannot be reached" in err
    assert "fix:" in err and "--address" in err


def test_ray_with_nothing_to_train_or_without_ray_is_refused(tmp_path, monkeypatch):
    rc, _, err = run_cli("compress", "edgekit.zoo.digits:cnn", "--data", "edgekit.zoo.digits:data", "--quantize",
                         "onnx:dynamic-int8", "--to", "onnx", "--out", str(tmp_path / "o"), "--backend", "ray")
    assert rc == 2 and "trains nothing" in err, err
    rc, _, err = run_cli("compress", "edgekit.zoo.digits:cnn", "--data", "edgekit.zoo.digits:data", "--quantize",
                         "onnx:dynamic-int8", "--to", "onnx", "--out", str(tmp_path / "o"), "--workers", "2")
    assert rc == 2 and "add --backend ray" in err, err
    # no ray: the error names the extra to install
    import sys

    from edgekit.steps.train_ray import train_on_ray

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(EdgekitError, match=r"ray is not installed \(Ray Train\)") as info:
        train_on_ray(None, None, None, TrainConfig(backend="ray"), tmp_path)
    assert "edgekit[ray]" in info.value.fix
