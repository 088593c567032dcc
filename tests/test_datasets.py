"""--data formats, loaded for real and split without overlap."""

import numpy as np
import pytest

import edgekit
from edgekit._datasets import load_data
from edgekit._errors import EdgekitError
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def cnn():
    return edgekit.load("tests.fixtures:tiny_cnn")


def _key(sample):
    return tuple(np.asarray(v).tobytes() for v in sample.values())


def test_npz_split_is_disjoint_and_keeps_labels(tmp_path, cnn):
    x = np.random.default_rng(0).random((100, 3, 32, 32), dtype=np.float32)
    np.savez(tmp_path / "d.npz", pixels=x, labels=np.arange(100) % 10)
    data = load_data(tmp_path / "d.npz", cnn, calibration=60, evaluation=20)
    assert len(data.evaluation) == 25 or len(data.evaluation) == 20
    cal, ev = {_key(s) for s in data.calibration.samples}, {_key(s) for s in data.evaluation.samples}
    assert not cal & ev
    assert data.evaluation.labels is not None and len(data.evaluation.labels) == len(data.evaluation)


def test_image_folder_with_class_subfolders(tmp_path):
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i in range(60):
        folder = tmp_path / "imgs" / str(digits.target[i])
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((digits.images[i] * 16).clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    model = edgekit.load("edgekit.zoo.digits:cnn")
    data = load_data(tmp_path / "imgs", model, calibration=30, evaluation=15)
    assert data.calibration.samples[0]["image"].shape == (1, 1, 8, 8)
    assert 0.0 <= data.calibration.samples[0]["image"].min() and data.calibration.samples[0]["image"].max() <= 1.0
    # labels come from the folder names, and the trained CNN reads the images correctly
    from edgekit.steps.evaluate import run_source

    outs = run_source(model, data.evaluation.samples)
    acc = np.mean([o[0].argmax() == int(lab) for o, lab in zip(outs, data.evaluation.labels, strict=True)])
    assert acc >= 0.9


def test_text_file_is_tokenized(tiny_bert):
    model = edgekit.load(tiny_bert, dims={"sequence": 24})
    data = load_data(ROOT / "models" / "data" / "sentences.txt", model, calibration=40, evaluation=20)
    s = data.calibration.samples[0]
    assert set(s) == {"input_ids", "token_type_ids", "attention_mask"}
    assert s["input_ids"].shape == (1, 24) and s["input_ids"].dtype == np.int64
    assert data.calibration.labels is None


def test_python_callable_and_module_callable(cnn):
    def batches():
        rng = np.random.default_rng(1)
        return [{"pixels": rng.random((4, 3, 32, 32), dtype=np.float32)} for _ in range(10)]

    data = load_data(batches, cnn, calibration=20, evaluation=10)
    assert len(data.calibration) == 20 and len(data.evaluation) == 10
    with pytest.raises(EdgekitError, match="cannot import data callable"):
        load_data("nowhere.mod:fn", cnn)
