"""What `edgekit check` reports: findings per route, a verdict per target, the result."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

FAIL, RISK = "fail", "risk"
EXIT_PREDICTED_FAILURE = 3  # some target will fail (or an axis has no size); 2 is a bad input, as elsewhere


@dataclass
class Finding:
    """One thing a route's converter or runtime cannot take: an op (or a type, an axis), how sure
    (``fail``: it will stop the route; ``risk``: it may), why, and what to do."""

    op: str
    severity: str  # FAIL or RISK
    cause: str
    fix: str | None = None
    nodes: list[str] = field(default_factory=list)


@dataclass
class RouteCheck:
    """One route of a target, as the check sees it: ``checked`` False when nothing could tell
    (``note`` says why), and then it counts as neither passing nor failing."""

    route: str
    findings: list[Finding] = field(default_factory=list)
    checked: bool = True
    note: str | None = None

    @property
    def status(self) -> str:
        if any(f.severity == FAIL for f in self.findings):
            return FAIL
        if self.findings:
            return RISK
        return "ok" if self.checked else "unchecked"


@dataclass
class TargetCheck:
    """A target's verdict: ``will convert``, ``may need route X``, ``may fail at op Y`` or
    ``will fail at op Y``; ``status`` is ok, route, risk or fail."""

    target: str
    status: str
    verdict: str
    route: str | None = None  # the route expected to make the artifact
    fix: str | None = None
    routes: list[RouteCheck] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    """``edgekit.check``'s answer: the source's facts and a verdict per target."""

    source: dict
    targets: list[TargetCheck]
    unsized: list[dict] = field(default_factory=list)  # {"input", "axis", "fix"}
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every target will convert (perhaps by a later route) and every axis has a size."""
        return not self.unsized and all(t.status in ("ok", "route", RISK) for t in self.targets)

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else EXIT_PREDICTED_FAILURE

    def target(self, name: str) -> TargetCheck:
        return next(t for t in self.targets if t.target == name)

    def to_dict(self) -> dict:
        doc = asdict(self)
        for t, tc in zip(doc["targets"], self.targets, strict=True):
            for r, rc in zip(t["routes"], tc.routes, strict=True):
                r["status"] = rc.status
        doc["ok"], doc["exit_code"] = self.ok, self.exit_code
        return doc
