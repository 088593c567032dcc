"""Bad input: a clear error naming cause and fix, a non-zero exit, nothing half-written."""

import numpy as np
import pytest

import edgekit
from edgekit import EdgekitError
from edgekit._inputs import parse_input_spec
from tests.conftest import run_cli


def _assert_clean(cli_result, *needles, code=2):
    rc, out, err = cli_result
    assert rc == code, (rc, out, err)
    assert "edgekit: error:" in err and "fix:" in err
    for n in needles:
        assert n in err, (n, err)
    assert "Traceback" not in err


def test_missing_file(tmp_path):
    _assert_clean(run_cli("convert", str(tmp_path / "nope.onnx"), "--out", str(tmp_path / "o")), "does not exist")
    assert not (tmp_path / "o").exists()


def test_file_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    _assert_clean(run_cli("convert", str(tmp_path / "notes.txt"), "--out", str(tmp_path / "o")), "not a model file")


def test_truncated_onnx(tmp_path):
    res = edgekit.convert("tests.fixtures:tiny_cnn", targets=["onnx"], out=tmp_path / "good")
    data = res.artifacts[0].path.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 3])
    _assert_clean(run_cli("convert", str(tmp_path / "cut.onnx"), "--to", "onnx", "--out", str(tmp_path / "o")),
                  "not a valid ONNX model", "truncated")
    assert not (tmp_path / "o").exists()


def test_empty_file(tmp_path):
    (tmp_path / "empty.onnx").write_bytes(b"")
    _assert_clean(run_cli("convert", str(tmp_path / "empty.onnx"), "--out", str(tmp_path / "o")), "is empty")


def test_op_a_target_cannot_take_names_op_node_target_and_fix(tmp_path):
    rc, out, err = run_cli("convert", "tests.fixtures:unconvertible", "--to", "coreml", "--out", str(tmp_path / "o"))
    _assert_clean((rc, out, err), "coreml", "special_i0", "register_torch_op")
    assert not (tmp_path / "o").exists()
    assert not list(tmp_path.glob(".o.tmp-*")), "temporary folder left behind"


def test_failed_run_leaves_existing_output_untouched(tmp_path):
    first = edgekit.convert("tests.fixtures:tiny_cnn", targets=["onnx"], out=tmp_path / "o")
    before = first.manifest_path.read_text()
    with pytest.raises(EdgekitError):
        edgekit.convert("tests.fixtures:unconvertible", targets=["coreml"], out=tmp_path / "o")
    assert first.manifest_path.read_text() == before


def test_shape_mismatch_in_user_inputs(tmp_path):
    np.savez(tmp_path / "x.npz", pixels=np.zeros((1, 3, 16, 16), np.float32))
    _assert_clean(run_cli("convert", "tests.fixtures:tiny_cnn", "--to", "onnx", "--inputs", str(tmp_path / "x.npz"),
                          "--out", str(tmp_path / "o")), "pixels", "[1, 3, 16, 16]")
    np.savez(tmp_path / "y.npz", wrong=np.zeros((1, 3, 32, 32), np.float32))
    _assert_clean(run_cli("convert", "tests.fixtures:tiny_cnn", "--to", "onnx", "--inputs", str(tmp_path / "y.npz"),
                          "--out", str(tmp_path / "o")), "no array for input")


def test_user_inputs_are_used(tmp_path):
    x = np.random.default_rng(1).random((1, 3, 32, 32), dtype=np.float32)
    np.savez(tmp_path / "x.npz", pixels=x)
    res = edgekit.convert("tests.fixtures:tiny_cnn", targets=["onnx"], out=tmp_path / "o", inputs=tmp_path / "x.npz")
    assert "x.npz" in res.manifest["verification_inputs"]


def test_unknown_target_and_precision(tmp_path):
    _assert_clean(run_cli("convert", "tests.fixtures:tiny_cnn", "--to", "tensorrt", "--out", str(tmp_path / "o")),
                  "unknown target")
    _assert_clean(run_cli("convert", "tests.fixtures:tiny_cnn", "--precision", "int8", "--out", str(tmp_path / "o")),
                  "edgekit compress")


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "precious.txt").write_text("mine")
    _assert_clean(run_cli("convert", "tests.fixtures:tiny_cnn", "--to", "onnx", "--out", str(tmp_path / "o")), "--force")
    assert (tmp_path / "o" / "precious.txt").read_text() == "mine"


def test_bad_input_spec_and_factory():
    with pytest.raises(EdgekitError, match="name:shape:dtype"):
        parse_input_spec("pixels")
    with pytest.raises(EdgekitError, match="bad dtype"):
        parse_input_spec("pixels:1x3:floaty")
    with pytest.raises(EdgekitError, match="cannot import"):
        edgekit.load("no_such_pkg.mod:factory")
    with pytest.raises(EdgekitError, match="--input"):
        edgekit.load("tests.fixtures:tiny_cnn_module")


def test_parity_failure_exits_1_and_names_worst_output(tmp_path):
    # an impossible tolerance: fp32 artifacts cannot be bit-exact after graph rewrites at this scale
    rc, out, err = run_cli("convert", "tests.fixtures:tiny_cnn", "--to", "onnx", "--atol", "0", "--rtol", "0",
                           "--min-cosine", "1.1", "--out", str(tmp_path / "o"))
    assert rc == 1, err
    assert "parity check failed for onnx (output" in err
    assert (tmp_path / "o" / "manifest.json").is_file()  # artifacts are complete: kept for inspection


def test_missing_backend_names_the_extra(tmp_path):
    # openvino made unimportable in a real subprocess (as if the extra were not installed)
    code = (
        "import sys; sys.modules['openvino'] = None\n"
        "from edgekit.cli import main\n"
        f"sys.argv = ['edgekit', 'convert', 'tests.fixtures:tiny_cnn', '--to', 'openvino', '--out', r'{tmp_path / 'o'}']\n"
        "main()\n"
    )
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "openvino is not installed" in proc.stderr
    assert "pip install 'edgekit[openvino]'" in proc.stderr
    assert not (tmp_path / "o").exists()
