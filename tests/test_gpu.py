"""The training loop on CUDA with mixed precision: runs where a GPU is, skipped elsewhere."""

import pytest
import torch

import edgekit
from edgekit.steps.distill import DistillConfig, distill, layer_reduced
from edgekit.steps.train import TrainConfig
from tests.conftest import ROOT

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_distillation_runs_on_cuda_with_amp(tmp_path, tiny_bert):
    from edgekit._datasets import load_data

    teacher = edgekit.load(tiny_bert, dims={"sequence": 32})
    data = load_data(ROOT / "models" / "data" / "sentences.txt", teacher, calibration=256, evaluation=32)
    cfg = DistillConfig(loss="embedding", batch_size=32, train=TrainConfig(steps=20, lr=1e-3, device="auto"))
    result = distill(teacher, layer_reduced(teacher, 1), data.calibration.samples, None, cfg, tmp_path / "run")
    assert result.device == "cuda" and result.steps_done == 20
    assert torch.isfinite(torch.tensor(result.final_loss))
