"""Small real models built in the tests (random weights, fixed seeds).

Importable as ``tests.fixtures:tiny_cnn`` from the repository root, which is how
edgekit's ``package.module:factory`` specs name them.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn


class TinyCNN(nn.Module):
    """conv-bn-relu, a depthwise-separable block, pooling and a classifier: 10 classes."""

    def __init__(self, channels: int = 3, classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(channels, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU())
        self.dw = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 32, 1),
                                nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Linear(32, classes)

    def forward(self, pixels):
        x = self.dw(self.stem(pixels))
        return self.head(x.mean(dim=(2, 3)))


def _init(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):  # non-trivial running statistics
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model.eval()


def tiny_cnn():
    """(module, example inputs): static 1x3x32x32."""
    torch.manual_seed(0)
    return _init(TinyCNN()), (torch.rand(1, 3, 32, 32),)


def tiny_cnn_module():
    """A bare module: the caller gives --input."""
    torch.manual_seed(0)
    return _init(TinyCNN())


class Unconvertible(nn.Module):
    """Uses an op coremltools has no converter for."""

    def forward(self, x):
        return torch.special.i0(x)


def unconvertible():
    return Unconvertible().eval(), (torch.rand(1, 8),)


def tiny_bert_folder(folder: Path, classify: bool = False) -> Path:
    """A 2-layer BERT from a transformers config (random weights) with a real WordPiece tokenizer."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(995)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tok = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
    tok.save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(words), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64, num_labels=3)
    torch.manual_seed(0)
    model = (BertForSequenceClassification if classify else BertModel)(config).eval()
    model.save_pretrained(str(folder))
    return folder


class _Diff(nn.Module):
    def forward(self, x):
        return torch.diff(x, dim=-1) * 2, torch.diff(x, n=2, dim=1)


def diff_module():
    """torch.diff, which coremltools 9 has no converter for (edgekit's shim gives it one)."""
    return _Diff(), (torch.randn(2, 5, 7),)
