"""Shape buckets (``--shape-buckets sequence=16,32,64,128``): parse, check, choose, enumerate.

A bucket is one size per bucketed axis; a static-shape target gets one signature per bucket,
and a runtime pads a real input up to the smallest bucket that fits it. ``auto`` chooses the
sizes from the lengths of ``--data``, minimising the expected padded tokens.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterable

from ._errors import EdgekitError

AUTO = "auto"
_FORM = "give AXIS=SIZE,SIZE,... (e.g. --shape-buckets sequence=16,32,64,128), AXIS=auto or AXIS=auto:N"


def parse_buckets(spec: list[str] | tuple[str, ...] | dict | str | None) -> dict[str, list[int] | str]:
    """``["sequence=16,32"]`` or ``{"sequence": [16, 32]}`` (``"auto"`` for sizes chosen from the
    data) -> axis -> ascending distinct sizes, or ``"auto"``. None or empty: ``{}``."""
    if not spec:
        return {}
    if isinstance(spec, str):
        spec = [spec]
    items: list[tuple[str, object]] = []
    if isinstance(spec, dict):
        items = list(spec.items())
    else:
        for text in spec:
            axis, eq, sizes = str(text).partition("=")
            if not eq or not axis.strip() or not sizes.strip():
                raise EdgekitError(f"--shape-buckets {text!r} is not AXIS=SIZES", _FORM)
            items.append((axis.strip(), sizes.strip()))
    out: dict[str, list[int] | str] = {}
    for axis, sizes in items:
        if axis in out:
            raise EdgekitError(f"shape buckets for axis {axis!r} are given twice", "give each axis once")
        out[axis] = _sizes(axis, sizes)
    return out


def is_auto(sizes: object) -> bool:
    """``"auto"`` or ``"auto:N"``: sizes to choose from the data."""
    return isinstance(sizes, str) and sizes.split(":")[0] == AUTO


def auto_count(sizes: object, default: int = 4) -> int:
    """How many buckets ``"auto:N"`` asks for (``"auto"``: ``default``)."""
    return int(sizes.split(":")[1]) if isinstance(sizes, str) and ":" in sizes else default


def _sizes(axis: str, sizes: object) -> list[int] | str:
    if isinstance(sizes, str) and sizes.strip().lower().split(":")[0] == AUTO:
        _, colon, n = sizes.strip().lower().partition(":")
        if colon and not (n.isdigit() and 1 <= int(n) <= 32):
            raise EdgekitError(f"shape buckets {axis}={sizes} asks for {n!r} buckets", "give auto:N with N from 1 to 32")
        return f"{AUTO}:{int(n)}" if colon else AUTO
    parts = sizes.split(",") if isinstance(sizes, str) else sizes
    if not isinstance(parts, list | tuple) or not parts:
        raise EdgekitError(f"shape buckets for {axis!r} are {sizes!r}, not a list of sizes", _FORM)
    values = []
    for p in parts:
        text = str(p).strip()
        if isinstance(p, bool) or isinstance(p, float) or not text.isdigit() or int(text) < 1:
            raise EdgekitError(f"shape bucket {text!r} for axis {axis!r} is not a positive whole number", _FORM)
        values.append(int(text))
    return sorted(set(values))


def check_axes(buckets: dict, dynamic_axes: Iterable[str], max_sizes: dict[str, int] | None = None) -> None:
    """Each bucketed axis is a named dynamic axis of the source; no bucket is larger than the
    axis's declared maximum (``max_sizes``, e.g. the positions a text model has)."""
    dynamic = list(dict.fromkeys(dynamic_axes))
    for axis, sizes in buckets.items():
        if axis not in dynamic:
            raise EdgekitError(f"shape buckets for {axis!r}, which is not a dynamic axis of the model",
                               f"its dynamic axes are {dynamic or 'none (every shape is static)'}")
        top = (max_sizes or {}).get(axis)
        if top is not None and not is_auto(sizes) and max(sizes) > top:
            raise EdgekitError(f"shape bucket {axis}={max(sizes)} is larger than the model allows ({axis} <= {top})",
                               f"keep the buckets of {axis!r} at {top} or below")


def choose_auto(lengths: Iterable[int], n: int = 4, max_len: int | None = None) -> list[int]:
    """``n`` bucket sizes minimising the expected padded size of ``lengths`` (each padded to the
    smallest bucket >= it). The largest bucket is ``max_len`` where given (longer lengths are cut
    to it), else the longest length. Exact, by dynamic programming over the distinct lengths."""
    lengths = [int(x) for x in lengths]
    if not lengths:
        raise EdgekitError("shape buckets 'auto' found no lengths in the data", "give --data with samples in it")
    if n < 1:
        raise EdgekitError(f"shape buckets 'auto' asked for {n} buckets", "ask for at least one")
    top = int(max_len) if max_len else max(lengths)
    counts = Counter(min(max(x, 1), top) for x in lengths)
    sizes = sorted(counts)
    if sizes[-1] != top:
        sizes.append(top)  # the largest bucket covers every longer input at run time
    k = len(sizes)
    before = [0]  # before[i]: how many lengths are < sizes[i]
    for s in sizes:
        before.append(before[-1] + counts.get(s, 0))
    inf = float("inf")
    # cost[j][i]: least padded total of lengths <= sizes[i] with j+1 buckets, the last at sizes[i]
    cost = [[inf] * k for _ in range(n)]
    back = [[-1] * k for _ in range(n)]
    for i in range(k):
        cost[0][i] = sizes[i] * before[i + 1]
    for j in range(1, n):
        for i in range(k):
            for p in range(i):
                c = cost[j - 1][p] + sizes[i] * (before[i + 1] - before[p + 1])
                if c < cost[j][i]:
                    cost[j][i], back[j][i] = c, p
    j = min(range(n), key=lambda m: (cost[m][k - 1], m))
    chosen, i = [], k - 1
    while i >= 0 and j >= 0:
        chosen.append(sizes[i])
        i, j = back[j][i], j - 1
    return sorted(chosen)


def padded_cost(lengths: Iterable[int], sizes: list[int]) -> int:
    """Total padded size of ``lengths`` over the buckets ``sizes`` (the largest where none fits)."""
    return sum(next((s for s in sizes if s >= x), sizes[-1]) for x in lengths)


def combos(axes: dict[str, list[int]]) -> list[dict[str, int]]:
    """Every bucket, as axis -> size, smallest first (by the product of its sizes)."""
    names = list(axes)
    every = [dict(zip(names, sizes, strict=True)) for sizes in itertools.product(*(axes[a] for a in names))]
    return sorted(every, key=lambda d: (_volume(d), [d[a] for a in names]))


def _volume(dims: dict[str, int]) -> int:
    v = 1
    for s in dims.values():
        v *= s
    return v


def key(dims: dict[str, int]) -> str:
    """A bucket's name: ``sequence_16``, ``height_32_width_100`` (the axes in the order given)."""
    return "_".join(f"{a}_{s}" for a, s in dims.items())

