"""Local Hugging Face model folders (transformers; sentence-transformers pooling kept)."""

from __future__ import annotations

import json
from pathlib import Path

from ..._errors import EdgekitError
from ..._lazy import require
from ..._types import Model, Signature, TensorSpec
from ._torch import signature_from_run, with_named_inputs

# task -> transformers Auto class and the output it returns
TASKS = {
    "feature-extraction": ("AutoModel", "last_hidden_state"),
    "sentence-embedding": ("AutoModel", "last_hidden_state"),
    "text-classification": ("AutoModelForSequenceClassification", "logits"),
    "token-classification": ("AutoModelForTokenClassification", "logits"),
    "fill-mask": ("AutoModelForMaskedLM", "logits"),
    "image-classification": ("AutoModelForImageClassification", "logits"),
}
_SUFFIX_TASK = {
    "ForSequenceClassification": "text-classification",
    "ForTokenClassification": "token-classification",
    "ForMaskedLM": "fill-mask",
    "ForImageClassification": "image-classification",
}


def _sentence_transformers_pooling(folder: Path) -> dict | None:
    """Mean pooling (and normalisation) as sentence-transformers' modules.json declares it."""
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = json.loads(modules_file.read_text())
    pooling = next((m for m in modules if m.get("type", "").endswith("Pooling")), None)
    if pooling is None:
        return None
    cfg = json.loads((folder / pooling.get("path", "") / "config.json").read_text())
    if not cfg.get("pooling_mode_mean_tokens"):
        return None  # only mean pooling is reproduced in-graph
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    return {"mode": "mean", "normalize": normalize}


def infer_task(folder: Path, config: dict) -> str:
    for arch in config.get("architectures") or []:
        for suffix, task in _SUFFIX_TASK.items():
            if arch.endswith(suffix):
                return task
    if _sentence_transformers_pooling(folder):
        return "sentence-embedding"
    return "feature-extraction"


def _from_pretrained(auto, folder: Path, trust_remote_code: bool = False):
    """Eager attention: exported, it is the plain MatMul-Softmax-MatMul that OpenVINO fuses into one
    attention kernel and ONNX Runtime runs without the NaN guard torch's SDPA export adds. On MiniLM:
    OpenVINO static int8 6.28 -> 5.49 ms, ORT dynamic int8 14.2 -> 13.3 ms (1 thread); LiteRT unchanged.
    A model class without the option loads as it is."""
    kw = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    try:
        return auto.from_pretrained(str(folder), attn_implementation="eager", **kw).eval()
    except (TypeError, ValueError):
        return auto.from_pretrained(str(folder), **kw).eval()


def check_remote_code(folder: Path, config: dict, trust_remote_code: bool) -> None:
    """A folder whose config (or tokenizer config) maps to its own Python code (``auto_map``)
    runs that code when loaded: refused unless ``trust_remote_code``. transformers would
    otherwise ask on stdin, where a piped ``y`` says yes."""
    if trust_remote_code:
        return
    maps = {"config.json": config.get("auto_map")}
    tok_file = folder / "tokenizer_config.json"
    if tok_file.is_file():
        try:
            maps["tokenizer_config.json"] = json.loads(tok_file.read_text()).get("auto_map")
        except (ValueError, AttributeError):
            pass  # not ours to judge; transformers will say what is wrong with it
    found = {name: m for name, m in maps.items() if m}
    if found:
        where = "; ".join(f"{name} auto_map {m}" for name, m in found.items())
        raise EdgekitError(f"{folder} ships its own Python code, which loading it would run ({where})",
                           "read that code first; if you trust it, pass --trust-remote-code "
                           "(trust_remote_code = true in the recipe's [model], or trust_remote_code=True in "
                           "edgekit.load)")


def load_hf_folder(folder: Path, task: str | None, dims: dict[str, int], trust_remote_code: bool = False) -> Model:
    torch = require("torch", "Hugging Face models")
    transformers = require("transformers", "Hugging Face models")
    config = json.loads((folder / "config.json").read_text())
    check_remote_code(folder, config, trust_remote_code)
    task = task or infer_task(folder, config)
    if task not in TASKS:
        raise EdgekitError(f"unknown task {task!r}", f"use one of {sorted(TASKS)}")
    auto_cls, output_name = TASKS[task]
    try:
        hf_model = _from_pretrained(getattr(transformers, auto_cls), folder, trust_remote_code)
    except Exception as exc:
        raise EdgekitError(f"transformers cannot load {folder} as {task} ({exc})",
                           "check the folder holds config.json and weights, or give --task") from exc
    meta: dict = {"hf_config": config, "vocab_size": config.get("vocab_size")}
    if task == "image-classification":
        size = config.get("image_size", 224)
        names = ["pixel_values"]
        example = [torch.rand(1, config.get("num_channels", 3), size, size)]
        axes = [{0: "batch"}]
    else:
        names, example, dims = _text_inputs(transformers, torch, folder, config, dims, trust_remote_code, meta)
        axes = [{0: "batch", 1: "sequence"} for _ in names]
    pooling = _sentence_transformers_pooling(folder) if task == "sentence-embedding" else None
    module = with_named_inputs(_wrapper(torch, names, output_name, pooling), names)(hf_model).eval()
    sig = signature_from_run(module, names, example, axes)
    out_names = [output_name] + (["sentence_embedding"] if pooling else [])
    seq_axes = {0: "batch", 1: "sequence"} if task != "image-classification" else {0: "batch"}
    outputs = [
        TensorSpec(n, tuple(seq_axes.get(i, d) if (n != "sentence_embedding" or i == 0) else d
                            for i, d in enumerate(o.shape)), o.dtype)
        for n, o in zip(out_names, sig.outputs, strict=True)
    ]
    if task in ("text-classification", "image-classification"):
        outputs = [TensorSpec(o.name, ("batch", *o.shape[1:]), o.dtype) for o in outputs]
    meta["example"] = example
    meta["hf_dir"] = str(folder)
    if pooling:
        meta["pooling"] = pooling
    return Model(spec=str(folder), format="hf", signature=Signature(sig.inputs, outputs), dims=dims or {"batch": 1},
                 path=folder, task=task, module=module, meta=meta)


def _text_inputs(transformers, torch, folder: Path, config: dict, dims: dict[str, int], trust_remote_code: bool,
                 meta: dict) -> tuple[list[str], list, dict[str, int]]:
    """A text model's input names (its tokenizer's), example inputs and dims; the tokenizer goes to meta."""
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True,
                                                               trust_remote_code=trust_remote_code)
    except Exception as exc:
        raise EdgekitError(f"{folder} has no usable tokenizer ({exc})",
                           "save the tokenizer into the model folder (tokenizer.save_pretrained)") from exc
    names = list(tokenizer.model_input_names)
    seq = dims.get("sequence") or min(128, config.get("max_position_embeddings") or 128)
    batch = dims.get("batch", 1)
    example = []
    for n in names:
        if "mask" in n:
            example.append(torch.ones(batch, seq, dtype=torch.long))
        elif "type" in n:
            example.append(torch.zeros(batch, seq, dtype=torch.long))
        else:
            example.append(torch.randint(1000 % meta["vocab_size"], meta["vocab_size"], (batch, seq)))
    meta["tokenizer"] = tokenizer
    return names, example, {"batch": batch, "sequence": seq}


def _wrapper(torch, names: list[str], output_name: str, pooling: dict | None):
    """A module class whose forward(*inputs) returns a tuple of outputs, the sentence embedding included."""

    class HFWrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, *args):
            kwargs = dict(zip(names, args, strict=True))
            hidden = getattr(self.inner(**kwargs), output_name)
            if pooling is None:
                return (hidden,)
            mask = kwargs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            if pooling["normalize"]:
                emb = emb / emb.norm(dim=-1, keepdim=True).clamp(min=1e-12)
            return hidden, emb

    return HFWrapper
