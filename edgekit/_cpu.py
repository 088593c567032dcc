"""The CPU that runs an artifact: its model name and the ISA features that change int8 and bf16 kernels.

Standard library only: the bench runner carries this file to devices that have numpy and a
runtime, not edgekit.

Why it matters: x86 int8 kernels without VNNI multiply u8 by s8 into int16 pairs that
saturate (``vpmaddubsw``), so full-range int8 weights lose accuracy on an AVX2-only CPU;
OpenVINO runs in bf16 by default only where the CPU has AMX or AVX512_BF16; Arm's dot-product
instructions accumulate in int32 and never saturate.

``EDGEKIT_CPU_FEATURES`` overrides the detection, to test a path on another CPU or to build
for a device: a comma-separated list of features (``avx2,fma``, ``avx512_vnni``,
``asimddp,i8mm``), optionally with an architecture (``x86_64``, ``aarch64``) and a model
after ``model=`` (``aarch64,asimddp,model=Cortex-A76``). The architecture is inferred from the
features when not given; ``aarch64`` alone is an Arm CPU without dot product.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
from dataclasses import dataclass, field

X86 = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
ARM = ("asimddp", "i8mm", "bf16", "sve", "sve2")
FEATURES = X86 + ARM
ALIASES = {"dotprod": "asimddp", "avx512vnni": "avx512_vnni", "avxvnni": "avx_vnni", "avx512bf16": "avx512_bf16"}
ARCHES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}
ENV = "EDGEKIT_CPU_FEATURES"
# macOS on Apple silicon names features in sysctl
_SYSCTL = {"hw.optional.arm.FEAT_DotProd": "asimddp", "hw.optional.arm.FEAT_I8MM": "i8mm",
           "hw.optional.arm.FEAT_BF16": "bf16"}


@dataclass(frozen=True)
class CpuInfo:
    arch: str  # x86_64 | aarch64 | what platform.machine() says
    model: str
    features: frozenset[str] = field(default_factory=frozenset)
    source: str = "detected"  # detected | EDGEKIT_CPU_FEATURES | targets/<name>.toml

    @property
    def x86(self) -> bool:
        return self.arch == "x86_64"

    @property
    def arm(self) -> bool:
        return self.arch == "aarch64"

    @property
    def int8_dot(self) -> str:
        """The int8 dot-product path the CPU's kernels take."""
        f = self.features
        if self.x86:
            if "amx_int8" in f:
                return "amx"
            if f & {"avx512_vnni", "avx_vnni"}:
                return "vnni"
            return "avx2 (u8 x s8 into saturating int16 pairs)" if "avx2" in f else "sse (no int8 dot product)"
        if self.arm:
            return "i8mm" if "i8mm" in f else ("dotprod" if "asimddp" in f else "neon (no dot product)")
        return "unknown"

    @property
    def saturates_u8s8(self) -> bool:
        """x86 without VNNI or AMX: u8 x s8 products are summed in pairs into int16 and saturate."""
        return self.x86 and not self.features & {"avx512_vnni", "avx_vnni", "amx_int8"}

    @property
    def bf16(self) -> bool:
        """OpenVINO's CPU plugin infers in bf16 by default here (AMX or AVX512_BF16, or Arm bf16)."""
        return bool(self.features & ({"amx_bf16", "avx512_bf16"} if self.x86 else {"bf16"}))

    def to_dict(self) -> dict:
        return {"model": self.model, "arch": self.arch, "features": sorted(self.features),
                "int8_dot": self.int8_dot, "bf16": self.bf16, "source": self.source}

    def describe(self) -> str:
        return f"{self.model} ({self.arch}; {', '.join(sorted(self.features)) or 'no int8/bf16 extensions'})"


def _norm(name: str) -> str:
    name = name.strip().lower()
    return ALIASES.get(name, name)


def parse(text: str, source: str = ENV, default_arch: str | None = None) -> CpuInfo:
    """A CpuInfo from ``EDGEKIT_CPU_FEATURES`` syntax; refuses names it does not know."""
    arch, model, feats = None, None, set()
    for raw in (t for t in text.split(",") if t.strip()):
        if raw.strip().lower().startswith("model="):
            model = raw.split("=", 1)[1].strip()
            continue
        token = _norm(raw)
        if token in ARCHES:
            arch = ARCHES[token]
        elif token in FEATURES:
            feats.add(token)
        else:
            raise ValueError(f"{source}: unknown CPU feature {raw.strip()!r}; known: {', '.join(FEATURES)}, "
                             f"an architecture ({', '.join(sorted(set(ARCHES.values())))}) or model=NAME")
    if arch is None:
        if feats & set(X86) and feats & set(ARM):
            raise ValueError(f"{source}: {sorted(feats)} mixes x86 and Arm features; give one CPU")
        arch = "x86_64" if feats & set(X86) else ("aarch64" if feats & set(ARM) else
                                                 (default_arch or _machine()))
    bad = feats - set(X86 if arch == "x86_64" else ARM)
    if bad:
        raise ValueError(f"{source}: {sorted(bad)} are not {arch} features")
    return CpuInfo(arch, model or f"{arch} CPU ({source})", frozenset(feats), source)


def _machine() -> str:
    m = platform.machine().lower()
    return ARCHES.get(m, m)


def _proc_cpuinfo(text: str) -> tuple[str, set[str]]:
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = {_norm(f) for f in value.split()}
        if model and flags:
            break
    return model, flags


def _arm_part_name(text: str) -> str:
    """Arm's /proc/cpuinfo has no model name on most boards: name the core from its part number."""
    parts = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0d": "Cortex-A77", "0xd41": "Cortex-A78", "0xd42": "Cortex-A78AE", "0xd44": "Cortex-X1",
             "0xd46": "Cortex-A510", "0xd47": "Cortex-A710", "0xd48": "Cortex-X2", "0xd4d": "Cortex-A715",
             "0xd0c": "Neoverse-N1", "0xd40": "Neoverse-V1", "0xd49": "Neoverse-N2", "0xd4f": "Neoverse-V2"}
    found = re.findall(r"CPU part\s*:\s*(0x[0-9a-f]+)", text)
    return " + ".join(dict.fromkeys(parts.get(p, f"Arm part {p}") for p in found))


def _sysctl(names: list[str]) -> dict[str, str]:
    try:
        out = subprocess.run(["sysctl", *names], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()) if v}


@functools.cache
def detect() -> CpuInfo:
    """This machine's CPU, as the kernel reports it (read once)."""
    arch = _machine()
    model, flags = "", set()
    if os.path.exists("/proc/cpuinfo"):
        try:
            text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
        except OSError:
            text = ""
        model, flags = _proc_cpuinfo(text)
        if arch == "aarch64" and not model:
            model = _arm_part_name(text)
    elif platform.system() == "Darwin":
        got = _sysctl(["machdep.cpu.brand_string", *_SYSCTL])
        model = got.get("machdep.cpu.brand_string", "")
        flags = {feat for key, feat in _SYSCTL.items() if got.get(key) == "1"}
    known = set(X86 if arch == "x86_64" else ARM)
    return CpuInfo(arch, model or platform.processor() or arch, frozenset(flags & known), "detected")


def host() -> CpuInfo:
    """The CPU artifacts built here are for unless told otherwise: ``EDGEKIT_CPU_FEATURES``, else this one."""
    text = os.environ.get(ENV)
    return parse(text, ENV) if text is not None and text.strip() else detect()


def from_profile(profile: dict, name: str) -> CpuInfo | None:
    """A device profile's ``[cpu]`` table (``model``, ``arch``, ``features``), or None where it has none."""
    cpu = profile.get("cpu")
    if not cpu:
        return None
    source = f"targets/{name}.toml"
    tokens = [*([cpu["arch"]] if cpu.get("arch") else []), *cpu.get("features", [])]
    info = parse(",".join(tokens), source)
    return CpuInfo(info.arch, cpu.get("model") or info.model, info.features, source)


def for_device(name: str | None) -> CpuInfo:
    """The CPU of device profile ``name`` (``targets/NAME.toml``'s ``[cpu]``), else :func:`host`."""
    if not name:
        return host()
    from ._data import load_device_profile
    from ._errors import EdgekitError

    profile = load_device_profile(name)
    try:
        cpu = from_profile(profile, name)
    except ValueError as exc:
        raise EdgekitError(str(exc), f"fix the [cpu] table of targets/{name}.toml (docs/targets.md)") from exc
    if cpu is None:
        raise EdgekitError(f"targets/{name}.toml names no CPU, so its quantizer settings cannot be chosen",
                           f"add a [cpu] table (model, arch, features) to targets/{name}.toml")
    return cpu


def openvino_precision(cpu: CpuInfo) -> tuple[str, str]:
    """The inference precision OpenVINO's CPU plugin uses by default on ``cpu`` and the one this
    host can evaluate it in, with a note: bf16 only where the CPU has AMX or AVX512_BF16."""
    if not cpu.bf16:
        return "f32", f"OpenVINO infers in f32 on {cpu.model} (no AMX or AVX512_BF16)"
    if detect().bf16:
        return "bf16", f"OpenVINO infers in bf16 by default on {cpu.model}; measured in bf16"
    return "f32", (f"OpenVINO infers in bf16 by default on {cpu.model}, which this host cannot run; "
                   "quality and latency measured in f32")
