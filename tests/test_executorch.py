"""ExecuTorch target: real torch.export + XNNPACK lowering, real ExecuTorch runtime, real data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("executorch")
torch = pytest.importorskip("torch")

import edgekit  # noqa: E402
from edgekit._errors import EdgekitError  # noqa: E402
from edgekit.backends._common import ConvertContext  # noqa: E402
from edgekit.backends.executorch import SPEC  # noqa: E402
from edgekit.backends.executorch import convert as et_convert  # noqa: E402
from edgekit.backends.executorch.runtime import ExecuTorchRunner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _quant_options(**kw):
    from edgekit.backends._quant import QuantOptions

    return QuantOptions(**kw)


def _parity(model, runner, samples) -> tuple[float, float]:
    """(max abs error, lowest cosine) of the runner against the torch source, over every output."""
    names = [s.name for s in model.signature.inputs]
    worst_err, worst_cos = 0.0, 1.0
    for feeds in samples:
        with torch.no_grad():
            ref = [t.numpy() for t in model.module(*[torch.from_numpy(feeds[n]) for n in names])]
        got = runner.run(feeds)
        assert len(got) == len(ref)
        for a, b in zip(ref, got, strict=True):
            assert a.shape == b.shape
            worst_err = max(worst_err, float(np.abs(a - b).max()))
            cos = float(a.ravel() @ b.ravel() / (np.linalg.norm(a) * np.linalg.norm(b)))
            worst_cos = min(worst_cos, cos)
    return worst_err, worst_cos


def _convert(model, folder: Path) -> tuple[Path, list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    return et_convert.from_torch(model, folder, "fp32", ConvertContext())


@pytest.fixture(scope="module")
def tiny_cnn_pte(tmp_path_factory):
    model = edgekit.load("tests.fixtures:tiny_cnn")
    path, notes = _convert(model, tmp_path_factory.mktemp("et-cnn"))
    return model, path, notes


def test_spec_describes_the_target_and_import_is_light():
    assert SPEC.name == "executorch" and SPEC.suffix == ".pte" and SPEC.extra == "executorch"
    assert SPEC.precisions == ("fp32",) and SPEC.static_shapes
    assert SPEC.quantization["static-int8"] is None and SPEC.quantization["dynamic-int8"] is None
    assert SPEC.quantization["int4-weights"]  # refused, with the reason
    assert "onnx" in SPEC.no_route
    code = ("import sys, edgekit, edgekit.backends.executorch as e; "
            "print(json.dumps([m for m in ('executorch', 'torch', 'torchao') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_tiny_cnn_fp32_matches_torch(tiny_cnn_pte):
    model, path, notes = tiny_cnn_pte
    assert path.name == "model.pte" and path.stat().st_size > 10_000
    assert any(n.startswith("XNNPACK delegate:") for n in notes), notes
    runner = ExecuTorchRunner(path, threads=1, source=model.signature)
    assert [s.name for s in runner.signature.inputs] == ["pixels"]  # kept in the program (edgekit_io)
    assert runner.signature.inputs[0].shape == (1, 3, 32, 32)
    assert runner.signature.outputs[0].shape == (1, 10)
    rng = np.random.default_rng(0)
    samples = [{"pixels": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(3)]
    err, cos = _parity(model, runner, samples)
    assert err < 1e-4 and cos > 0.9999, (err, cos)


def test_runners_with_different_thread_counts_take_turns(tiny_cnn_pte):
    """ExecuTorch has one process-wide pool; resizing it must not leave a loaded method dangling."""
    model, path, _ = tiny_cnn_pte
    feeds = {"pixels": np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)}
    one = ExecuTorchRunner(path, threads=1, source=model.signature)
    first = one.run(feeds)[0]
    two = ExecuTorchRunner(path, threads=2, source=model.signature)
    for _ in range(3):
        np.testing.assert_allclose(two.run(feeds)[0], first, atol=1e-5)
        np.testing.assert_allclose(one.run(feeds)[0], first, atol=1e-5)


def test_device_loader_runs_without_edgekit(tiny_cnn_pte, tmp_path):
    """device.py is what the bench runner uses on a device: numpy + executorch, no edgekit."""
    _, path, _ = tiny_cnn_pte
    device_py = ROOT / "edgekit" / "backends" / "executorch" / "device.py"
    (tmp_path / "executorch_device.py").write_text(device_py.read_text())
    feeds = {"pixels": np.random.default_rng(2).random((1, 3, 32, 32), dtype=np.float32)}
    np.savez(tmp_path / "inputs.npz", **feeds)
    script = (
        "import json, sys, numpy as np\n"
        "import executorch_device as d\n"
        f"run, handle, info = d.load({str(path)!r}, threads=1)\n"
        "out = run(dict(np.load('inputs.npz')))\n"
        "np.save('out.npy', out[0])\n"
        "print(json.dumps({'info': info, 'edgekit': any(m.startswith('edgekit') for m in sys.modules)}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout.strip().splitlines()[-1])
    assert doc["edgekit"] is False
    assert doc["info"]["name"] == "executorch" and doc["info"]["version"] and doc["info"]["threads"] == 1
    assert "XnnpackBackend" in doc["info"]["backends"]
    want = ExecuTorchRunner(path, source=tiny_cnn_pte[0].signature).run(feeds)[0]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), want, atol=1e-6)


def test_onnx_source_is_refused_naming_the_fix(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 2), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "m.onnx")
    model = edgekit.load(tmp_path / "m.onnx")
    with pytest.raises(EdgekitError) as err:
        _convert(model, tmp_path / "out")
    assert "onnx source to ExecuTorch" in err.value.cause and "torch.export" in err.value.cause
    assert "PyTorch model" in err.value.fix
    assert not (tmp_path / "out" / "model.pte").exists()


def test_quantize_refusals(tiny_cnn_pte, tmp_path):
    from edgekit.backends.executorch.quantize import quantize

    model, path, _ = tiny_cnn_pte
    with pytest.raises(EdgekitError, match="source model is needed"):
        quantize(path, tmp_path, "static-int8", [], None)
    with pytest.raises(EdgekitError, match="int4-weights for executorch"):
        quantize(path, tmp_path, "int4-weights", [], None, model=model)
    with pytest.raises(EdgekitError, match="needs calibration samples"):
        quantize(path, tmp_path, "static-int8", [], None, model=model)


@pytest.mark.parametrize("mode", ["static-int8", "dynamic-int8"])
def test_tiny_cnn_int8_runs_close_to_torch_with_layers_kept_float(tiny_cnn_pte, tmp_path, mode):
    from edgekit.backends.executorch.quantize import quantize

    model, path, _ = tiny_cnn_pte
    rng = np.random.default_rng(3)
    calib = [{"pixels": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(16)]
    result = quantize(path, tmp_path, mode, calib, _quant_options(keep_float=["stem"]), model=model)
    assert result.path == tmp_path / "model.pte" and result.kept_float == ["stem"]
    assert any("kept in float: stem" in n for n in result.notes)
    assert any(n.startswith("XNNPACK delegate:") for n in result.notes)
    runner = ExecuTorchRunner(result.path, threads=1, source=model.signature)
    _, cos = _parity(model, runner, calib[:4])
    assert cos > 0.98, cos


def test_tiny_bert_fp32_matches_torch(tiny_bert, tmp_path):
    model = edgekit.load(tiny_bert, dims={"sequence": 16})
    path, notes = _convert(model, tmp_path)
    assert any("dynamic axes fixed" in n and "sequence=16" in n for n in notes), notes
    runner = ExecuTorchRunner(path, threads=1, source=model.signature)
    assert [s.name for s in runner.signature.inputs] == [s.name for s in model.signature.inputs]
    assert all(s.shape == (1, 16) for s in runner.signature.inputs)
    tok = model.meta["tokenizer"]
    samples = []
    for text in ("w1 w2 w3 w4", "w10 w200 w5 w6 w7 w8 w9 w11 w12"):
        enc = tok(text, padding="max_length", max_length=16, truncation=True, return_tensors="np")
        samples.append({s.name: enc[s.name].astype(np.int64) for s in model.signature.inputs})
    err, cos = _parity(model, runner, samples)
    assert err < 1e-4 and cos > 0.9999, (err, cos)


@pytest.mark.parametrize("mode", ["dynamic-int8", "static-int8"])
def test_tiny_bert_int8_keeps_integer_arithmetic_integer(tiny_bert, tmp_path, mode):
    """The XNNPACK quantizer's own scalar transform makes the mask's integer index arithmetic float
    (IndexError in a BERT); edgekit's keeps it integer. static-int8 uses the transformer preset."""
    from edgekit.backends.executorch.quantize import quantize

    model = edgekit.load(tiny_bert, dims={"sequence": 16})
    tok = model.meta["tokenizer"]
    samples = []
    for i in range(8):
        enc = tok(" ".join(f"w{(7 * i + j) % 990 + 5}" for j in range(3 + i)), padding="max_length", max_length=16,
                  truncation=True, return_tensors="np")
        samples.append({s.name: enc[s.name].astype(np.int64) for s in model.signature.inputs})
    result = quantize(None, tmp_path, mode, samples, _quant_options(transformer=True), model=model)
    if mode == "static-int8":
        assert any("linear layers only" in n for n in result.notes), result.notes
    runner = ExecuTorchRunner(result.path, threads=1, source=model.signature)
    _, cos = _parity(model, runner, samples[:3])
    assert cos > 0.99, cos


@pytest.mark.integration
def test_digits_static_int8_keeps_accuracy_and_shrinks(tmp_path):
    """pt2e + XNNPACKQuantizer, calibrated on 300 real training digits; judged on the 450 held out."""
    from edgekit.backends.executorch.quantize import quantize
    from edgekit.zoo import digits

    model = edgekit.load("edgekit.zoo.digits:cnn")
    fp32, _ = _convert(model, tmp_path / "fp32")
    data = digits.data()
    calib = [x for x, _ in data["calibration"][:300]]
    (tmp_path / "int8").mkdir()
    result = quantize(fp32, tmp_path / "int8", "static-int8", calib, _quant_options(), model=model)
    assert result.path.suffix == ".pte" and any("300 calibration samples" in n for n in result.notes)

    def accuracy(path: Path) -> float:
        runner = ExecuTorchRunner(path, threads=1, source=model.signature)
        return float(np.mean([runner.run(x)[0].argmax() == y[0] for x, y in data["evaluation"]]))

    acc32, acc8 = accuracy(fp32), accuracy(result.path)
    assert acc32 >= 0.97
    assert acc32 - acc8 <= 0.01, (acc32, acc8)
    assert result.path.stat().st_size < 0.35 * fp32.stat().st_size


def test_convert_through_edgekit_when_registered(tmp_path):
    """`edgekit convert --to executorch` end to end: the registry finds the folder's SPEC."""
    from edgekit._registry import TARGETS

    assert TARGETS["executorch"].suffix == ".pte"
    model = edgekit.load("tests.fixtures:tiny_cnn")
    result = edgekit.convert(model, ["executorch"], tmp_path / "out")
    (art,) = result.artifacts
    assert art.path.suffix == ".pte" and art.parity.status == "pass"


@pytest.mark.integration
def test_compress_and_bench_the_digits_cnn_through_the_cli(tmp_path):
    """`edgekit compress --to executorch --quantize static-int8` on the real digits, then `edgekit bench`
    on the output folder: fp32 and int8 .pte measured like any other artifact (device runner + device.py)."""
    from tests.conftest import run_cli

    out = tmp_path / "q"
    rc, stdout, err = run_cli("compress", "edgekit.zoo.digits:cnn", "--data", "edgekit.zoo.digits:data",
                              "--to", "executorch", "--quantize", "static-int8", "--calibration-samples", "300",
                              "--runs", "5", "--threads", "1", "--out", str(out), "--json")
    assert rc == 0, err
    doc = json.loads(stdout[stdout.index("{"):])
    (v,) = doc["variants"]
    assert v["target"] == "executorch" and v["status"] == "pass" and v["drop"] <= 1.0, v
    assert doc["baselines"]["executorch"]["value"] >= 97.0 and v["size_ratio"] > 3.0
    rc, _, err = run_cli("bench", str(out), "--runs", "10", "--warmup", "2", "--threads", "1",
                         "--json", str(tmp_path / "b.json"))
    assert rc == 0, err
    results = json.loads((tmp_path / "b.json").read_text())["results"]
    pte = [r for r in results if r["format"] == "executorch"]
    assert len(pte) == 2 and all(r["error"] is None and r["latency_ms"]["p50"] > 0 for r in pte), pte
    assert all(r["runtime"]["name"] == "executorch" for r in pte)
