"""The CPU an artifact runs on: detection, the EDGEKIT_CPU_FEATURES override, device profiles, and the
quantizer settings chosen per ISA (tested through the override, so every path runs on any host)."""

import re
from pathlib import Path

import numpy as np
import pytest

from edgekit import _cpu
from edgekit._errors import EdgekitError

ROOT = Path(__file__).resolve().parents[1]
# the CPU families CI meets, and the devices edgekit builds for
AVX2 = "avx2,fma,model=AMD EPYC (AVX2 only)"
VNNI = "avx2,fma,avx512f,avx512_vnni,avx512_bf16"
AMX = "avx2,fma,avx512f,avx512_vnni,avx512_bf16,amx_int8,amx_bf16"
ARM_DOT = "aarch64,asimddp"


def test_detect_reads_this_machine(monkeypatch):
    monkeypatch.delenv(_cpu.ENV, raising=False)
    cpu = _cpu.detect()
    assert cpu.source == "detected" and cpu.model and cpu.arch
    assert cpu.features <= set(_cpu.FEATURES)
    if Path("/proc/cpuinfo").exists() and cpu.x86:  # the flags line, word for word
        flags = set(re.search(r"^flags\s*:(.*)$", Path("/proc/cpuinfo").read_text(), re.M).group(1).split())
        assert cpu.features == flags & set(_cpu.X86)
        assert ("avx512_vnni" in flags or "avx_vnni" in flags or "amx_int8" in flags) != cpu.saturates_u8s8


def test_override_and_its_errors(monkeypatch):
    monkeypatch.setenv(_cpu.ENV, AVX2)
    cpu = _cpu.host()
    assert (cpu.arch, cpu.model, cpu.source) == ("x86_64", "AMD EPYC (AVX2 only)", _cpu.ENV)
    assert cpu.saturates_u8s8 and not cpu.bf16 and cpu.int8_dot.startswith("avx2")
    monkeypatch.setenv(_cpu.ENV, "dotprod,i8mm")  # an alias, arch inferred
    assert _cpu.host().arch == "aarch64" and _cpu.host().features == {"asimddp", "i8mm"}
    assert _cpu.parse("aarch64").int8_dot.startswith("neon")
    for bad, why in (("avx2,asimddp", "mixes"), ("avx3", "unknown CPU feature"), ("aarch64,avx2", "not aarch64")):
        with pytest.raises(ValueError, match=why):
            _cpu.parse(bad)


@pytest.mark.parametrize(("spec", "dot", "saturates", "bf16"), [
    (AVX2, "avx2", True, False), ("avx2,fma,avx512f", "avx2", True, False),  # AVX-512 without VNNI saturates too
    (VNNI, "vnni", False, True), ("avx2,avx_vnni", "vnni", False, False), (AMX, "amx", False, True),
    (ARM_DOT, "dotprod", False, False), ("asimddp,i8mm,bf16", "i8mm", False, True)])
def test_isa_properties(spec, dot, saturates, bf16):
    cpu = _cpu.parse(spec)
    assert cpu.int8_dot.startswith(dot) and cpu.saturates_u8s8 is saturates and cpu.bf16 is bf16
    assert cpu.to_dict()["features"] == sorted(cpu.features)


def test_every_device_profile_names_its_cpu():
    for path in sorted((ROOT / "targets").glob("*.toml")):
        cpu = _cpu.for_device(path.stem)
        assert cpu.source == f"targets/{path.stem}.toml" and cpu.model and cpu.features, path.name
        assert not cpu.saturates_u8s8, f"{path.name}: no device profile today has a saturating int8 path"
    with pytest.raises(EdgekitError, match="unknown device profile"):
        _cpu.for_device("no-such-board")


def test_openvino_precision_follows_the_cpu():
    assert _cpu.openvino_precision(_cpu.parse(AVX2))[0] == "f32"
    assert _cpu.openvino_precision(_cpu.parse(ARM_DOT))[0] == "f32"
    hint, note = _cpu.openvino_precision(_cpu.parse(AMX))
    # bf16 is measured only where this host can run it; the note says so either way
    assert hint == ("bf16" if _cpu.detect().bf16 else "f32") and "bf16" in note


# ---- ONNX Runtime int8 settings per ISA, on a real model through the real quantizer ----------------

def _matmul_model(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(64, 48)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="fc")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _int8_weights(path: Path) -> np.ndarray:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    ints = [numpy_helper.to_array(i) for i in model.graph.initializer
            if i.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8) and i.dims and np.prod(i.dims) > 100]
    assert len(ints) == 1
    return ints[0]


@pytest.mark.parametrize(("spec", "dtype"), [(AVX2, np.uint8), ("avx2,avx512f", np.uint8), (VNNI, np.int8),
                                             (AMX, np.int8), (ARM_DOT, np.int8)])
@pytest.mark.parametrize("mode", ["dynamic-int8", "static-int8"])
def test_ort_int8_weights_follow_the_isa(tmp_path, monkeypatch, spec, dtype, mode):
    from edgekit.steps.quantize import QuantOptions, backend

    monkeypatch.setenv(_cpu.ENV, spec)
    src = _matmul_model(tmp_path / "m.onnx")
    calib = [{"x": np.random.default_rng(i).normal(size=(1, 64)).astype(np.float32)} for i in range(8)]
    (tmp_path / "q").mkdir()
    result = backend("onnx").quantize(src, tmp_path / "q", mode, calib, QuantOptions())
    # u8 weights where u8 x s8 pairs saturate int16 (u8 x u8 kernels widen first); full-range s8 elsewhere
    w = _int8_weights(result.path)
    assert w.dtype == dtype
    assert (np.abs(w.astype(np.int32)).max() == 127) if dtype == np.int8 else (w.max() - w.min() >= 250)
    isa = next(n for n in result.notes if n.startswith("ISA:"))
    assert (" u8 weights" in isa) is (dtype == np.uint8) and _cpu.parse(spec).model in isa
    # the artifact runs, and close to the float model
    import onnxruntime as ort

    x = calib[0]
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, x)[0]
    got = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(None, x)[0]
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max()


def test_device_profile_beats_the_host(tmp_path, monkeypatch):
    """Building for a Raspberry Pi on an AVX2 host: the Pi's CPU decides (full range)."""
    from edgekit.steps.quantize import QuantOptions, backend

    monkeypatch.setenv(_cpu.ENV, AVX2)
    src = _matmul_model(tmp_path / "m.onnx")
    (tmp_path / "q").mkdir()
    opts = QuantOptions(cpu=_cpu.for_device("raspberry-pi-5"))
    result = backend("onnx").quantize(src, tmp_path / "q", "dynamic-int8", None, opts)
    w = _int8_weights(result.path)
    assert w.dtype == np.int8 and np.abs(w.astype(np.int32)).max() == 127
