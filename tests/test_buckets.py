"""Shape buckets (issue 15): parsing, checks, the automatic choice, and conversion with buckets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit._buckets import (
    check_axes,
    choose_auto,
    combos,
    key,
    padded_cost,
    parse_buckets,
)
from edgekit._errors import EdgekitError

# ---- parse and check --------------------------------------------------------------------------


def test_parse_flags_and_recipe_agree():
    flags = parse_buckets(["sequence=64,16,32,16", "width=100,200"])
    assert flags == {"sequence": [16, 32, 64], "width": [100, 200]}
    assert parse_buckets({"sequence": [64, 16, 32], "width": "100,200"}) == flags
    assert parse_buckets(["sequence=auto"]) == {"sequence": "auto"}
    assert parse_buckets({"sequence": "AUTO"}) == {"sequence": "auto"}
    assert parse_buckets(None) == {} and parse_buckets([]) == {}
    from edgekit._buckets import auto_count, is_auto

    eight = parse_buckets(["sequence=auto:8"])["sequence"]  # auto with N buckets
    assert is_auto(eight) and auto_count(eight) == 8 and auto_count("auto") == 4 and not is_auto([16, 32])
    for bad in ("auto:0", "auto:x", "auto:", "auto:99"):
        with pytest.raises(EdgekitError, match="auto:N with N from 1 to 32"):
            parse_buckets([f"sequence={bad}"])


@pytest.mark.parametrize("bad, said", [
    (["sequence"], "is not AXIS=SIZES"),
    (["sequence="], "is not AXIS=SIZES"),
    (["sequence=16,x"], "'x' for axis 'sequence' is not a positive whole number"),
    (["sequence=16,0"], "'0'"),
    (["sequence=16.5"], "'16.5'"),
    ({"sequence": [16, 2.5]}, "'2.5'"),
    ({"sequence": 16}, "not a list of sizes"),
    (["sequence=16", "sequence=32"], "given twice"),
])
def test_parse_refuses_with_the_form(bad, said):
    with pytest.raises(EdgekitError) as info:
        parse_buckets(bad)
    assert said in info.value.cause
    assert "AXIS=" in info.value.fix or "once" in info.value.fix


def test_check_names_the_dynamic_axes_and_the_maximum():
    with pytest.raises(EdgekitError) as info:
        check_axes({"seq": [16]}, ["batch", "sequence"])
    assert "'seq'" in info.value.cause and "['batch', 'sequence']" in info.value.fix
    with pytest.raises(EdgekitError) as info:
        check_axes({"sequence": [16, 1024]}, ["batch", "sequence"], {"sequence": 512})
    assert "sequence=1024" in info.value.cause and "512" in info.value.fix
    check_axes({"sequence": [16, 512]}, ["batch", "sequence"], {"sequence": 512})
    check_axes({"sequence": "auto"}, ["sequence"], {"sequence": 512})
    with pytest.raises(EdgekitError, match="none"):
        check_axes({"sequence": [16]}, [])


# ---- the automatic choice ------------------------------------------------------------------------


def _brute(lengths, n, top):
    """The least padded total over every choice of up to n buckets, the largest at ``top``."""
    cands = sorted({min(x, top) for x in lengths} - {top})
    best = None
    for m in range(0, n):
        for pick in itertools.combinations(cands, m):
            cost = padded_cost([min(x, top) for x in lengths], [*pick, top])
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(3))
def test_auto_is_the_least_padding(seed):
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.lognormal(2.8, 0.5, 120).clip(3, 60)]
    for n, top in ((1, None), (3, None), (4, 48)):
        sizes = choose_auto(lengths, n, top)
        assert len(sizes) <= n and sizes == sorted(set(sizes))
        assert sizes[-1] == (top or max(lengths))
        assert padded_cost([min(x, sizes[-1]) for x in lengths], sizes) == _brute(lengths, n, top or max(lengths))


def test_auto_on_few_lengths_and_errors():
    assert choose_auto([5, 5, 9], 4) == [5, 9]
    assert choose_auto([5, 5, 9], 4, 32) == [5, 9, 32]
    assert choose_auto([200, 300], 2, 128) == [128]  # longer ones are cut to the model's size
    with pytest.raises(EdgekitError, match="no lengths"):
        choose_auto([], 4)


# ---- enumerate and name ----------------------------------------------------------------------------


def test_combos_and_key():
    assert [key(b) for b in combos({"sequence": [32, 16]})] == ["sequence_16", "sequence_32"]
    both = combos({"height": [32, 48], "width": [100, 200]})
    assert [key(b) for b in both] == ["height_32_width_100", "height_48_width_100", "height_32_width_200",
                                      "height_48_width_200"]
    assert key({"sequence": 16}) == "sequence_16"


# ---- conversion with buckets (real converters and runtimes) -----------------------------------------


def _bert(folder, hidden: int = 256):
    """A 2-layer BERT whose weights (5 MB) outweigh a signature's graph, as a real model's do."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(995)]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    config = BertConfig(vocab_size=len(words), hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=2 * hidden, max_position_embeddings=64)
    torch.manual_seed(0)
    BertModel(config).eval().save_pretrained(str(folder))
    return folder


def _sentences(path, n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    lines = [" ".join(f"w{w}" for w in rng.integers(5, 990, int(k))) for k in rng.integers(2, 28, n)]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return _bert(tmp_path_factory.mktemp("bucket-bert"))


@pytest.mark.integration
def test_buckets_convert_to_onnx_openvino_and_one_multi_signature_tflite(bert, tmp_path):
    pytest.importorskip("litert_torch")
    pytest.importorskip("openvino")
    from ai_edge_litert.interpreter import Interpreter

    import edgekit

    keys = ["sequence_8", "sequence_16", "sequence_32"]
    multi = edgekit.convert(str(bert), ["onnx", "openvino", "tflite"], tmp_path / "multi",
                            shape_buckets=["sequence=8,16,32"])
    edgekit.convert(edgekit.load(str(bert), dims={"sequence": 32}), ["tflite"], tmp_path / "single")
    by = {a["target"]: a for a in multi.manifest["artifacts"]}
    assert multi.ok and set(by) == {"onnx", "openvino", "tflite"}
    for target, art in by.items():
        b = art["buckets"]
        assert b["axes"] == {"sequence": [8, 16, 32]}
        assert [p["bucket"] for p in b["parity"]] == keys
        assert all(p["status"] == "pass" and p["samples"] == 3 for p in b["parity"]), (target, b["parity"])
        assert b["pad"] == {"input_ids": 0, "token_type_ids": 0, "attention_mask": 0}
        # real lengths inside each bucket, padded to it: above the next smaller bucket, up to the bucket
        for p, (low, high) in zip(b["parity"], [(0, 8), (8, 16), (16, 32)], strict=True):
            sizes = [x["sequence"] for x in p["lengths"]]
            assert all(low < s <= high for s in sizes) and min(sizes) < high
        assert art["parity"]["status"] == "pass"
        assert (b["signatures"] is None) == (target != "tflite")
    assert by["tflite"]["buckets"]["signatures"] == {k: k for k in keys}
    files = sorted((tmp_path / "multi" / "tflite").glob("*.tflite"))
    assert len(files) == 1
    assert sorted(Interpreter(model_path=str(files[0])).get_signature_list()) == sorted(keys)
    one = next((tmp_path / "single" / "tflite").glob("*.tflite"))
    assert files[0].stat().st_size <= 1.05 * one.stat().st_size, (files[0].stat().st_size, one.stat().st_size)
    # ONNX Runtime and OpenVINO stay dynamic on the bucketed axis
    assert by["onnx"]["signature"]["inputs"][0]["shape"][1] == "sequence"
    assert by["openvino"]["signature"]["inputs"][0]["shape"][1] == "sequence"
    # the LiteRT runner runs a chosen signature
    from edgekit.backends.tflite.runtime import LiteRTRunner

    runner = LiteRTRunner(files[0])
    assert runner.key == "sequence_32" and sorted(runner.signature_keys) == sorted(keys)
    runner.use("sequence_8")
    assert runner.signature.inputs[0].shape == (1, 8)
    with pytest.raises(EdgekitError, match="no signature 'sequence_64'"):
        runner.use("sequence_64")
    # onnx2tf writes one signature only: buckets from an ONNX source are refused, naming the route to use
    with pytest.raises(EdgekitError, match="need the litert-torch route"):
        edgekit.convert(edgekit.load(str(tmp_path / "multi" / "onnx" / "model.onnx"), dims={"sequence": 16}),
                        ["tflite"], tmp_path / "from-onnx", shape_buckets={"sequence": [8, 16]})
    assert not (tmp_path / "from-onnx").exists()


def test_auto_buckets_from_data_and_the_errors(bert, tmp_path):
    import edgekit

    data = _sentences(tmp_path / "s.txt")
    result = edgekit.convert(str(bert), ["onnx"], tmp_path / "auto", shape_buckets={"sequence": "auto"}, data=data)
    art = result.manifest["artifacts"][0]
    sizes = art["buckets"]["axes"]["sequence"]
    assert 1 < len(sizes) <= 4 and sizes[-1] == 64  # the largest: the model's sequence size (64 positions)
    assert all(p["status"] == "pass" for p in art["buckets"]["parity"])
    # the data's rows sit in their own bucket, at their real length
    for p in art["buckets"]["parity"]:
        size = int(p["bucket"].split("_")[1])
        assert all(x["sequence"] <= size for x in p["lengths"])
    assert "tokenized without padding" in result.manifest["verification_inputs"]
    with pytest.raises(EdgekitError, match="no --data") as info:
        edgekit.convert(str(bert), ["onnx"], tmp_path / "x", shape_buckets=["sequence=auto"])
    assert "--shape-buckets sequence=16,32,64,128" in info.value.fix
    with pytest.raises(EdgekitError, match="'seq', which is not a dynamic axis") as info:
        edgekit.convert(str(bert), ["onnx"], tmp_path / "x", shape_buckets=["seq=8"])
    assert "['batch', 'sequence']" in info.value.fix
    with pytest.raises(EdgekitError, match="larger than the model allows"):
        edgekit.convert(str(bert), ["onnx"], tmp_path / "x", shape_buckets=["sequence=16,128"])
    assert not (tmp_path / "x").exists()


def test_cli_shape_buckets_auto_needs_data(bert, tmp_path):
    from tests.conftest import run_cli

    code, _, err = run_cli("convert", str(bert), "--to", "onnx", "--out", str(tmp_path / "o"),
                           "--shape-buckets", "sequence=auto")
    assert code == 2 and "no --data was given" in err and "fix:" in err
    assert not (tmp_path / "o").exists()


# ---- per-bucket parity, real lengths from .npz data ---------------------------------------------------


def test_one_failing_bucket_fails_the_artifact():
    from edgekit._types import OutputParity, Parity
    from edgekit.steps.buckets import overall

    tol = {"atol": 1e-4, "rtol": 1e-3, "min_cosine": 0.999}

    def p(status, err, cos, reason=None):
        return Parity(status=status, max_abs_err=err, mean_abs_err=err / 10, cosine=cos, worst_output="y",
                      reason=reason, outputs=[OutputParity("y", err, err / 10, cos, None)])

    ok = overall([("sequence_8", p("pass", 1e-6, 0.99999)), ("sequence_16", p("pass", 2e-6, 0.99998))], tol)
    assert ok.status == "pass" and ok.max_abs_err == 2e-6 and ok.cosine == 0.99998
    assert ok.validation["worst_bucket"] == "sequence_16"
    bad = overall([("sequence_8", p("pass", 1e-6, 0.99999)), ("sequence_16", p("fail", 0.5, 0.9, "output 'y': big")),
                   ("sequence_32", p("pass", 1e-6, 0.99999))], tol)
    assert bad.status == "fail" and bad.reason == "bucket sequence_16: output 'y': big"
    assert bad.max_abs_err == 0.5 and bad.cosine == 0.9 and bad.validation["worst_bucket"] == "sequence_16"


def test_npz_rows_are_cut_to_their_mask_and_padded_per_bucket(bert, tmp_path):
    import edgekit
    from edgekit._datasets import real_rows
    from edgekit.steps.buckets import per_signature, real_lengths

    model = edgekit.load(str(bert), dims={"sequence": 32})
    lengths = [3, 7, 9, 20, 32]
    ids = np.zeros((5, 32), np.int64)
    mask = np.zeros((5, 32), np.int64)
    for i, n in enumerate(lengths):
        ids[i, :n], mask[i, :n] = 100 + i, 1
    np.savez(tmp_path / "d.npz", input_ids=ids, attention_mask=mask, token_type_ids=np.zeros_like(ids))
    rows, _ = real_rows(tmp_path / "d.npz", model, ["sequence"])
    assert [r["input_ids"].shape[1] for r in rows] == lengths
    assert all(r["attention_mask"].all() for r in rows)
    padded = [{k: v[i:i + 1] for k, v in {"input_ids": ids, "attention_mask": mask,
                                            "token_type_ids": np.zeros_like(ids)}.items()} for i in range(5)]
    assert [r["input_ids"].shape[1] for r in real_lengths(model, padded, {"sequence": [8, 16]})] == [3, 7, 9, 16, 16]
    by_key = per_signature(model, rows, {"sequence": [8, 16, 32]}, {"input_ids": 0, "attention_mask": 0,
                                                                     "token_type_ids": 0}, 2)
    assert {k: [int(s["attention_mask"].sum()) for s in v] for k, v in by_key.items()} == {
        "sequence_8": [3, 7], "sequence_16": [9, 7], "sequence_32": [20, 32]}
    assert all(s["input_ids"].shape == (1, int(k.split("_")[1])) for k, v in by_key.items() for s in v)
    with pytest.raises(EdgekitError, match="text or .npz"):
        real_rows(tmp_path, model, ["sequence"])


@pytest.mark.integration
def test_compress_with_buckets_calibrates_each_signature_and_runs_real_lengths(bert, tmp_path):
    pytest.importorskip("ai_edge_quantizer")
    pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    import edgekit

    data = _sentences(tmp_path / "s.txt", n=80)
    result = edgekit.compress(str(bert), ["onnx", "tflite"], ["dynamic-int8"], str(data), tmp_path / "c",
                              shape_buckets=["sequence=8,16,32"], runs=5, threads="1", calibration=40, evaluation=20)
    rep = result.report
    by = {v["target"]: v for v in rep["variants"]}
    assert set(by) == {"onnx", "tflite"}
    for v in [*by.values(), *rep["baselines"].values()]:
        lat = v["latency_ms"]["1"]
        assert lat["lengths"].startswith("real lengths") and lat["runs"] == 10
        assert set(lat["per_bucket"]) <= {"sequence_8", "sequence_16", "sequence_32"} and len(lat["per_bucket"]) >= 2
    assert all(v["status"] == "pass" and v["value"] > 99 for v in by.values()), by
    tfl = by["tflite"]
    assert "over 3 signatures" in " ".join(tfl["notes"])
    keys = Interpreter(model_path=str(tmp_path / "c" / tfl["path"])).get_signature_list()
    assert sorted(keys) == ["sequence_16", "sequence_32", "sequence_8"]


@pytest.mark.integration
def test_vision_buckets_on_two_axes(tmp_path):
    pytest.importorskip("litert_torch")
    from ai_edge_litert.interpreter import Interpreter

    import edgekit

    model = edgekit.load("tests.fixtures:tiny_cnn_module", inputs=["pixels:1x3xheightxwidth:float32"],
                         dims={"height": 32, "width": 48})
    result = edgekit.convert(model, ["onnx", "tflite"], tmp_path / "v",
                             shape_buckets=["height=16,32", "width=16,48"])
    keys = ["height_16_width_16", "height_32_width_16", "height_16_width_48", "height_32_width_48"]
    for art in result.manifest["artifacts"]:
        b = art["buckets"]
        assert b["axes"] == {"height": [16, 32], "width": [16, 48]} and b["pad"] == {"pixels": 0.0}
        assert [p["bucket"] for p in b["parity"]] == keys and all(p["status"] == "pass" for p in b["parity"])
        # generated images at sizes inside each bucket (over the next smaller one), padded to it
        h32_w48 = b["parity"][3]["lengths"]
        assert all(16 < x["height"] <= 32 and 16 < x["width"] <= 48 for x in h32_w48)
    tfl = next(a for a in result.manifest["artifacts"] if a["target"] == "tflite")
    assert tfl["buckets"]["signatures"] == {k: k for k in keys}
    sigs = Interpreter(model_path=str(tmp_path / "v" / tfl["path"])).get_signature_list()
    assert sorted(sigs) == sorted(keys)
