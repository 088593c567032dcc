"""The documents edgekit writes, as typed models: manifest.json, compress's report.json, bench JSON.

One ``SCHEMA`` version for all three. Writers check their document against its model before
writing (a writer that drifts fails in tests, not in a user's CI); readers load through it.
Fields added since 0.1.0 (``host.cpu``, ``attempts``, ``target_cpu``...) are optional, so
files 0.1.0 wrote still load; unknown fields are kept, so a newer edgekit's files load too.
The JSON Schema of each is in ``docs/schema/`` (``python -m edgekit.schema docs/schema``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA = 1


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Tensor(_Doc):
    name: str
    shape: list[int | str]
    dtype: str


class SignatureDoc(_Doc):
    inputs: list[Tensor]
    outputs: list[Tensor]


class Cpu(_Doc):
    """A CPU and the ISA features that change int8 and bf16 kernels (edgekit/_cpu.py)."""

    model: str
    arch: str
    features: list[str]
    int8_dot: str
    bf16: bool
    source: str
    device: str | None = None  # compress --target: the device profile's name


class Host(_Doc):
    system: str
    machine: str
    python: str
    cpu: Cpu | None = None  # since 0.2


class SourceQuantization(_Doc):
    """An already-quantized source (edgekit/steps/ingest/_quantized.py): verified at int8 tolerances."""

    kind: str  # "QDQ", "integer ops, dynamic quantization", "TFLite full integer ..."
    kinds: list[str] = Field(default_factory=list)
    ops: dict[str, int] = Field(default_factory=dict)  # the quantized ops and how many of each
    bits: int = 8
    summary: str = ""


class Source(_Doc):
    spec: str
    format: str
    path: str | None = None
    sha256: str | None = None
    task: str | None = None
    signature: SignatureDoc
    dims: dict[str, int] = Field(default_factory=dict)
    dim_sources: dict[str, str] | None = None  # since 0.2: what sized each dynamic axis
    vocab_size: int | None = None
    quantization: SourceQuantization | None = None  # since 0.2: the source is already quantized


class OutputParity(_Doc):
    name: str
    max_abs_err: float
    mean_abs_err: float
    cosine: float
    top1_agreement: float | None = None


class DivergenceInput(_Doc):
    """An input of the divergent node: a constant, a model input, or a tensor and its error."""

    name: str
    kind: str  # "constant", "model input", "tensor", "not exposed ..."
    max_abs_err: float | None = None
    cosine: float | None = None


class FirstDivergence(_Doc):
    """Where an artifact drifts from its source (edgekit/steps/locate.py): the first node of the ONNX
    graph, in topological order, whose output is out of tolerance while its inputs are not."""

    node: str | None = None  # None: no tensor the artifact exposes is out of tolerance
    op_type: str | None = None
    tensor: str | None = None  # the node's output, by its ONNX name
    target_tensor: str | None = None  # the artifact's tensor compared with it
    max_abs_err: float | None = None
    cosine: float | None = None
    exposed: bool | None = None  # False: the artifact fused it away; inferred or bisected
    method: str | None = None
    inputs: list[DivergenceInput] = Field(default_factory=list)
    ranking: list[dict[str, Any]] = Field(default_factory=list)  # the nodes adding the most error
    known: dict[str, str] | None = None  # the known-failures entry it matches: cause, fix
    evidence: dict[str, Any] | None = None  # not exposed: the first divergent tensor it leads to
    bisection: str | None = None  # a bisection that found no divergent cut
    compared: str | None = None
    seconds: float | None = None
    error: str | None = None  # why it could not be located


class Parity(_Doc):
    status: Literal["pass", "fail", "not_run"]
    max_abs_err: float | None = None
    mean_abs_err: float | None = None
    cosine: float | None = None
    top1_agreement: float | None = None
    worst_output: str | None = None
    reason: str | None = None
    tolerance: dict[str, Any] | None = None
    outputs: list[OutputParity] = Field(default_factory=list)
    validation: dict[str, Any] | None = None
    first_divergence: FirstDivergence | None = None  # since 0.2: on a parity failure, or with --explain


class Attempt(_Doc):
    """One conversion route tried for an artifact."""

    route: str
    seconds: float
    error: str | None = None
    parity: str | None = None
    kept: bool | None = None  # since 0.2: the attempt whose artifact is the one written


class BucketParity(_Doc):
    """One shape bucket's parity: its samples at real lengths padded to it, against the source."""

    bucket: str  # edgekit._buckets.key: "sequence_16"
    status: Literal["pass", "fail", "not_run"]
    max_abs_err: float | None = None
    cosine: float | None = None
    samples: int
    lengths: list[dict[str, int]] = Field(default_factory=list)  # each sample's real size per bucketed axis
    reason: str | None = None


class Buckets(_Doc):
    """An artifact's shape buckets (``--shape-buckets``, since 0.2)."""

    axes: dict[str, list[int]]  # axis (a dynamic axis of the source's signature) -> ascending sizes
    signatures: dict[str, str] | None = None  # bucket key -> signature/method; None: one dynamic graph
    pad: dict[str, int | float] = Field(default_factory=dict)  # input -> the value it is padded with
    parity: list[BucketParity] = Field(default_factory=list)


class ArtifactRecord(_Doc):
    target: str
    precision: str
    path: str
    sha256: str
    size_bytes: int
    signature: SignatureDoc
    convert_seconds: float
    tool_versions: dict[str, str | None]
    parity: Parity | None = None
    notes: list[str] = Field(default_factory=list)
    lineage: list[str] = Field(default_factory=list)
    attempts: list[Attempt] = Field(default_factory=list)  # since 0.2
    buckets: Buckets | None = None  # since 0.2: with --shape-buckets


class Manifest(_Doc):
    """``DIR/manifest.json``, written by ``edgekit convert``."""

    schema_: int = Field(SCHEMA, alias="schema")
    edgekit: str
    created: str
    host: Host
    source: Source
    verification_inputs: str
    notes: list[str] = Field(default_factory=list)
    artifacts: list[ArtifactRecord]


class Baseline(_Doc):
    path: str
    size_bytes: int
    value: float | None = None
    drop: float | None = None
    agreement: dict[str, Any] | None = None
    latency_ms: dict[str, dict[str, Any]] = Field(default_factory=dict)


class Variant(Baseline):
    target: str
    mode: str
    baseline_size_bytes: int
    size_ratio: float
    metric: str | None = None
    baseline_value: float
    layers_kept_float: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    status: Literal["pass", "fail", "not_run"]
    speedup_1t: float | None = None
    quality_estimated: bool | None = None
    validation: dict[str, Any] | None = None
    drift: FirstDivergence | None = None  # since 0.2: where it drifts from the fp32 ONNX graph, and its ranking


class CompressReport(_Doc):
    """``DIR/report.json``, written by ``edgekit compress``."""

    schema_: int = Field(SCHEMA, alias="schema")
    kind: Literal["compress"] = "compress"
    edgekit: str
    created: str
    host: Host
    source: Source
    data: str
    metric: str
    baseline_value: float
    max_drop: float
    threads: list[int]
    baselines: dict[str, Baseline]
    variants: list[Variant]
    skipped: list[dict[str, Any]] = Field(default_factory=list)
    target_cpu: Cpu | None = None  # since 0.2: the CPU the quantizers chose settings for
    student: dict[str, Any] | None = None


class BenchRun(_Doc):
    """One artifact at one thread count (or its error)."""

    artifact: str
    format: str
    size_bytes: int
    threads: int | None = None
    error: str | None = None
    input_shapes: dict[str, list[int]] | None = None
    runtime: dict[str, Any] | None = None
    load_ms: float | None = None
    first_inference_ms: float | None = None
    latency_ms: dict[str, float | None] | None = None
    throughput_ips: float | None = None
    samples_ms: list[float] = Field(default_factory=list)
    rss_mb: dict[str, float | None] | None = None
    ops: list[dict[str, Any]] | None = None
    # since 0.2, with --lengths: one run per real length at the shape it runs at (bucket, static
    # shape or the length itself): axis, source, count, mean_length, mean_run_length, truncated,
    # run_at, by_size, latency_ms {p50, p90, p99, mean, min, max}
    real_lengths: dict[str, Any] | None = None


class BenchDoc(_Doc):
    """The JSON ``edgekit bench --json`` writes."""

    schema_: int = Field(SCHEMA, alias="schema")
    kind: Literal["bench"] = "bench"
    edgekit: str
    created: str
    device: dict[str, Any]
    target: dict[str, Any] | None = None
    settings: dict[str, Any]
    results: list[BenchRun]


DOCUMENTS: dict[str, type[_Doc]] = {"manifest": Manifest, "compress-report": CompressReport, "bench": BenchDoc}


def check(kind: str, doc: dict[str, Any]) -> dict[str, Any]:
    """Validate a document about to be written; returns it unchanged (raises on a drifted writer)."""
    DOCUMENTS[kind].model_validate(doc)
    return doc


def load(kind: str, path: str | Path) -> Any:
    """Read a document through its model (an EdgekitError names the file if it is not one)."""
    from ._errors import EdgekitError

    try:
        return DOCUMENTS[kind].model_validate(json.loads(Path(path).read_text()))
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        first = str(exc).splitlines()[0][:300]
        raise EdgekitError(f"{path} is not an edgekit {kind} ({type(exc).__name__}: {first})",
                           "give a file edgekit wrote, or write it again with this version") from exc


def export_json_schemas(folder: str | Path) -> list[Path]:
    """Write each document's JSON Schema to ``folder`` (docs/schema/)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, model in DOCUMENTS.items():
        path = out / f"{kind}.schema.json"
        path.write_text(json.dumps(model.model_json_schema(by_alias=True), indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m edgekit.schema docs/schema
    for p in export_json_schemas(sys.argv[1] if len(sys.argv) > 1 else "docs/schema"):
        print(p)
