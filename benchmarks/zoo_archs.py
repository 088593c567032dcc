"""Real transformers architectures from small configs (random weights, fixed seed, offline), as
``module:factory`` specs edgekit loads: ``PYTHONPATH=benchmarks edgekit convert zoo_archs:resnet``.

Each factory returns (module, example inputs); the module takes tensors and returns the logits or
hidden states as plain tensors, as a user's export wrapper would.
"""

from __future__ import annotations

import torch
from torch import nn


class _Logits(nn.Module):
    """model(pixel_values) -> the output's first field (logits or last hidden state)."""

    def __init__(self, model: nn.Module, field: str):
        super().__init__()
        self.model = model.eval()
        self.field = field

    def forward(self, pixel_values):
        return getattr(self.model(pixel_values=pixel_values), self.field)


class _CausalLM(nn.Module):
    """model(input_ids) -> logits, no KV cache."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, input_ids):
        return self.model(input_ids=input_ids, use_cache=False).logits


class _Encoder(nn.Module):
    """model(input_ids, attention_mask) -> last hidden state."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.eval()

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


def _image(size: int = 64) -> tuple[torch.Tensor]:
    torch.manual_seed(1)
    return (torch.rand(1, 3, size, size),)


def resnet():
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    cfg = ResNetConfig(embedding_size=16, hidden_sizes=[16, 32, 64, 64], depths=[1, 1, 1, 1], num_labels=10)
    return _Logits(ResNetForImageClassification(cfg), "logits"), _image()


def convnext():
    from transformers import ConvNextConfig, ConvNextForImageClassification

    torch.manual_seed(0)
    cfg = ConvNextConfig(hidden_sizes=[16, 32, 64, 64], depths=[1, 1, 1, 1], num_labels=10)
    return _Logits(ConvNextForImageClassification(cfg), "logits"), _image()


def vit():
    from transformers import ViTConfig, ViTForImageClassification

    torch.manual_seed(0)
    cfg = ViTConfig(image_size=64, patch_size=8, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=128, num_labels=10)
    return _Logits(ViTForImageClassification(cfg), "logits"), _image()


def segformer():
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    torch.manual_seed(0)
    cfg = SegformerConfig(hidden_sizes=[16, 32, 48, 64], depths=[1, 1, 1, 1], num_attention_heads=[1, 1, 2, 2],
                          decoder_hidden_size=64, num_labels=5)
    return _Logits(SegformerForSemanticSegmentation(cfg), "logits"), _image()


def mobilevit():
    from transformers import MobileViTConfig, MobileViTForImageClassification

    torch.manual_seed(0)
    cfg = MobileViTConfig(image_size=64, hidden_sizes=[32, 48, 64], neck_hidden_sizes=[8, 16, 24, 32, 40, 48, 160],
                          num_labels=10)
    return _Logits(MobileViTForImageClassification(cfg), "logits"), _image()


def _tokens(seq: int = 16, vocab: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    return torch.randint(0, vocab, (1, seq)), torch.ones(1, seq, dtype=torch.long)


def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=500, n_positions=64, n_embd=64, n_layer=2, n_head=2, bos_token_id=0, eos_token_id=0)
    return _CausalLM(GPT2LMHeadModel(cfg)), _tokens()[:1]


def bert():
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=500, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128, max_position_embeddings=64)
    return _Encoder(BertModel(cfg)), _tokens()


class _WhisperEncoder(nn.Module):
    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.encoder = encoder.eval()

    def forward(self, input_features):
        return self.encoder(input_features=input_features).last_hidden_state


def whisper_encoder():
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    torch.manual_seed(0)
    cfg = WhisperConfig(vocab_size=500, num_mel_bins=80, d_model=64, encoder_layers=2, encoder_attention_heads=2,
                        decoder_layers=1, decoder_attention_heads=2, encoder_ffn_dim=128, decoder_ffn_dim=128,
                        max_source_positions=64, max_target_positions=32, pad_token_id=0,
                        bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
    encoder = WhisperEncoder(cfg)
    torch.manual_seed(1)
    return _WhisperEncoder(encoder), (torch.randn(1, 80, 128),)


ARCHS = {"resnet": "image classification", "convnext": "image classification",
         "vit": "image classification", "segformer": "semantic segmentation",
         "mobilevit": "image classification", "gpt2": "NLP: causal LM", "bert": "NLP: encoder",
         "whisper_encoder": "speech: encoder"}
