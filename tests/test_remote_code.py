"""A Hugging Face folder with its own Python code (config ``auto_map``) runs only with
--trust-remote-code: the real CLI in a subprocess, ``y`` piped on its stdin."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

CONFIG_PY = '''
import pathlib
from transformers import PretrainedConfig

pathlib.Path({marker!r}).write_text("configuration_tiny ran")  # proof that the folder's code ran


class TinyConfig(PretrainedConfig):
    model_type = "edgekit-tiny-remote"

    def __init__(self, image_size=8, num_channels=3, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.num_channels = image_size, num_channels
'''

MODELING_PY = '''
import torch
from transformers import PreTrainedModel
from transformers.modeling_outputs import ImageClassifierOutput

from .configuration_tiny import TinyConfig


class TinyForImageClassification(PreTrainedModel):
    config_class = TinyConfig

    def __init__(self, config):
        super().__init__(config)
        self.fc = torch.nn.Linear(config.num_channels * config.image_size ** 2, config.num_labels)
        self.post_init()

    def forward(self, pixel_values):
        return ImageClassifierOutput(logits=self.fc(pixel_values.flatten(1)))
'''


def remote_code_folder(folder: Path, marker: Path) -> Path:
    """A tiny image classifier whose config maps AutoConfig and the model class to its own files."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({
        "model_type": "edgekit-tiny-remote", "architectures": ["TinyForImageClassification"],
        "auto_map": {"AutoConfig": "configuration_tiny.TinyConfig",
                     "AutoModelForImageClassification": "modeling_tiny.TinyForImageClassification"},
        "image_size": 8, "num_channels": 3, "num_labels": 2}))
    (folder / "configuration_tiny.py").write_text(CONFIG_PY.format(marker=str(marker)))
    (folder / "modeling_tiny.py").write_text(MODELING_PY)
    gen = torch.Generator().manual_seed(0)
    save_file({"fc.weight": torch.randn(2, 192, generator=gen), "fc.bias": torch.zeros(2)},
              str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def _convert(folder: Path | None, out: Path, modules: Path, *flags: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_MODULES_CACHE": str(modules), "HF_HUB_OFFLINE": "1"}
    source = [str(folder)] if folder else []
    return subprocess.run([sys.executable, "-m", "edgekit", "convert", *source, "--to", "onnx", "--out", str(out),
                           *flags], cwd=ROOT, input="y\ny\ny\n", capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture()
def folder(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "remote-code-ran"
    return remote_code_folder(tmp_path / "tiny-remote", marker), marker


def test_remote_code_refused_even_with_yes_on_stdin(folder, tmp_path):
    model, marker = folder
    proc = _convert(model, tmp_path / "out", tmp_path / "modules")
    assert proc.returncode == 2, proc.stderr
    assert "--trust-remote-code" in proc.stderr and "auto_map" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists()  # the folder's code never ran
    assert not (tmp_path / "out").exists()


def test_remote_code_loads_with_the_flag(folder, tmp_path):
    model, marker = folder
    proc = _convert(model, tmp_path / "out", tmp_path / "modules", "--trust-remote-code")
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "configuration_tiny ran"
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [a["target"] for a in manifest["artifacts"]] == ["onnx"]


def test_recipe_field_is_the_other_way_in(folder, tmp_path):
    import edgekit
    from edgekit import EdgekitError

    model, marker = folder
    with pytest.raises(EdgekitError, match="--trust-remote-code"):
        edgekit.load(model)  # the Python API is gated too
    assert not marker.exists()
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model]\nsource = "{model}"\ntrust_remote_code = true\n')
    proc = _convert(None, tmp_path / "out", tmp_path / "modules", "--recipe", str(recipe))
    assert proc.returncode == 0, proc.stderr
    assert marker.exists()
