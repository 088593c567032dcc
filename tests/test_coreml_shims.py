"""Core ML shims for torch ops coremltools lacks: the conversion goes through and the package is right."""

import pytest

import edgekit


def test_diff_converts_to_coreml_with_the_right_shapes(tmp_path):
    pytest.importorskip("coremltools")
    result = edgekit.convert("tests.fixtures:diff_module", targets=["coreml"], out=tmp_path / "d")
    (art,) = result.artifacts
    v = art.parity.validation
    assert v["loads"] and not v["problems"], v
    # x[..., 1:] - x[..., :-1] along the axis, n times: (2, 5, 7) -> (2, 5, 6) and, twice on dim 1, (2, 3, 7)
    assert [o["shape"] for o in v["outputs"]] == [[2, 5, 6], [2, 3, 7]]
    from edgekit.backends.coreml.shims import SHIMS

    assert "diff" in SHIMS
