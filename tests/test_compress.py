"""edgekit compress: real quantizers, real runtimes, real data (digits; sentences)."""

import json
import os

import numpy as np
import pytest

import edgekit
from edgekit import EdgekitError
from tests.conftest import ROOT, run_cli

SENTENCES = ROOT / "models" / "data" / "sentences.txt"


@pytest.fixture(scope="module")
def digits_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "q"
    # --out relative to the working directory, as users type it (ORT's quantizer resolves paths)
    rc, stdout, err = run_cli("compress", "--recipe", "models/digits-cnn.toml", "--out", os.path.relpath(out, ROOT),
                              "--runs", "5",
                              "--calibration-samples", "200", "--json",
                              "--dump-recipe", str(out.parent / "resolved.toml"))
    assert rc == 0, err
    return out, json.loads(stdout), out.parent / "resolved.toml"


def test_digits_static_int8_keeps_accuracy_and_shrinks(digits_report):
    out, doc, _ = digits_report
    assert doc["schema"] == 1 and doc["kind"] == "compress" and doc["metric"] == "accuracy"
    assert doc["baseline_value"] > 95.0  # a real classifier, trained on the real digits
    assert {v["target"] for v in doc["variants"]} == {"onnx", "openvino", "tflite"}
    for v in doc["variants"]:
        assert v["mode"] == "static-int8"
        assert v["drop"] <= 1.0, v
        assert v["size_ratio"] >= 3.5, v
        assert v["baseline_size_bytes"] == doc["baselines"][v["target"]]["size_bytes"]
        for t in map(str, doc["threads"]):
            assert 0 < v["latency_ms"][t]["p50"] <= v["latency_ms"][t]["p90"]
        assert v["agreement"]["top1"] >= 0.97
        assert (out / v["path"]).exists()
    assert (out / "report.png").stat().st_size > 10_000
    assert (out / "fp32" / "manifest.json").is_file()
    assert "held-out" in doc["data"]
    assert doc["host"]["cpu"]["model"] and doc["target_cpu"] == doc["host"]["cpu"]  # no --target: this host
    assert all(any(n.startswith("ISA:") for n in v["notes"]) for v in doc["variants"] if v["target"] == "onnx")


def test_dump_recipe_repeats_the_run(digits_report):
    from edgekit._recipe import load_recipe

    _, _, dumped = digits_report
    recipe = load_recipe(dumped)
    assert recipe.model.source == "edgekit.zoo.digits:cnn"
    assert recipe.compress.quantize == ["static-int8"]
    assert recipe.compress.calibration_samples == 200
    assert recipe.compress.runs == 5


def test_refused_mode_fails_before_any_work(tmp_path):
    rc, _, err = run_cli("compress", "tests.fixtures:tiny_cnn", "--quantize", "dynamic-int8", "--to", "coreml",
                         "--data", "edgekit.zoo.digits:data", "--out", str(tmp_path / "o"))
    assert rc == 2 and "Core ML has no run-time activation quantization" in err
    assert "converting" not in err and not (tmp_path / "o").exists()


def test_unknown_mode_and_target_prefix(tmp_path):
    rc, _, err = run_cli("compress", "tests.fixtures:tiny_cnn", "--quantize", "int3", "--data", "x.npz",
                         "--out", str(tmp_path / "o"))
    assert rc == 2 and "unknown quantization mode" in err
    rc, _, err = run_cli("compress", "tests.fixtures:tiny_cnn", "--quantize", "openvino:static-int8", "--to", "onnx",
                         "--data", "x.npz", "--out", str(tmp_path / "o"))
    assert rc == 2 and "not among --to" in err


@pytest.mark.parametrize("case", ["shape", "dtype", "few", "empty", "text-without-tokenizer", "missing"])
def test_bad_calibration_data_is_refused_before_work(tmp_path, case):
    path = tmp_path / "d.npz"
    if case == "shape":
        np.savez(path, pixels=np.zeros((64, 3, 16, 16), np.float32))
    elif case == "dtype":
        np.savez(path, pixels=np.zeros((64, 3, 32, 32), np.int32))
    elif case == "few":
        np.savez(path, pixels=np.zeros((5, 3, 32, 32), np.float32))
    elif case == "empty":
        path = tmp_path / "d.npy"
        path.write_bytes(b"")
    elif case == "text-without-tokenizer":
        path = SENTENCES
    else:
        path = tmp_path / "nope.npz"
    rc, _, err = run_cli("compress", "tests.fixtures:tiny_cnn", "--quantize", "static-int8", "--to", "onnx",
                         "--data", str(path), "--out", str(tmp_path / "o"))
    expected = {"shape": "[1, 3, 16, 16]", "dtype": "int32", "few": "at least 16", "empty": "is empty",
                "text-without-tokenizer": "no tokenizer", "missing": "does not exist"}[case]
    assert rc == 2 and expected in err, err
    assert "fix:" in err and "converting" not in err
    assert not (tmp_path / "o").exists()


def test_text_data_dynamic_int8_and_forced_repair(tmp_path, tiny_bert):
    model = edgekit.load(tiny_bert, dims={"sequence": 16})
    # an impossible max_drop forces the repair path: layers are kept float and named
    result = edgekit.compress(model, targets=["onnx", "tflite"], quantize=["onnx:dynamic-int8", "onnx:static-int8",
                              "tflite:dynamic-int8"], data=SENTENCES, out=tmp_path / "b", calibration=48,
                              evaluation=24, max_drop=0.0, runs=5, threads="1")
    doc = result.report
    assert doc["metric"] == "cosine"
    by = {(v["target"], v["mode"]): v for v in doc["variants"]}
    assert set(by) == {("onnx", "dynamic-int8"), ("onnx", "static-int8"), ("tflite", "dynamic-int8")}
    for mode in ("static-int8", "dynamic-int8"):  # dynamic int8 is repaired like static
        v = by[("onnx", mode)]
        assert v["layers_kept_float"] and any(n.startswith("repair:") for n in v["notes"]), v["notes"]
    assert any("weights rounded by GPTQ on 36 calibration samples" in n for n in by[("tflite", "dynamic-int8")]["notes"])  # 48 minus the tuning split
    for v in doc["variants"]:
        assert v["agreement"]["cosine_mean"] > 0.9
        assert v["size_bytes"] < v["baseline_size_bytes"]


def test_api_requires_data():
    with pytest.raises(EdgekitError, match="needs data"):
        edgekit.compress("tests.fixtures:tiny_cnn", targets=["onnx"], quantize="static-int8", out="/tmp/never")


def test_html_report_renders_in_chromium(digits_report, tmp_path):
    """report.html: one file, the variants' rows and two SVG plots, as headless Chromium sees them."""
    import os
    import subprocess

    out, doc, _ = digits_report
    page = (out / "report.html").read_text()
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    chromium = "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.skip("needs chromium (make system-deps installs it)")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "report.html").as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    assert dom.count("<svg") >= 2 + len(doc["variants"])  # two plots, plus the legend's marks
    for v in doc["variants"]:
        assert f"<td class=\"l\">{v['target']}</td><td class=\"l\">{v['mode']}</td>" in dom
    assert dom.count("<circle") + dom.count("<rect") >= len(doc["variants"])


def test_coreml_quality_is_estimated_off_macos_from_the_packages_weights(tmp_path, tiny_bert):
    """Core ML compresses weights only: their decompressed values in the source module give its quality.
    4-bit palettization must come out measurably worse than int8, so the estimate can tell them apart."""
    import platform

    from edgekit.backends.coreml.estimate import with_package_weights

    if platform.system() == "Darwin":
        pytest.skip("on macOS the Core ML runtime measures it")
    model = edgekit.load(tiny_bert, dims={"sequence": 16})
    result = edgekit.compress(model, targets=["coreml"], quantize="int8-weights,int4-weights", data=SENTENCES,
                              out=tmp_path / "q", calibration=16, evaluation=32, runs=2, threads="1")
    by = {v["mode"]: v for v in result.variants}
    for v in by.values():
        assert v["quality_estimated"] and v["metric"] == "cosine" and not v["latency_ms"]
        assert any("estimated off macOS" in n for n in v["notes"])
    int8, int4 = by["int8-weights"]["agreement"], by["int4-weights"]["agreement"]
    assert int8["cosine_mean"] > 0.99 and int8["cosine_mean"] > int4["cosine_mean"], (int8, int4)
    weights = with_package_weights(model, tmp_path / "q" / by["int8-weights"]["path"])
    assert weights.usable and len(weights.replaced) >= 2 * 6  # q, k, v, out, up, down of both layers


def test_coreml_estimate_refused_when_the_converter_fused_the_weights(tmp_path):
    """The digits CNN's batch norms are fused into its convolutions in the package: their compressed
    weights have no counterpart in the source, so no estimate is made, and the report says why."""
    result = edgekit.compress("edgekit.zoo.digits:cnn", targets=["coreml"], quantize="int8-weights",
                              data="edgekit.zoo.digits:data", out=tmp_path / "q", runs=2, threads="1", evaluation=50)
    v = result.variants[0]
    assert v["status"] == "not_run" and not v["quality_estimated"] and v["value"] is None
    assert any(n.startswith("quality not estimated") and "fused" in n for n in v["notes"]), v["notes"]


def test_tflite_full_integer_repair_keeps_float_what_breaks(tmp_path, tiny_bert):
    """LiteRT static int8 of a transformer over --max-drop: the repair narrows int8 to the weight layers,
    then gives the layers adding most error run-time (dynamic-range) activations, and says what it did."""
    model = edgekit.load(tiny_bert, dims={"sequence": 16})
    result = edgekit.compress(model, targets=["tflite"], quantize="tflite:static-int8", data=SENTENCES,
                              out=tmp_path / "s", calibration=48, evaluation=24, max_drop=0.0, runs=2, threads="1")
    v = result.variants[0]
    repair = next(n for n in v["notes"] if n.startswith("repair:"))
    assert "weight layers only int8" in repair and "most sensitive" in repair, v["notes"]
    # max_drop 0 cannot be met: the search stops at half the weight layers float, and says so
    assert len(v["layers_kept_float"]) == 6, v["layers_kept_float"]
    assert "gave the 6 most sensitive of 12 fully connected layers run-time activations" in repair, repair


@pytest.mark.parametrize(("env_cpu", "device", "weights"), [
    ("avx2,fma,model=AVX2 box", None, "u8 weights"),  # u8 x s8 saturates here: u8 weights
    ("avx2,fma,model=AVX2 box", "raspberry-pi-5", "full-range s8 weights"),  # the device's CPU decides
    ("avx2,fma,avx512f,avx512_vnni,model=VNNI box", None, "full-range s8 weights")])
def test_quantizer_settings_follow_the_target_cpu(tmp_path, tiny_bert, env_cpu, device, weights):
    """The CLI end to end: ORT int8 chosen for the CPU of --device, else this host (here overridden)."""
    args = ["compress", str(tiny_bert), "--data", str(SENTENCES), "--to", "onnx", "--quantize", "dynamic-int8",
            "--dim", "sequence=16", "--calibration-samples", "16", "--eval-samples", "8", "--runs", "5",
            "--threads", "1", "--max-drop", "100", "--out", str(tmp_path / "o"), "--json"]
    rc, out, err = run_cli(*args, *(["--device", device] if device else []), env={"EDGEKIT_CPU_FEATURES": env_cpu})
    assert rc == 0, err
    doc = json.loads(out[out.index("{"):])
    (v,) = doc["variants"]
    isa = next(n for n in v["notes"] if n.startswith("ISA:"))
    assert weights in isa, isa
    assert doc["host"]["cpu"]["source"] == "EDGEKIT_CPU_FEATURES"
    assert doc["target_cpu"]["source"] == (f"targets/{device}.toml" if device else "EDGEKIT_CPU_FEATURES")
    if device:
        assert f"quantized for {device}" in err + out
    rc, _, err = run_cli(*args, "--device", "toaster", "--force")
    assert rc == 2 and "unknown device profile 'toaster'" in err and "fix:" in err
    if device is None and weights == "u8 weights":  # the flags of 0.1: --target for the profile, --device for training (warned)
        rc, _, err = run_cli(*args, "--target", "toaster", "--device", "cpu", "--force")
        assert rc == 2 and "unknown device profile 'toaster'" in err, err
        assert "--target toaster is deprecated: use --device toaster" in err
        assert "--device cpu as the training device is deprecated: use --train-device cpu" in err


def test_api_runs_a_recipe_with_overrides(tmp_path):
    """edgekit.compress(recipe=...) from Python: the recipe's run, with options overriding its fields."""
    from edgekit._recipe import load_recipe, resolve_compress

    result = edgekit.compress(recipe="models/digits-cnn.toml", out=tmp_path / "q", targets=["onnx"],
                              calibration_samples=64, eval_samples=64, runs=5, threads=["1"])
    doc = result.report
    assert [(v["target"], v["mode"]) for v in doc["variants"]] == [("onnx", "static-int8")]
    assert doc["baseline_value"] > 95.0 and "64 held-out" in doc["data"], doc["data"]
    # the CLI's merge, the same function: flags over the recipe, over the defaults
    resolved = resolve_compress(load_recipe("models/digits-cnn.toml"), None, {"max_drop": 0.0, "lr": 0.5,
                                                                              "dims": {"batch": 2}})
    assert resolved.compress.max_drop == 0.0 and resolved.compress.train.lr == 0.5
    assert resolved.model.dims["batch"] == 2 and resolved.compress.quantize
    with pytest.raises(EdgekitError, match="bad compress options"):
        resolve_compress(load_recipe("models/digits-cnn.toml"), None, {"workers": 0})


def test_the_names_of_0_1_still_work_and_warn(tmp_path):
    """[compress] target_device and device= for training (now device= and train_device=) still
    resolve, with a warning; an unknown option is refused, naming the valid ones."""
    from edgekit._recipe import load_recipe, resolve_compress

    recipe = tmp_path / "r.toml"
    recipe.write_text((ROOT / "models" / "digits-cnn.toml").read_text().replace("[compress]\n",
                                                                        "[compress]\ntarget_device = \"pixel-8\"\n"))
    with pytest.warns(FutureWarning, match="target_device is deprecated"):
        loaded = load_recipe(recipe)
    assert loaded.compress.device == "pixel-8"
    with pytest.warns(FutureWarning, match="use train_device"):
        resolved = resolve_compress(loaded, None, {"device": "cpu"})
    assert resolved.compress.device == "pixel-8" and resolved.compress.train.device == "cpu"
    new = resolve_compress(loaded, None, {"device": "raspberry-pi-5", "train_device": "cuda"})
    assert new.compress.device == "raspberry-pi-5" and new.compress.train.device == "cuda"
    with pytest.raises(EdgekitError, match="unknown compress option colour") as err:
        edgekit.compress("edgekit.zoo.digits:cnn", data="edgekit.zoo.digits:data", out=tmp_path / "q", colour="red")
    assert "max_drop" in err.value.fix and "device" in err.value.fix


def test_variants_say_where_they_drift_and_the_ranked_layer_kept_float_adds_no_error(tmp_path, tiny_bert):
    """report.json's ``variants[].drift``: the layers adding the most error, by ONNX node name; keeping
    the top one in float (--keep-float) takes it off the ranking, and the HTML shows the section."""
    model = edgekit.load(tiny_bert, dims={"sequence": 16})
    kw = dict(targets=["onnx"], quantize=["onnx:dynamic-int8"], data=SENTENCES, calibration=24, evaluation=12,
              max_drop=100.0, runs=3, threads="1")
    first = edgekit.compress(model, out=tmp_path / "a", **kw).report["variants"][0]
    import onnx

    names = {n.name: n.op_type for n in onnx.load(tmp_path / "a" / "fp32" / "onnx" / "model.onnx").graph.node}
    ranked = first["drift"]["ranking"]
    assert ranked and all(r["node"] in names and r["added"] > 0 for r in ranked), first["drift"]
    assert {r["op_type"] for r in ranked} <= {"MatMul", "Gemm", "Gather"}  # what dynamic int8 quantizes
    assert "Where the variants drift" in (tmp_path / "a" / "report.html").read_text()
    top = ranked[0]["node"]
    again = edgekit.compress(model, out=tmp_path / "b", keep_float=[top], **kw).report["variants"][0]
    assert top in again["layers_kept_float"]
    assert top not in [r["node"] for r in again["drift"]["ranking"]], again["drift"]["ranking"]
