"""Shape buckets (issue 15): parsing, checks, the automatic choice, and conversion with buckets."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit._buckets import (
    check_axes,
    choose_auto,
    combos,
    key,
    padded_cost,
    parse_buckets,
)
from edgekit._errors import EdgekitError

# ---- parse and check --------------------------------------------------------------------------


def test_parse_flags_and_recipe_agree():
    flags = parse_buckets(["sequence=64,16,32,16", "width=100,200"])
    assert flags == {"sequence": [16, 32, 64], "width": [100, 200]}
    assert parse_buckets({"sequence": [64, 16, 32], "width": "100,200"}) == flags
    assert parse_buckets(["sequence=auto"]) == {"sequence": "auto"}
    assert parse_buckets({"sequence": "AUTO"}) == {"sequence": "auto"}
    assert parse_buckets(None) == {} and parse_buckets([]) == {}


@pytest.mark.parametrize("bad, said", [
    (["sequence"], "is not AXIS=SIZES"),
    (["sequence="], "is not AXIS=SIZES"),
    (["sequence=16,x"], "'x' for axis 'sequence' is not a positive whole number"),
    (["sequence=16,0"], "'0'"),
    (["sequence=16.5"], "'16.5'"),
    ({"sequence": [16, 2.5]}, "'2.5'"),
    ({"sequence": 16}, "not a list of sizes"),
    (["sequence=16", "sequence=32"], "given twice"),
])
def test_parse_refuses_with_the_form(bad, said):
    with pytest.raises(EdgekitError) as info:
        parse_buckets(bad)
    assert said in info.value.cause
    assert "AXIS=" in info.value.fix or "once" in info.value.fix


def test_check_names_the_dynamic_axes_and_the_maximum():
    with pytest.raises(EdgekitError) as info:
        check_axes({"seq": [16]}, ["batch", "sequence"])
    assert "'seq'" in info.value.cause and "['batch', 'sequence']" in info.value.fix
    with pytest.raises(EdgekitError) as info:
        check_axes({"sequence": [16, 1024]}, ["batch", "sequence"], {"sequence": 512})
    assert "sequence=1024" in info.value.cause and "512" in info.value.fix
    check_axes({"sequence": [16, 512]}, ["batch", "sequence"], {"sequence": 512})
    check_axes({"sequence": "auto"}, ["sequence"], {"sequence": 512})
    with pytest.raises(EdgekitError, match="none"):
        check_axes({"sequence": [16]}, [])


# ---- the automatic choice ------------------------------------------------------------------------


def _brute(lengths, n, top):
    """The least padded total over every choice of up to n buckets, the largest at ``top``."""
    cands = sorted({min(x, top) for x in lengths} - {top})
    best = None
    for m in range(0, n):
        for pick in itertools.combinations(cands, m):
            cost = padded_cost([min(x, top) for x in lengths], [*pick, top])
            best = cost if best is None else min(best, cost)
    return best


@pytest.mark.parametrize("seed", range(3))
def test_auto_is_the_least_padding(seed):
    rng = np.random.default_rng(seed)
    lengths = [int(x) for x in rng.lognormal(2.8, 0.5, 120).clip(3, 60)]
    for n, top in ((1, None), (3, None), (4, 48)):
        sizes = choose_auto(lengths, n, top)
        assert len(sizes) <= n and sizes == sorted(set(sizes))
        assert sizes[-1] == (top or max(lengths))
        assert padded_cost([min(x, sizes[-1]) for x in lengths], sizes) == _brute(lengths, n, top or max(lengths))


def test_auto_on_few_lengths_and_errors():
    assert choose_auto([5, 5, 9], 4) == [5, 9]
    assert choose_auto([5, 5, 9], 4, 32) == [5, 9, 32]
    assert choose_auto([200, 300], 2, 128) == [128]  # longer ones are cut to the model's size
    with pytest.raises(EdgekitError, match="no lengths"):
        choose_auto([], 4)


# ---- enumerate and name ----------------------------------------------------------------------------


def test_combos_and_key():
    assert [key(b) for b in combos({"sequence": [32, 16]})] == ["sequence_16", "sequence_32"]
    both = combos({"height": [32, 48], "width": [100, 200]})
    assert [key(b) for b in both] == ["height_32_width_100", "height_48_width_100", "height_32_width_200",
                                      "height_48_width_200"]
    assert key({"sequence": 16}) == "sequence_16"
