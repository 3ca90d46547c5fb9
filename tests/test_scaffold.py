import copy

import pytest

from aod_core.canvas.automaton import compile_fsm
from aod_core.canvas.nodes import DecodeError
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import ABSENT, END, MASK, NULL
from aod_core.data.schema import parse_schema
from aod_core.errors import InputError

SCHEMA = {
    "type": "object",
    "properties": {
        "kind": {"const": "survey"},
        "site": {"type": "string", "pattern": "^[A-Z]", "maxLength": 20},
        "day": {"type": "string", "format": "date"},
        "ok": {"type": "boolean"},  # optional, but every seed has it
        "mood": {"enum": ["calm", "windy", None]},
        "temp": {"type": ["number", "null"], "minimum": -10, "maximum": 40},
        "count": {"type": "integer", "minimum": 0, "maximum": 500},
        "note": {"type": "string"},  # optional, some seeds omit it
        "ghost": {"type": "integer"},  # optional, no seed has it
        "extra": {},  # no type
        "where": {
            "type": "object",
            "properties": {
                "lat": {"type": "number", "minimum": -90, "maximum": 90},
                "lon": {"type": "number", "minimum": -180, "maximum": 180},
            },
            "required": ["lat", "lon"],
        },
        "pair": {
            "type": "array",
            "minItems": 2,
            "maxItems": 2,
            "items": {"type": "integer", "minimum": 0, "maximum": 9},
        },
        "birds": {
            "type": "array",
            "minItems": 1,
            "maxItems": 6,
            "items": {
                "type": "object",
                "properties": {
                    "species": {"enum": ["Adelie", "Gentoo"]},
                    "n": {"type": "integer", "minimum": 1, "maximum": 99},
                    "ring": {"type": "string"},
                },
                "required": ["species", "n"],
            },
        },
    },
    "required": ["kind", "site", "day", "mood", "temp", "count", "extra", "where", "pair", "birds"],
}
SEEDS = [
    {
        "kind": "survey",
        "site": "Dream",
        "day": "2012-02-29",
        "ok": True,
        "mood": "calm",
        "temp": 12.5,
        "count": 3,
        "extra": "abc",
        "where": {"lat": -64.7, "lon": -64.05},
        "pair": [1, 2],
        "birds": [{"species": "Adelie", "n": 3, "ring": "R1"}],
    },
    {
        "kind": "survey",
        "site": "Biscoe Point",
        "day": "2013-12-31",
        "ok": False,
        "mood": None,
        "temp": None,
        "count": 250,
        "note": "windy day",
        "extra": "de",
        "where": {"lat": -65.4, "lon": -65.5},
        "pair": [0, 9],
        "birds": [
            {"species": "Gentoo", "n": 12},
            {"species": "Adelie", "n": 1, "ring": "R22"},
            {"species": "Gentoo", "n": 99},
        ],
    },
    {
        "kind": "survey",
        "site": "X",
        "day": "2000-01-01",
        "ok": True,
        "mood": "windy",
        "temp": -9.9,
        "count": 0,
        "note": "calm",
        "extra": "f",
        "where": {"lat": 0.0, "lon": 180.0},
        "pair": [5, 5],
        "birds": [{"species": "Gentoo", "n": 7}, {"species": "Adelie", "n": 50}],
    },
]
LOADED = parse_schema(SCHEMA)


@pytest.fixture(scope="module")
def sc() -> Scaffold:
    for s in SEEDS:
        assert LOADED.validate(s) == []
    return Scaffold.build(LOADED.resolved, SEEDS)


def slot(sc: Scaffold, path: str):
    (s,) = [s for s in sc.slots if s.path == path]
    return s


# ---- layout -----------------------------------------------------------------------------------


def test_slots_are_contiguous_and_cover_the_canvas(sc):
    pos = 0
    for s in sc.slots:
        assert s.start == pos and s.width >= 1
        pos += s.width
    assert sc.length == pos


def test_kinds_and_choices(sc):
    assert slot(sc, "$.ok").kind == "choice" and slot(sc, "$.ok").choices == [True, False]
    mood = slot(sc, "$.mood")
    assert mood.role == "enum" and mood.choices == ["calm", "windy", None]
    temp = slot(sc, "$.temp")
    assert (temp.kind, temp.vtype, temp.nullable, temp.decimals) == ("value", "number", True, 1)
    count = slot(sc, "$.count")
    assert (count.vtype, count.nullable, count.decimals) == ("integer", False, 0)
    day = slot(sc, "$.day")
    assert day.vtype == "date" and day.width == 10
    site = slot(sc, "$.site")
    assert site.vtype == "string" and len(site.extra) == 1
    fsm = compile_fsm(site.extra[0])  # the pattern ^[A-Z] as a full-match language
    assert fsm.accepts("Abc") and not fsm.accepts("abc")
    # nested object fields are addressed through their parent
    assert slot(sc, "$.where.lat").vtype == "number" and slot(sc, "$.where.lon").decimals == 2
    # const has no slot
    assert not [s for s in sc.slots if "kind" in s.path]


def test_array_count_slot_uses_lengths_seen_in_seeds(sc):
    # minItems 1, maxItems 6, but seeds hold at most 3 birds
    count = slot(sc, "$.birds.length")
    assert count.role == "count" and count.choices == [1, 2, 3]
    assert {s.path for s in sc.slots if s.key == "$.birds[*].species"} == {f"$.birds[{i}].species" for i in range(3)}
    # items up to minItems are ungated, the rest are gated by the count
    assert slot(sc, "$.birds[0].species").gate is None
    for i in (1, 2):
        s = slot(sc, f"$.birds[{i}].species")
        assert s.gate == count.start
        assert {sc.vocab.choice_value[t] for t in s.gate_tokens} == {c for c in count.choices if c > i}
    # a fixed-length array has no count slot
    assert not [s for s in sc.slots if s.path == "$.pair.length"]
    assert [s.path for s in sc.slots if s.path.startswith("$.pair")] == ["$.pair[0]", "$.pair[1]"]


def test_array_count_from_zero_and_capped_by_max_items():
    schema = {"type": "object", "properties": {"xs": {"type": "array", "maxItems": 2, "items": {"type": "integer"}}}}
    sc = Scaffold.build(schema, [{"xs": []}, {"xs": [1, 2]}])
    assert slot(sc, "$.xs.length").choices == [0, 1, 2]
    assert slot(sc, "$.xs[0]").gate == slot(sc, "$.xs.length").start


def test_optional_properties(sc):
    paths = {s.path for s in sc.slots}
    # present in every seed: no presence slot; present in some: a presence slot gating the value
    assert "$.ok?" not in paths
    presence = slot(sc, "$.note?")
    assert presence.role == "present" and presence.choices == [True, False]
    note = slot(sc, "$.note")
    assert note.gate == presence.start
    assert {sc.vocab.choice_value[t] for t in note.gate_tokens} == {True}
    # absent from every seed: never generated, with a note
    assert not [p for p in paths if "ghost" in p]
    assert any("$.ghost" in n and "never generated" in n for n in sc.notes)
    # optional inside array items: gated by presence, presence gated by the count beyond minItems
    ring1 = slot(sc, "$.birds[1].ring?")
    assert ring1.gate == slot(sc, "$.birds.length").start
    assert slot(sc, "$.birds[1].ring").gate == ring1.start


def test_no_type_property_is_inferred_with_a_note(sc):
    extra = slot(sc, "$.extra")
    assert extra.vtype == "string"
    assert any(n.startswith("$.extra: no type") for n in sc.notes)


def test_widths(sc):
    assert slot(sc, "$.site").width == len("Biscoe Point")  # longest seed, below maxLength
    assert slot(sc, "$.note").width == len("windy day")
    assert slot(sc, "$.extra").width == 3
    assert slot(sc, "$.temp").width == len("-10.0")  # from minimum/maximum, not the seeds
    assert slot(sc, "$.count").width == len("500")
    assert slot(sc, "$.where.lon").width == len("-180.00")
    assert slot(sc, "$.birds[0].n").width == 2
    assert slot(sc, "$.pair[0]").width == 1


def test_width_of_an_all_null_string_comes_from_min_length():
    schema = {"type": "object", "properties": {"code": {"type": ["string", "null"], "minLength": 4, "maxLength": 6}}}
    sc = Scaffold.build(schema, [{"code": None}])
    assert slot(sc, "$.code").width == 4


def test_open_number_range_is_closed_one_digit_past_the_seeds():
    schema = {"type": "object", "properties": {"x": {"type": "integer", "minimum": 1}, "y": {"type": "number"}}}
    sc = Scaffold.build(schema, [{"x": 7, "y": -3.25}, {"x": 42, "y": 1.5}])
    x, y = slot(sc, "$.x"), slot(sc, "$.y")
    assert (x.lo, x.hi, x.width) == (1, 999, 3)
    assert (y.lo, y.hi, y.decimals, y.width) == (-99.99, 99.99, 2, len("-99.99"))


def test_open_range_above_seed_magnitudes_builds():
    schema = {"type": "object", "properties": {"x": {"type": ["integer", "null"], "minimum": 1000}}}
    sc = Scaffold.build(schema, [{"x": None}])
    x = slot(sc, "$.x")
    assert x.lo == 1000 and x.hi >= 1000


def test_only_constants_is_an_input_error():
    with pytest.raises(InputError, match="nothing to generate"):
        Scaffold.build({"type": "object", "properties": {"a": {"const": 1}}}, [{"a": 1}])


def test_vocab(sc):
    v = sc.vocab
    assert v.tokens[:4] == ["<mask>", "<end>", "<null>", "<absent>"]
    assert (MASK, END, NULL, ABSENT) == (0, 1, 2, 3)
    for ch in "0123456789-.DBXR":
        assert ch in v.char_ids
    # choice tokens are shared by every item of an array (keyed by [*])
    s0, s2 = slot(sc, "$.birds[0].species"), slot(sc, "$.birds[2].species")
    assert s0.tokens == s2.tokens and len(set(s0.tokens)) == 2
    assert len(set(v.tokens)) == len(v)


# ---- canvas <-> records -----------------------------------------------------------------------


def test_encode_decode_round_trip_on_custom_schema(sc):
    for record in SEEDS:
        tokens = sc.encode(record)
        assert len(tokens) == sc.length and MASK not in tokens
        assert sc.decode(tokens) == record


def test_encode_marks_switched_off_positions_absent(sc):
    tokens = sc.encode(SEEDS[0])  # one bird, no note
    assert tokens[slot(sc, "$.birds.length").start] == sc.vocab.choice_ids[("$.birds.length", "1")]
    for s in sc.slots:
        if s.path.startswith(("$.birds[1]", "$.birds[2]", "$.note")) and s.path != "$.note?":
            assert all(tokens[p] == ABSENT for p in s.positions), s.path
    assert tokens[slot(sc, "$.note?").start] == sc.vocab.choice_ids[("$.note?", "false")]
    temp = sc.encode(SEEDS[1])[slot(sc, "$.temp").start :][:5]
    assert temp == [NULL] + [END] * 4


def test_round_trip_on_demo_datasets(demo_dataset):
    ds = demo_dataset
    sc = Scaffold.build(ds.schema.resolved, ds.seeds.records)
    for record in ds.seeds.records + ds.holdout.records:
        assert sc.decode(sc.encode(record)) == record
    assert sc.render_text(sc.encode(ds.seeds.records[0]))[0] == "{"


def test_skeleton_shows_structure(sc):
    text = sc.skeleton()
    assert text.startswith('{"kind": "survey", "site": "' + "▮" * 12 + '"')
    assert '"day": "' + "▮" * 10 + '"' in text
    assert '"ok": ⟨true|false⟩' in text
    assert '"mood": ⟨"calm"|"windy"|null⟩' in text
    assert '"temp": ▮▮▮▮▮,' in text  # numbers unquoted
    assert '"note"?: "' in text and "ghost" not in text
    assert '"where": {"lat": ▮▮▮▮▮, "lon": ▮▮▮▮▮▮▮}' in text
    assert '"pair": [▮, ▮]' in text
    assert '"birds": [⟨len 1..3⟩{"species": ⟨"Adelie"|"Gentoo"⟩' in text
    assert text.count('"ring"?') == 3


def test_describe_rows(sc):
    rows = {r["path"]: r for r in sc.describe()}
    assert len(rows) == len(sc.slots)
    assert rows["$.temp"] == {
        "path": "$.temp",
        "kind": "number",
        "positions": f"{slot(sc, '$.temp').start}..{slot(sc, '$.temp').start + 4}",
        "width": 5,
        "nullable": True,
        "constraint": "number in [-10.0, 40.0], 1 decimals",
        "gated_by": None,
    }
    assert rows["$.mood"]["nullable"] is True and rows["$.mood"]["kind"] == "enum"
    assert rows["$.ok"]["nullable"] is False
    assert rows["$.birds.length"]["kind"] == "count" and rows["$.birds.length"]["constraint"] == "1 | 2 | 3"
    assert rows["$.birds[2].n"]["gated_by"] == "$.birds.length"
    assert rows["$.birds[2].ring"]["gated_by"] == "$.birds[2].ring?"
    assert rows["$.note"]["gated_by"] == "$.note?"
    assert rows["$.day"]["constraint"] == "date YYYY-MM-DD"
    assert "pattern" in rows["$.site"]["constraint"]


def test_slots_for(sc):
    assert [s.path for s in sc.slots_for("$.birds[1].species")] == ["$.birds[1].species"]
    assert [s.path for s in sc.slots_for("$.birds[*].n")] == [f"$.birds[{i}].n" for i in range(3)]
    assert [s.path for s in sc.slots_for("$.where.lat")] == ["$.where.lat"]
    assert [s.path for s in sc.slots_for("$.mood")] == ["$.mood"]
    for bad in ("$.nope", "$.birds[7].n", "$.where", "mood"):
        with pytest.raises(InputError) as info:
            sc.slots_for(bad)
        msg = str(info.value)
        assert repr(bad) in msg and "$.birds[*].species" in msg and "\n" not in msg


# ---- decode errors ----------------------------------------------------------------------------


def _with(sc, record, path, syms):
    tokens = sc.encode(record)
    s = slot(sc, path)
    tokens[s.start : s.start + len(syms)] = syms
    return tokens


def test_decode_rejects_character_after_end(sc):
    c = sc.vocab.char_ids
    tokens = _with(sc, SEEDS[0], "$.count", [c["1"], END, c["2"]])
    with pytest.raises(DecodeError, match=r"\$\.count"):
        sc.decode(tokens)


def test_decode_rejects_null_in_non_nullable_slot(sc):
    with pytest.raises(DecodeError, match="null"):
        sc.decode(_with(sc, SEEDS[0], "$.count", [NULL, END, END]))
    # but the nullable one decodes to None
    assert sc.decode(_with(sc, SEEDS[0], "$.temp", [NULL, END, END, END, END]))["temp"] is None


def test_decode_rejects_null_followed_by_a_value(sc):
    c = sc.vocab.char_ids
    with pytest.raises(DecodeError):
        sc.decode(_with(sc, SEEDS[0], "$.temp", [NULL, c["1"], END, END, END]))


def test_decode_rejects_non_values(sc):
    c = sc.vocab.char_ids
    for path, syms in [
        ("$.count", [END, END, END]),  # empty integer
        ("$.count", [c["-"], END, END]),
        ("$.temp", [c["1"], c["."], c["."], END, END]),
        ("$.count", [ABSENT, ABSENT, ABSENT]),
        ("$.count", [sc.vocab.choice_ids[("$.ok", "true")], END, END]),
    ]:
        with pytest.raises(DecodeError):
            sc.decode(_with(sc, SEEDS[0], path, syms))


def test_decode_rejects_wrong_choice_token_and_masks(sc):
    with pytest.raises(DecodeError, match=r"\$\.mood"):
        sc.decode(_with(sc, SEEDS[0], "$.mood", [sc.vocab.char_ids["1"]]))
    with pytest.raises(DecodeError, match="masked"):
        sc.decode(_with(sc, SEEDS[0], "$.mood", [MASK]))


def test_decode_ignores_switched_off_positions(sc):
    record = copy.deepcopy(SEEDS[1])  # three birds
    tokens = sc.encode(record)
    tokens[slot(sc, "$.birds.length").start] = sc.vocab.choice_ids[("$.birds.length", "2")]
    assert sc.decode(tokens)["birds"] == record["birds"][:2]
