"""`edgekit bench --lengths FILE`: latency over a real length distribution, beside the fixed shape.

FILE is either a text file of sentences, one a line, tokenized with the tokenizer the output
folder keeps (``tokenizer/tokenizer.json``, which `edgekit convert` saves beside the artifacts),
or a file of integer lengths, one a line (token counts, specials included). Each length is run
at the shape the artifact runs it at: padded to the smallest bucket that holds it (an artifact
converted with ``--shape-buckets``), to its static size (LiteRT, Core ML, ExecuTorch without
buckets), or at the length itself (a dynamic ONNX or OpenVINO graph, up to the size `convert`
verified it at: the manifest's ``dims``). A length over the largest size the artifact takes is cut
to it, and counted (``truncated``), as an application truncates its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._errors import EdgekitError


@dataclass
class Lengths:
    """The lengths of FILE and what they came from."""

    values: list[int]
    source: str  # "FILE: 500 sentences, tokenized with DIR/tokenizer/tokenizer.json" / "FILE: 500 lengths"


def read_lengths(path: str | Path, bench_path: str | Path) -> Lengths:
    """The lengths in ``path``: integers as they are, sentences through the folder's tokenizer."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"--lengths {path} does not exist", "give a text file, one sentence (or length) a line")
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    if not lines:
        raise EdgekitError(f"--lengths {path} is empty", "give one sentence (or one integer length) a line")
    if all(ln.isdigit() for ln in lines):
        values = [int(ln) for ln in lines]
        if min(values) < 1:
            raise EdgekitError(f"--lengths {path} holds a length of 0", "give lengths of 1 or more")
        return Lengths(values, f"{path.name}: {len(values)} lengths")
    tok_file = find_tokenizer(Path(bench_path))
    if tok_file is None:
        raise EdgekitError(f"--lengths {path} holds text, and no tokenizer was found beside {bench_path}",
                           "bench an edgekit output folder that keeps tokenizer/tokenizer.json, or give a file of "
                           "integer lengths (one token count a line)")
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_file))
    tok.no_truncation()
    tok.no_padding()
    values = [len(e.ids) for e in tok.encode_batch(lines)]
    return Lengths(values, f"{path.name}: {len(values)} sentences, tokenized with {tok_file.parent.name}/{tok_file.name}")


def find_tokenizer(path: Path) -> Path | None:
    """``tokenizer/tokenizer.json`` of the output folder holding ``path`` (a compress folder: in fp32/)."""
    for folder in [path, *list(path.resolve().parents)[:3]]:
        for cand in (folder / "tokenizer" / "tokenizer.json", folder / "fp32" / "tokenizer" / "tokenizer.json"):
            if cand.is_file():
                return cand
    return None


def length_axis(source_inputs: list[dict], buckets: dict | None) -> str:
    """The axis the lengths are of: the bucket axis, else the one sequence axis of the inputs."""
    if buckets and buckets.get("axes"):
        axes = list(buckets["axes"])
        if len(axes) == 1:
            return axes[0]
    named = {d for s in source_inputs for d in s["shape"] if isinstance(d, str) and d != "batch"}
    seq = sorted(d for d in named if "seq" in d.lower()) or sorted(named)
    if len(seq) != 1:
        raise EdgekitError(f"--lengths needs one sequence axis to size; the inputs name {sorted(named) or 'none'}",
                           "bench a text model (inputs [batch, sequence]), or drop --lengths")
    return seq[0]


def run_size(length: int, axis: str, buckets: dict | None, static: int | None, cap: int | None = None) -> int:
    """The size a ``length`` runs at: its bucket, the static size, or itself (a dynamic graph, up
    to ``cap``); a length over the largest is cut to it."""
    if buckets and axis in (buckets.get("axes") or {}):
        from ..runtime import pick_bucket

        sizes = sorted(buckets["axes"][axis])
        return (pick_bucket({axis: sizes}, {axis: length}) or {axis: sizes[-1]})[axis]
    if static is not None:
        return static
    return min(length, cap) if cap else length


def sample_feeds(item, lengths: Lengths, folder: Path) -> tuple[Path, dict]:
    """One feed per length, keyed ``s{i}.{input}`` by the artifact's input names, at the size it
    runs at, padded with the manifest's pad values (else 0; masks 0 past the real length);
    saved as an .npz. Returns it and the summary of what runs (``real_lengths`` without timings)."""
    from .._inputs import generate_inputs
    from .._types import Signature, TensorSpec
    from ..runtime import pad

    art, src = item.signature["inputs"], item.source_inputs
    axis = length_axis(src, item.buckets)
    static = next((a for s, t in zip(src, art, strict=True) for d, a in zip(s["shape"], t["shape"], strict=False)
                   if d == axis and isinstance(a, int)), None)
    cap = static if static is not None else item.dims.get(axis)  # a dynamic graph: up to the size convert verified
    sizes = [run_size(n, axis, item.buckets, static, cap) for n in lengths.values]
    pads = (item.buckets or {}).get("pad") or {}
    sig = Signature([TensorSpec(s["name"], tuple(s["shape"]), t["dtype"]) for s, t in zip(src, art, strict=True)], [])
    arrays = {}
    for i, (n, size) in enumerate(zip(lengths.values, sizes, strict=True)):
        real = min(n, size)
        feeds = generate_inputs(sig, {**item.dims, "batch": 1, axis: real}, {"vocab_size": item.vocab_size or 100}, seed=i)
        feeds = pad(feeds, src, {axis: size}, pads)
        arrays.update({f"s{i}.{t['name']}": feeds[s["name"]] for s, t in zip(src, art, strict=True)})
    out = folder / f"lengths-{abs(hash(item.label))}.npz"
    np.savez(out, **arrays)
    counts: dict[str, int] = {}
    for size in sizes:
        counts[str(size)] = counts.get(str(size), 0) + 1
    summary = {"axis": axis, "source": lengths.source, "count": len(sizes),
               "mean_length": round(float(np.mean(lengths.values)), 2),
               "mean_run_length": round(float(np.mean(sizes)), 2),
               "truncated": sum(n > s for n, s in zip(lengths.values, sizes, strict=True)),
               "run_at": "bucket" if item.buckets else ("static shape" if static is not None else "real length"),
               "by_size": dict(sorted(counts.items(), key=lambda kv: int(kv[0])))}
    return out, summary
