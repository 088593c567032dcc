"""Shape buckets on ExecuTorch (a dynamic program, else one method per bucket) and Core ML
(enumerated shapes): a tiny BERT converted with buckets, real ExecuTorch runs against torch,
the Core ML package's spec read back (Core ML itself runs only on macOS)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import edgekit  # noqa: E402
from edgekit.backends._common import ConvertContext  # noqa: E402

SIZES = [8, 16, 32]


@pytest.fixture(scope="module")
def bert(tiny_bert):
    return edgekit.load(tiny_bert, dims={"sequence": 32})


def _feeds(model, length: int, padded_to: int | None = None, seed: int = 0) -> dict[str, np.ndarray]:
    """Real tokens for ``length`` positions ([CLS] ... [SEP]), padded with 0 (and a 0 mask) to ``padded_to``."""
    rng = np.random.default_rng(seed + length)
    total = padded_to or length
    ids = np.zeros((1, total), np.int64)
    ids[0, :length] = rng.integers(5, 1000, length)
    ids[0, 0], ids[0, length - 1] = 2, 3
    mask = np.zeros((1, total), np.int64)
    mask[0, :length] = 1
    values = {"input_ids": ids, "token_type_ids": np.zeros((1, total), np.int64), "attention_mask": mask}
    return {s.name: values[s.name] for s in model.signature.inputs}


def _torch(model, feeds) -> np.ndarray:
    with torch.no_grad():
        out = model.module(*[torch.from_numpy(feeds[s.name]) for s in model.signature.inputs])
    return (out[0] if isinstance(out, tuple | list) else out).numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _check_parity(model, runner, lengths=(8, 16, 32)) -> None:
    """Each bucket at its full length, and a mid length padded to its bucket (the padded
    positions cut off) against torch run unpadded."""
    for n in lengths:
        feeds = _feeds(model, n)
        got, ref = runner.run(feeds)[0], _torch(model, feeds)
        assert got.shape == ref.shape == (1, n, 64)
        assert float(np.abs(got - ref).max()) < 1e-4 and _cosine(got, ref) >= 0.9999
    for n, bucket in ((12, 16), (5, 8), (27, 32)):
        got = runner.run(_feeds(model, n, padded_to=bucket))[0]
        assert got.shape == (1, bucket, 64)
        ref = _torch(model, _feeds(model, n))
        assert _cosine(got[:, :n], ref) >= 0.9999, n
        assert float(np.abs(got[:, :n] - ref).max()) < 1e-4


# ---- ExecuTorch -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def et_modules():
    pytest.importorskip("executorch")
    from edgekit.backends.executorch import buckets, convert
    from edgekit.backends.executorch.runtime import ExecuTorchRunner

    return buckets, convert, ExecuTorchRunner


@pytest.fixture(scope="module")
def dynamic_pte(bert, et_modules, tmp_path_factory):
    et_convert = et_modules[1]
    return et_convert.from_torch(bert, tmp_path_factory.mktemp("et-dynamic"), "fp32",
                                 ConvertContext(buckets={"sequence": SIZES}))


def test_executorch_dynamic_program_runs_every_bucket(bert, et_modules, dynamic_pte):
    Runner = et_modules[2]
    path, notes = dynamic_pte
    assert notes[0].startswith("shape buckets: one dynamic program") and "sequence 8..32" in notes[0], notes
    runner = Runner(path, threads=1, source=bert.signature)
    assert runner.signature_keys == []  # one dynamic graph: no method per bucket
    assert [s.shape for s in runner.signature.inputs] == [(1, "sequence")] * 3
    assert runner.signature.outputs[0].shape == (1, "sequence", 64)
    _check_parity(bert, runner)
    _check_parity(bert, runner, lengths=(11, 20))  # sizes between the buckets run too


@pytest.fixture(scope="module")
def per_bucket_pte(bert, et_modules, tmp_path_factory):
    et_buckets = et_modules[0]
    dest = tmp_path_factory.mktemp("et-methods") / "model.pte"
    notes = et_buckets.convert(bert, dest, ConvertContext(buckets={"sequence": SIZES}), per_bucket=True)
    return dest, notes


def test_executorch_one_method_per_bucket(bert, et_modules, per_bucket_pte):
    Runner = et_modules[2]
    dest, notes = per_bucket_pte
    assert "one method per bucket (sequence_8, sequence_16, sequence_32)" in notes[0], notes
    runner = Runner(dest, threads=1, source=bert.signature)
    assert runner.signature_keys == ["sequence_8", "sequence_16", "sequence_32"]
    assert [s.shape for s in runner.signature.inputs] == [(1, "sequence")] * 3
    _check_parity(bert, runner)  # each bucket's method, taken by the feeds' shapes
    runner.use("sequence_16")
    got = runner.run(_feeds(bert, 10, padded_to=16))[0]
    assert _cosine(got[:, :10], _torch(bert, _feeds(bert, 10))) >= 0.9999
    with pytest.raises(Exception, match="sequence_16|shape|size"):
        runner.run(_feeds(bert, 8))  # bucket 16's method refuses length 8
    runner.use(None)
    with pytest.raises(ValueError, match="no method of the program takes inputs of shapes"):
        runner.run(_feeds(bert, 12))  # not padded to a bucket
    with pytest.raises(edgekit.EdgekitError, match="no method for bucket"):
        runner.use("sequence_64")


def test_executorch_device_loader_dispatches_by_shape(bert, per_bucket_pte):
    """The bench runner's loader (numpy + executorch only) runs a per-bucket program by shape."""
    from edgekit.backends.executorch import device

    run, program, info = device.load(str(per_bucket_pte[0]), threads=1)
    assert info["methods"] == ["sequence_8", "sequence_16", "sequence_32"]
    assert json.loads(program.load_method(device.IO_METHOD).execute([])[0])["methods"] == {
        k: k for k in ("sequence_8", "sequence_16", "sequence_32")}
    assert "forward" not in program.method_names
    for n in SIZES:
        feeds = _feeds(bert, n)
        assert _cosine(run(feeds)[0], _torch(bert, feeds)) >= 0.9999


@pytest.mark.parametrize("mode", ["dynamic-int8", "static-int8"])
def test_executorch_int8_follows_the_fp32_programs_buckets(bert, et_modules, dynamic_pte, tmp_path, mode):
    """int8 (pt2e) from a bucketed fp32 .pte is one dynamic program too, calibrated on samples
    of several lengths (each padded to its bucket), and runs at every bucket."""
    from edgekit.backends._quant import QuantOptions
    from edgekit.backends.executorch import quantize as et_quantize

    Runner = et_modules[2]
    calib = [_feeds(bert, n, seed=i) for i, n in enumerate((5, 12, 20, 32, 9, 30))]
    res = et_quantize.quantize(dynamic_pte[0], tmp_path, mode, calib, QuantOptions(transformer=True), model=bert)
    assert any(n.startswith("shape buckets {'sequence': [8, 16, 32]}: one dynamic program") for n in res.notes)
    runner = Runner(res.path, threads=1, source=bert.signature)
    assert [s.shape for s in runner.signature.inputs] == [(1, "sequence")] * 3
    for n in (8, 13, 16, 32):
        feeds = _feeds(bert, n, seed=7)
        got, ref = runner.run(feeds)[0], _torch(bert, feeds)
        assert got.shape == ref.shape == (1, n, 64) and _cosine(got, ref) >= 0.99, (n, _cosine(got, ref))
        assert float(np.abs(got - ref).max()) > 0  # quantized: not the fp32 program


# ---- Core ML ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def coreml_bucketed(bert, tmp_path_factory):
    ct = pytest.importorskip("coremltools")
    from edgekit.backends.coreml import convert as cm_convert

    folder = tmp_path_factory.mktemp("coreml-buckets")
    path, notes = cm_convert.from_torch(bert, folder, "fp32", ConvertContext(buckets={"sequence": SIZES}))
    return ct, path, notes


def test_coreml_enumerated_shapes_in_the_spec(bert, coreml_bucketed):
    ct, path, notes = coreml_bucketed
    assert notes == ["shape buckets: enumerated shapes (sequence 8, 16, 32) on input_ids, token_type_ids, "
                     "attention_mask; enumerated shapes on 3 inputs need iOS 18 / macOS 15, the package's minimum"]
    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()  # the package loads
    assert spec.specificationVersion >= 9  # iOS 18: several enumerated inputs
    for feature in spec.description.input:
        arr = feature.type.multiArrayType
        assert arr.WhichOneof("ShapeFlexibility") == "enumeratedShapes"
        assert sorted(tuple(s.shape) for s in arr.enumeratedShapes.shapes) == [(1, 8), (1, 16), (1, 32)]
        assert tuple(arr.shape) == (1, 32)  # the default: the largest bucket
    assert json.loads(spec.description.metadata.userDefined["edgekit.buckets"]) == {"sequence": SIZES}


def test_coreml_validation_names_the_buckets(bert, coreml_bucketed):
    _, path, _ = coreml_bucketed
    from edgekit.backends.coreml.runtime import CoreMLRunner

    runner = CoreMLRunner(path, source=bert.signature)
    assert [s.shape for s in runner.signature.inputs] == [(1, "sequence")] * 3
    validation = runner.validate(bert.signature)
    assert validation["problems"] == [] and validation["op_count"] > 0
    assert validation["flexible_shapes"]["input_ids"] == {"enumerated": [[1, 32], [1, 8], [1, 16]]}


def test_coreml_validation_flags_a_missing_bucket(bert, coreml_bucketed, tmp_path):
    """A package whose metadata asks for a bucket its enumerated shapes lack fails validation."""
    ct, path, _ = coreml_bucketed
    from edgekit.backends.coreml.runtime import CoreMLRunner

    model = ct.models.MLModel(str(path), skip_model_load=True)
    model.user_defined_metadata["edgekit.buckets"] = json.dumps({"sequence": [8, 16, 32, 64]})
    model.save(str(tmp_path / "bad.mlpackage"))
    problems = CoreMLRunner(tmp_path / "bad.mlpackage", source=bert.signature).validate(bert.signature)["problems"]
    assert problems == [f"input {n!r}: no enumerated shape at bucket size(s) [64]"
                        for n in ("input_ids", "token_type_ids", "attention_mask")]


# ---- through edgekit.convert --------------------------------------------------------------------

@pytest.mark.integration
def test_convert_with_buckets_to_executorch_and_coreml(tiny_bert, tmp_path):
    """`edgekit.convert(shape_buckets=)`: ExecuTorch verified at every bucket (one dynamic
    program: no signatures), Core ML validated with its enumerated shapes (not run off macOS)."""
    pytest.importorskip("executorch")
    pytest.importorskip("coremltools")
    result = edgekit.convert(edgekit.load(tiny_bert, dims={"sequence": 32}), targets=["executorch", "coreml"],
                             out=tmp_path / "out", shape_buckets={"sequence": SIZES})
    doc = json.loads(result.manifest_path.read_text())
    by_target = {a["target"]: a for a in doc["artifacts"]}
    et = by_target["executorch"]
    assert et["buckets"]["axes"] == {"sequence": SIZES} and et["buckets"]["signatures"] is None
    assert [p["bucket"] for p in et["buckets"]["parity"]] == ["sequence_8", "sequence_16", "sequence_32"]
    assert all(p["status"] == "pass" and p["cosine"] >= 0.9999 for p in et["buckets"]["parity"]), et["buckets"]
    assert et["parity"]["status"] == "pass"
    cm = by_target["coreml"]
    assert cm["buckets"]["axes"] == {"sequence": SIZES} and cm["buckets"]["signatures"] is None
    validation = cm["parity"]["validation"]
    assert cm["parity"]["status"] == "not_run" and validation["problems"] == []
    assert sorted(map(tuple, validation["flexible_shapes"]["input_ids"]["enumerated"])) == [(1, 8), (1, 16), (1, 32)]
