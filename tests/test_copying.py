"""Copying figures on hand-built records whose answers are known: distances on a line, the real
reference from a holdout or from the seeds out of fold, and near copies by values."""

from __future__ import annotations

import pytest

from aod_core.data.dependencies import detect
from aod_core.eval.copying import ValueNearCopies, copying, reference_distances

SEEDS = [{"x": x} for x in range(0, 101, 10)]  # one number on [0, 100]: distance = |dx| / 100
HOLDOUT = [{"x": x} for x in range(5, 100, 10)]  # every real record 0.05 from its closest seed


def test_distances_against_a_holdout_have_the_known_answers():
    ref, source = reference_distances(SEEDS, HOLDOUT)
    assert source == "holdout" and ref == pytest.approx([0.05] * 10)
    records = [{"x": 0}, {"x": 2}, {"x": 4}, {"x": 5}, {"x": 50}, {"x": 51}]  # 0, .02, .04, .05, 0, .01
    fig = copying(records, SEEDS, HOLDOUT)
    assert fig["closer_than_reference_p05"] == pytest.approx(5 / 6)  # all but x=5 are closer than 0.05
    assert fig["dcr_median"] == pytest.approx(0.015) and fig["reference_dcr_median"] == pytest.approx(0.05)
    assert fig["dcr_median_ratio"] == pytest.approx(0.3)
    assert fig["near_copies_by_values"] == pytest.approx(0.5)  # 0, 50 and 51: within 1% of the range (1.0)
    assert copying(HOLDOUT, SEEDS, HOLDOUT)["closer_than_reference_p05"] == 0.0


def test_without_a_holdout_each_seed_is_measured_against_the_other_seeds():
    ref, source = reference_distances(SEEDS)
    assert source == "seeds out of fold" and ref == pytest.approx([0.1] * 11)
    assert copying([{"x": 0}], SEEDS)["dcr_median_ratio"] == 0.0


def test_near_copies_by_values_share_the_key_or_every_value_that_is_not_a_number():
    # every other (site, day): half the combinations taken, room for new ones
    seeds = [
        {"site": s, "day": d, "v": float(s * 10 + d)}
        for s in range(8)
        for d in range(0, 80, 4)
        if (s + d // 4) % 2 == 0
    ]
    deps = detect(seeds)
    assert ("$.site", "$.day") in deps.keys
    near = ValueNearCopies(seeds, deps, 0.01)  # v spans 0..146: within 1.46
    i = seeds.index({"site": 3, "day": 4, "v": 34.0})
    assert near.find({"site": 3, "day": 4, "v": 34.5}) == (i, "the key ($.site, $.day)")
    assert near.find({"site": 3, "day": 4, "v": 40.0}) is None  # its key, another number
    assert near.find({"site": 3, "day": 8, "v": 34.0}) is None  # a new key
    plain = ValueNearCopies([{"kind": "a", "v": 1.0}, {"kind": "b", "v": 50.0}], tolerance=0.05)
    assert plain.find({"kind": "a", "v": 3.0}) == (0, "every value that is not a number")
    assert plain.find({"kind": "b", "v": 3.0}) is None
    assert ValueNearCopies(seeds, deps, -1).find(seeds[0]) is None  # negative: off
