"""The typed documents: what 0.1.0 wrote still loads, writers are checked, docs/schema is current."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgekit import schema
from edgekit._errors import EdgekitError

ROOT = Path(__file__).resolve().parents[1]
OLD = ROOT / "tests" / "data" / "v0.1.0"  # written by edgekit 0.1.0 (commit 89ba77a): convert, compress, bench


def test_documents_written_by_0_1_0_still_load():
    manifest = schema.load("manifest", OLD / "manifest.json")
    assert manifest.schema_ == 1 and [a.target for a in manifest.artifacts] == ["onnx", "openvino"]
    assert manifest.host.cpu is None and manifest.artifacts[0].attempts == []  # fields added since: optional
    assert manifest.artifacts[0].parity.status == "pass"
    report = schema.load("compress-report", OLD / "report.json")
    assert report.target_cpu is None and report.variants[0].mode == "static-int8"
    bench = schema.load("bench", OLD / "bench.json")
    assert bench.results[0].latency_ms["p50"] > 0 and "cpu" not in bench.device


def test_a_drifted_document_is_refused(tmp_path):
    doc = json.loads((OLD / "manifest.json").read_text())
    schema.check("manifest", doc)
    broken = {k: v for k, v in doc.items() if k != "artifacts"}
    with pytest.raises(ValueError, match="artifacts"):
        schema.check("manifest", broken)
    doc["artifacts"][0]["parity"]["status"] = "maybe"
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(EdgekitError, match="is not an edgekit manifest"):
        schema.load("manifest", tmp_path / "m.json")


def test_bench_reads_a_0_1_0_folder(tmp_path):
    """A folder written by 0.1.0 is found and read through the schema (no KeyError on new fields)."""
    from edgekit.bench.host import find_artifacts

    folder = tmp_path / "old"
    (folder / "onnx").mkdir(parents=True)
    shutil.copy(OLD / "manifest.json", folder / "manifest.json")
    (folder / "onnx" / "model.onnx").write_bytes(b"")
    (item, *_) = find_artifacts(folder)
    assert item.format == "onnx" and item.signature["inputs"][0]["name"] == "x"


def test_docs_schema_is_current(tmp_path):
    written = schema.export_json_schemas(tmp_path)
    for path in written:
        shipped = ROOT / "docs" / "schema" / path.name
        assert shipped.is_file() and shipped.read_text() == path.read_text(), (
            f"{shipped} is stale: run `python -m edgekit.schema docs/schema`")


def test_schema_and_target_spec_pass_mypy_strict():
    pytest.importorskip("mypy")
    proc = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-incremental", "edgekit/schema.py",
                           "edgekit/backends/_spec.py"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
