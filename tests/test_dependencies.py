"""The seeds' dependencies and keys: found when they hold, silent when they do not, the user's say
wins, and the judge rejects a record that breaks one, naming both fields and the seeds' value."""

from __future__ import annotations

import random

import pytest

from aod_core.agents.judge import Judge
from aod_core.agents.judge.checks import check_batch
from aod_core.data.dependencies import DependencySettings, detect, parse_spec, schema_order
from aod_core.data.schema import parse_schema
from aod_core.errors import InputError
from aod_core.records import Candidate

CODES = {"Japan": 392, "Italy": 380, "Peru": 604, "Chad": 148, "Fiji": 242, "Laos": 418}
REGION = {"Japan": "Asia", "Italy": "Europe", "Peru": "Americas", "Chad": "Africa", "Fiji": "Oceania", "Laos": "Asia"}


def _rows(n: int = 60, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    names = list(CODES)
    out = []
    for i in range(n):
        c = names[i % len(names)]
        year = 1950 + i // len(names) + 14 * (i % 2)  # ten years per country, 24 in all: room for new pairs
        out.append(
            {
                "country": c,
                "region": REGION[c],
                "code": CODES[c],
                "year": year,
                "value": round(rng.uniform(0, 100), 2),
                "noise": rng.choice(["a", "b", "c"]),
            }
        )
    return out


def test_a_dependency_that_holds_is_found_with_its_map():
    deps = detect(_rows())
    names = {d.name for d in deps.fds}
    assert "$.country -> $.code" in names and "$.country -> $.region" in names and "$.code -> $.country" in names
    assert "$.region -> $.country" not in names  # Asia has two countries
    d = deps.fd("$.country", "$.code")
    assert d.expected("Italy") == (True, 380) and d.expected("Mars") == (False, None)
    assert deps.parents["$.code"] == "$.country" and deps.parents["$.region"] == "$.country"
    assert "$.code" in deps.identifiers


def test_nothing_is_found_where_values_vary_or_repeat_too_rarely():
    rows = _rows()
    for r in rows:
        r["code"] = random.Random(r["value"]).randrange(1000)  # a code that follows nothing
    deps = detect(rows)
    assert not any(d.dependent == "$.code" or d.determinant == "$.code" for d in deps.fds)
    few = _rows(8)  # every country seen once or twice: too few repeats to tell a fact from chance
    assert detect(few).fds == []
    assert not any(d.determinant == "$.noise" for d in detect(rows).fds)


def test_a_key_is_a_combination_no_two_seeds_share_with_room_for_new_ones():
    deps = detect(_rows())
    assert ("$.country", "$.year") in deps.keys
    full = [{"site": s, "month": m, "v": s * m} for s in range(3) for m in range(12)]  # every combination taken
    assert ("$.site", "$.month") not in detect(full).keys


def test_the_users_ignore_and_add_win_and_unknown_fields_are_refused():
    rows = _rows()
    deps = detect(rows, DependencySettings(ignore=["country -> code", "(country, year)"]))
    assert deps.fd("$.country", "$.code") is None and ("$.country", "$.year") not in deps.keys
    assert "$.country -> $.code" in deps.ignored
    added = detect(rows, DependencySettings(add=["$.noise -> $.region"]))
    fd = added.fd("$.noise", "$.region")
    assert fd is not None and fd.source == "added"
    assert detect(rows, DependencySettings(mode="off")).fds == []
    with pytest.raises(InputError, match="no seed has a field \\$.nope"):
        detect(rows, DependencySettings(add=["$.nope -> $.code"]))
    with pytest.raises(InputError, match="expected 'A -> B'"):
        parse_spec("country code")
    note = detect(rows, DependencySettings(ignore=["$.value -> $.noise"])).notes
    assert note and "no such dependency" in note[0]


def test_schema_order_puts_the_schema_first():
    assert schema_order({"properties": {"b": {}, "a": {"properties": {"x": {}}}}}) == ["$.b", "$.a", "$.a.x"]


SCHEMA = parse_schema(
    {
        "type": "object",
        "properties": {
            "country": {"type": "string"},
            "region": {"type": "string"},
            "code": {"type": "integer"},
            "year": {"type": "integer"},
            "value": {"type": "number"},
            "noise": {"type": "string"},
        },
        "required": ["country", "region", "code", "year", "value", "noise"],
    },
    "<test>",
)


def test_the_judge_rejects_a_broken_dependency_naming_both_fields_and_the_seeds_value():
    seeds = _rows()
    judge = Judge(None, SCHEMA, seeds, mode="plausibility", plausibility=_Lenient())
    bad = {"country": "Japan", "region": "Asia", "code": 380, "year": 2021, "value": 5.0, "noise": "a"}
    new = {"country": "Mars", "region": "Asia", "code": 999, "year": 2021, "value": 5.0, "noise": "a"}
    good = {"country": "Japan", "region": "Asia", "code": 392, "year": 2021, "value": 5.0, "noise": "a"}
    j = judge.judge([Candidate.of(bad), Candidate.of(new), Candidate.of(good)])
    assert not j.verdicts[0].accept and j.verdicts[0].source == "checks"
    assert any(
        '$.code = 380 does not go with $.country = "Japan": the seeds give 392' in r for r in j.verdicts[0].reasons
    )
    assert j.verdicts[1].accept and j.checks[1].unchecked  # a country the seeds do not know: flagged, not rejected
    assert "could not be checked" in j.checks[1].unchecked[0]
    assert j.verdicts[2].accept
    assert any("$.code and $.country disagree" in f for f in j.facts)


def test_the_judge_rejects_a_near_copy_by_values_and_counts_reused_keys():
    seeds = _rows()
    judge = Judge(None, SCHEMA, seeds, mode="plausibility", plausibility=_Lenient())
    near = dict(seeds[0], value=seeds[0]["value"] + 0.01, noise="b")  # a seed's key, its number nudged
    reused = dict(seeds[1], value=(seeds[1]["value"] + 50) % 100)  # a seed's key, a new number
    j = judge.judge([Candidate.of(near), Candidate.of(reused)])
    assert not j.verdicts[0].accept and "near copy of a seed: the key ($.country, $.year)" in j.verdicts[0].reasons[0]
    assert j.checks[1].key_reused and not j.checks[1].near_copy
    off = Judge(None, SCHEMA, seeds, mode="plausibility", plausibility=_Lenient(), near_numbers=-1, near_copy=2.0)
    assert off.judge([Candidate.of(near)]).verdicts[0].accept


def test_check_batch_without_dependencies_is_unchanged():
    seeds = _rows()
    ch = check_batch([Candidate.of(dict(seeds[0], code=1))], SCHEMA, seeds)
    assert ch[0].passed and ch[0].dependency_errors == []


class _Lenient:
    """A plausibility model that accepts everything, so the exact checks decide alone."""

    settings = type("S", (), {"accept_share": 0.9})()

    def assess(self, records):
        from aod_core.agents.plausibility import Assessment

        return [Assessment(1.0, True, 0.0, []) for _ in records]

    def describe(self):
        return {}
