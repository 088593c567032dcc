"""A small CNN trained in seconds on scikit-learn's bundled digits (1,797 real 8x8 images).

The split is fixed (``train_test_split(test_size=0.25, random_state=0, stratify=y)``):
1,347 training images, 450 held out. Calibration draws from the training split;
evaluation uses only the held-out split.

    edgekit compress edgekit.zoo.digits:cnn --data edgekit.zoo.digits:data ...
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import numpy as np

from .._lazy import require

EPOCHS = 12
SEED = 0


@cache
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    datasets = require("sklearn.datasets", "the digits data")
    model_selection = require("sklearn.model_selection", "the digits data")
    digits = datasets.load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None, :, :]  # N x 1 x 8 x 8, in [0, 1]
    y = digits.target.astype(np.int64)
    return tuple(model_selection.train_test_split(x, y, test_size=0.25, random_state=SEED, stratify=y))


def build(width: int = 32):
    """The architecture: three conv blocks and a two-layer head (~226k parameters at width 32)."""
    nn = require("torch.nn", "the digits CNN")
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, padding=1), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * w, 4 * w, 3, padding=1), nn.BatchNorm2d(4 * w), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(4 * w * 4, 8 * w), nn.ReLU(), nn.Linear(8 * w, 10),
    )


def train(epochs: int = EPOCHS, width: int = 32):
    """Train deterministically on the training split (a few seconds on 2 CPU cores)."""
    torch = require("torch", "the digits CNN")
    x_train, _, y_train, _ = _split()
    torch.manual_seed(SEED)
    model = build(width)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=epochs * ((len(x_train) + 63) // 64))
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    gen = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(xt[idx]), yt[idx])
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def _cache_path() -> Path:
    root = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit"))
    return root / "zoo" / f"digits-cnn-e{EPOCHS}-s{SEED}.pt"


def cnn():
    """(module, example input): the trained CNN, cached as a state_dict after the first training."""
    torch = require("torch", "the digits CNN")
    path = _cache_path()
    model = build()
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        model.eval()
    else:
        model = train()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(path)
    return model, {"image": torch.zeros(1, 1, 8, 8)}


def data():
    """Calibration (training split) and evaluation (held-out split) batches, with labels."""
    x_train, x_test, y_train, y_test = _split()
    return {
        "calibration": [({"image": x_train[i:i + 1]}, y_train[i:i + 1]) for i in range(len(x_train))],
        "evaluation": [({"image": x_test[i:i + 1]}, y_test[i:i + 1]) for i in range(len(x_test))],
    }


def accuracy(model=None) -> float:
    """Held-out accuracy of a torch model (the trained CNN by default)."""
    torch = require("torch")
    model = model if model is not None else cnn()[0]
    _, x_test, _, y_test = _split()
    with torch.no_grad():
        pred = model(torch.from_numpy(x_test)).argmax(-1).numpy()
    return float((pred == y_test).mean())
