"""`edgekit bench --lengths`: one run per real length, at the shape each artifact runs it at."""

import json
import os
import shutil
import sys

import numpy as np
import pytest

import edgekit
from edgekit import EdgekitError
from edgekit.bench import bench
from tests import sshd
from tests.conftest import ROOT, run_cli

SENTENCES = ROOT / "models" / "data" / "sentences.txt"


@pytest.fixture(scope="module")
def bert_out(tmp_path_factory, tiny_bert):
    out = tmp_path_factory.mktemp("lengths") / "bert"
    edgekit.convert(edgekit.load(tiny_bert, dims={"sequence": 24}), targets=["onnx", "tflite"], out=out)
    return out


def _check_latency(real: dict):
    lat = real["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["min"] <= lat["mean"] <= lat["max"]


def test_sentences_are_tokenized_and_run_at_each_artifacts_shape(bert_out, tmp_path, tiny_bert):
    from transformers import AutoTokenizer

    lines = SENTENCES.read_text(encoding="utf-8").splitlines()[:30]
    (tmp_path / "s.txt").write_text("\n".join(lines) + "\n")
    rc, out, err = run_cli("bench", str(bert_out), "--runs", "5", "--warmup", "1", "--no-profile",
                           "--lengths", str(tmp_path / "s.txt"), "--json", str(tmp_path / "r.json"),
                           "--html", str(tmp_path / "r.html"))
    assert rc == 0, err
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["settings"]["lengths"] == str(tmp_path / "s.txt")
    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    lengths = [len(tok(s)["input_ids"]) for s in lines]  # the folder's tokenizer, specials included
    assert len(set(lengths)) > 5
    by = {r["format"]: r for r in doc["results"]}
    for fmt, r in by.items():
        real = r["real_lengths"]
        assert real["count"] == 30 and real["axis"] == "sequence" and "30 sentences" in real["source"]
        assert real["mean_length"] == pytest.approx(np.mean(lengths), abs=0.01), fmt
        assert real["truncated"] == sum(n > 24 for n in lengths)
        _check_latency(real)
        assert r["latency_ms"]["p50"] > 0  # the fixed-shape figures are still there
    # LiteRT's static shape: every sentence padded (or cut) to 24
    assert by["tflite"]["real_lengths"]["run_at"] == "static shape"
    assert by["tflite"]["real_lengths"]["by_size"] == {"24": 30}
    # ONNX is dynamic: each at its own length, up to the 24 convert verified
    onnx = by["onnx"]["real_lengths"]
    assert onnx["run_at"] == "real length"
    assert sum(onnx["by_size"].values()) == 30 and onnx["by_size"] == {
        str(n): sum(min(x, 24) == n for x in lengths) for n in sorted({min(x, 24) for x in lengths})}
    assert onnx["mean_run_length"] == pytest.approx(np.mean([min(n, 24) for n in lengths]), abs=0.01)
    assert "real lengths (30" in out and "fixed shape 1x24" in out
    assert "Real lengths" in (tmp_path / "r.html").read_text()


def test_integer_lengths_and_buckets(bert_out, tmp_path):
    """A file of integers; a bucketed manifest entry pads each to its smallest bucket."""
    folder = tmp_path / "b"
    shutil.copytree(bert_out, folder)
    doc = json.loads((folder / "manifest.json").read_text())
    onnx = next(a for a in doc["artifacts"] if a["target"] == "onnx")
    onnx["buckets"] = {"axes": {"sequence": [8, 16, 24]}, "signatures": None, "pad": {"input_ids": 0}}
    (folder / "manifest.json").write_text(json.dumps(doc))
    (tmp_path / "n.txt").write_text("3\n8\n9\n16\n20\n40\n")
    result = bench(folder, runs=3, warmup=0, profile=False, lengths=tmp_path / "n.txt")
    by = {r["format"]: r["real_lengths"] for r in result.to_dict()["results"]}
    assert by["onnx"]["run_at"] == "bucket" and by["onnx"]["by_size"] == {"8": 2, "16": 2, "24": 2}
    assert by["onnx"]["truncated"] == 1 and by["onnx"]["mean_length"] == pytest.approx(16.0)
    assert by["onnx"]["source"] == "n.txt: 6 lengths"
    assert by["tflite"]["by_size"] == {"24": 6}
    for real in by.values():
        _check_latency(real)


def test_bad_lengths_files(bert_out, tmp_path):
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(EdgekitError, match="is empty"):
        bench(bert_out, runs=1, warmup=0, profile=False, lengths=tmp_path / "empty.txt")
    with pytest.raises(EdgekitError, match="does not exist"):
        bench(bert_out, runs=1, warmup=0, profile=False, lengths=tmp_path / "missing.txt")
    (tmp_path / "s.txt").write_text("a sentence\n")
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(bert_out / "onnx" / "model.onnx", lone / "model.onnx")
    with pytest.raises(EdgekitError, match="no tokenizer was found") as err:
        bench(lone / "model.onnx", runs=1, warmup=0, profile=False, lengths=tmp_path / "s.txt")
    assert "integer lengths" in err.value.fix
    (tmp_path / "n.txt").write_text("12\n")
    with pytest.raises(EdgekitError, match="needs the output folder's manifest"):
        bench(lone / "model.onnx", runs=1, warmup=0, profile=False, lengths=tmp_path / "n.txt")
    with pytest.raises(EdgekitError, match="one input at a time"):
        bench(bert_out, runs=1, warmup=0, profile=False, batch=2, lengths=tmp_path / "n.txt")


@pytest.mark.skipif(not os.path.exists(sshd.SSHD) or shutil.which("ssh") is None,
                    reason="needs OpenSSH (make system-deps installs openssh-server)")
def test_over_ssh_the_lengths_travel_with_the_runner(bert_out, tmp_path, monkeypatch):
    srv = sshd.start(tmp_path / "sshd")
    try:
        for k, v in srv.env().items():
            monkeypatch.setenv(k, v)
        (tmp_path / "n.txt").write_text("4\n12\n30\n")
        result = bench(bert_out / "onnx" / "model.onnx", on=srv.url, python=sys.executable, runs=2, warmup=0,
                       profile=False, lengths=tmp_path / "n.txt")
    finally:
        srv.stop()
    (r,) = result.to_dict()["results"]
    assert r["error"] is None and r["real_lengths"]["by_size"] == {"4": 1, "12": 1, "24": 1}
    _check_latency(r["real_lengths"])


def test_compare_gates_the_real_length_mean(bert_out, tmp_path):
    import copy

    from edgekit.bench.compare import compare, format_table

    (tmp_path / "n.txt").write_text("6\n20\n")
    old = bench(bert_out / "onnx" / "model.onnx", runs=2, warmup=0, profile=False, lengths=tmp_path / "n.txt").to_dict()
    new = copy.deepcopy(old)
    new["results"][0]["real_lengths"]["latency_ms"]["mean"] *= 1.3
    (row,) = compare(old, new, threshold=0.10)
    assert row["regressed"] == ["real_mean_ms"] and row["real_mean_ms"]["change"] == pytest.approx(0.3)
    from rich.console import Console

    console = Console(record=True, width=250)
    console.print(format_table([row]))
    assert "real lengths mean ms" in console.export_text()
    plain = copy.deepcopy(old)
    plain["results"][0].pop("real_lengths")
    console.print(format_table(compare(plain, plain)))
    assert console.export_text().count("real lengths mean ms") == 0  # no --lengths: no such column
