"""onnx2tf's failures are explained from converters/known_failures.toml, naming the op and the way on."""

import pytest

from edgekit._known import explain


def _raised_in(path: str, exc: Exception) -> Exception:
    """``exc`` as raised from code in ``path`` (so its traceback names that module)."""
    ns: dict = {}
    exec(compile("def f(e):\n    raise e\n", path, "exec"), ns)
    try:
        ns["f"](exc)
    except Exception as caught:  # noqa: BLE001
        return caught
    raise AssertionError("not raised")


@pytest.mark.parametrize(("message", "kind", "expected"), [
    ("No module named 'onnx2tf.ops.BitCast'", ModuleNotFoundError, "no converter for ONNX op 'BitCast'"),
    ("error: 'tf.Atanh' op is neither a custom op nor a flex op", RuntimeError, "no builtin op for TensorFlow's Atanh"),
    ("error: 'tf.Cumsum' op requires scalar axis operand", RuntimeError, "the axis of Cumsum is a tensor fed"),
    ('Exception encountered when calling layer "tf.reverse_4" (type TFOpLambda).', ValueError, "op reverse"),
    ("\x1b[31mERROR:\x1b[0m storage_order option is not implemented yet.", NotImplementedError,
     "does not implement this: storage_order option"),
])
def test_onnx2tf_messages_are_known(message, kind, expected):
    err = explain("tflite", kind(message))
    assert expected in str(err) and "not in converters/known_failures.toml" not in (err.fix or "")


def test_an_error_inside_an_onnx2tf_op_converter_names_the_op():
    onnx2tf_ops = pytest.importorskip("onnx2tf.ops.Add")
    exc = _raised_in(onnx2tf_ops.__file__, UnboundLocalError("cannot access local variable 'dummy_tensor'"))
    err = explain("tflite", exc)
    assert "onnx2tf's converter for ONNX op Add failed" in str(err) and "--route" in err.fix
    plain = explain("tflite", UnboundLocalError("cannot access local variable 'dummy_tensor'"))
    assert "not in converters/known_failures.toml" in plain.fix  # no op to name: unknown, and says so
