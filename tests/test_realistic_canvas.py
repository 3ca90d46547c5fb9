"""The embedded generator's realistic canvas: learned vocabularies, word pieces, coarse-to-fine numbers."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from aod_core.canvas.constraints import CanvasConstraint
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.textpieces import train_pieces
from aod_core.canvas.values import CanvasOptions, string_mode
from aod_core.data.schema import parse_schema
from aod_core.errors import InputError
from aod_core.generators import EmbeddedConfig, load_generator

ASSETS = Path(__file__).resolve().parent.parent / "assets"
REAL = CanvasOptions.realistic()

STATES = ["WA", "OR", "CA", "NV", "ID", "TX"]
NAMES = [
    "Chico Municipal",
    "Benson Municipal",
    "Greenwood County",
    "Oneida County",
    "Lake County Regional",
    "Wood County",
    "Somerset Municipal",
    "Enterprise Regional",
    "Portland International",
    "Jackson Field",
]
SCHEMA = parse_schema(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "state": {"type": "string", "pattern": "^[A-Z]{2}$"},
            "code": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "mass": {"type": "integer", "minimum": 0, "maximum": 9999},
        },
        "required": ["name", "state", "code", "mass"],
    }
)


def seeds(n=60, seed=0):
    rng = random.Random(seed)
    return [
        {
            "name": f"{rng.choice(NAMES)}",
            "state": rng.choice(STATES),
            "code": "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)),
            "mass": rng.randint(1000, 8000),
        }
        for _ in range(n)
    ]


def slot(sc, path, kind=None):
    return next(s for s in sc.slots if s.path == path and (kind is None or s.kind == kind))


# ---- vocabularies ----------------------------------------------------------------------------


def test_string_mode_detects_repeating_fields():
    assert string_mode(["WA", "OR", "WA", "CA", "OR", "WA", "CA", "WA"]) == "vocabulary"
    assert string_mode([f"name {i}" for i in range(20)]) == "text"
    assert string_mode(["a", "a", "b"]) == "text"  # too few values to tell


def test_a_repeating_field_becomes_a_choice_an_open_one_does_not_and_overrides_win():
    data = seeds()
    sc = Scaffold.build(SCHEMA.resolved, data, REAL)
    state = slot(sc, "$.state")
    assert state.kind == "choice" and state.role == "enum" and state.mode == "vocabulary"
    assert set(state.choices) == set(STATES)
    code = slot(sc, "$.code")
    assert code.kind == "value" and code.pieces is None  # unique codes with a pattern: letters
    assert slot(sc, "$.name").kind == "choice"  # 10 names over 60 seeds repeat: a vocabulary too
    over = Scaffold.build(
        SCHEMA.resolved, data, CanvasOptions.realistic(string_modes={"$.name": "text", "$.state": "chars"})
    )
    assert slot(over, "$.name").kind == "value" and slot(over, "$.name").pieces is not None
    assert slot(over, "$.state").kind == "value" and slot(over, "$.state").pieces is None
    plain = Scaffold.build(SCHEMA.resolved, data)  # the plain canvas (hf:, other generators)
    assert slot(plain, "$.state").kind == "value"
    with pytest.raises(InputError, match="string mode"):
        Scaffold.build(SCHEMA.resolved, data, CanvasOptions.realistic(string_modes={"$.state": "letters"}))


def test_an_open_ended_vocabulary_also_writes_new_values():
    rng = random.Random(1)
    common = ["Springfield", "Riverside", "Franklin", "Greenville", "Bristol"]
    data = [
        {
            "name": "x",
            "state": "WA",
            "code": "ABC",
            "mass": 1000,
            "city": rng.choice(common) if i % 3 else f"Newtown {i}",
        }
        for i in range(60)
    ]
    schema = parse_schema({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    only = [{"city": d["city"]} for d in data]
    sc = Scaffold.build(schema.resolved, only, REAL)
    variant = next(s for s in sc.slots if s.role == "variant")
    seen = slot(sc, "$.city", "choice")
    assert seen.new_variant == variant.start and set(seen.choices) == set(common)
    assert slot(sc, "$.city", "value").pieces is not None
    assert all(sc.decode(sc.encode(r)) == r for r in only)  # seen values and new ones both round-trip
    # a pin of a seen value, and of a new one, both hold
    for pin in ("Franklin", "Newtown 7"):
        c = CanvasConstraint(sc, Prompt(pins={"$.city": pin}))
        assert c.pins[variant.start] == [variant.tokens[variant.choices.index(0 if pin == "Franklin" else 1)]]


# ---- word pieces -----------------------------------------------------------------------------


def test_trained_pieces_round_trip_every_seed_value():
    values = [json.loads(x)["name"] for x in (ASSETS / "airports" / "seeds.jsonl").read_text().splitlines()]
    pieces = train_pieces(values, 300)
    assert 50 < len(pieces.pieces) <= 300 and all(len(p) > 1 for p in pieces.pieces)
    assert all("".join(pieces.split(v)) == v for v in values)
    assert " Municipal" in pieces.pieces  # a word with its leading space is one piece
    assert pieces.split("Zq9 ü") == list("Zq9 ü") or "".join(pieces.split("Zq9 ü")) == "Zq9 ü"


def test_piece_slots_are_shorter_and_round_trip():
    schema = parse_schema({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})
    data = [
        {"name": n}
        for n in [
            f"{a} {b}"
            for a in ("Lake", "Wood", "Bay", "Pine", "Elm", "Oak", "Red", "Fox")
            for b in ("County", "Municipal", "Regional", "Field")
        ]
    ]
    plain = Scaffold.build(schema.resolved, data)
    sc = Scaffold.build(schema.resolved, data, REAL)
    s = slot(sc, "$.name")
    assert s.pieces is not None and s.width < slot(plain, "$.name").width and s.max_chars == 14
    assert all(sc.decode(sc.encode(r)) == r for r in data)
    assert "▦" in sc.skeleton() and "word pieces" in sc.describe()[0]["constraint"]


# ---- coarse-to-fine numbers ------------------------------------------------------------------


def test_number_bins_partition_the_range_and_round_trip():
    data = seeds(200)
    sc = Scaffold.build(SCHEMA.resolved, data, REAL)
    mass = slot(sc, "$.mass")
    assert mass.bins and 16 <= len(mass.bins) <= 34
    assert mass.bins[0][0] == 0 and mass.bins[-1][1] == 9999  # the whole schema range, seeds' quantiles inside
    # the schema's range beyond the seeds' is a bin of its own on each side, holding no seed, its
    # inner edge a round number just past the seeds' extreme
    masses = [r["mass"] for r in data]
    assert (
        min(masses) - 100 <= mass.bins[0][1] <= min(masses) and max(masses) + 1 <= mass.bins[-1][0] <= max(masses) + 100
    )
    assert mass.bins[0][1] % 10 == 0 and mass.bins[-1][0] % 10 == 0
    assert all(a[1] == b[0] for a, b in zip(mass.bins, mass.bins[1:]))
    assert all(sc.decode(sc.encode(r)) == r for r in data)
    assert "bins at the seeds' quantiles" in next(r["constraint"] for r in sc.describe() if r["path"] == "$.mass")
    # the language after each mark holds exactly that bin's numbers
    from aod_core.canvas.automaton import compile_fsm

    fsm = compile_fsm(mass.regex, mass.extra)
    lo, hi, mark = mass.bins[1]
    assert fsm.accepts(mark + str(lo)) and fsm.accepts(mark + str(hi - 1)) and not fsm.accepts(mark + str(hi))
    assert not fsm.accepts(mass.bins[0][2] + str(hi))


@pytest.mark.slow
def test_embedded_generator_on_the_realistic_canvas_keeps_every_edit(tmp_path):
    data = seeds(120)
    cfg = {"d_model": 32, "n_layers": 1, "n_heads": 2, "train_steps": 80}
    gen = load_generator("embedded", SCHEMA, data, options=cfg, cache_dir=tmp_path)
    prompt = Prompt(pins={"$.state": "OR"}, forbid={"$.mass": [5000]}, ranges={"$.mass": [2000, 3000]})
    recs = [c.record for c in gen.sample(prompt, 40, seed=1)]
    assert all(SCHEMA.is_valid(r) for r in recs)
    assert {r["state"] for r in recs} == {"OR"} and all(2000 <= r["mass"] <= 3000 for r in recs)
    free = [c.record for c in gen.sample(Prompt(), 40, seed=2)]
    assert all(SCHEMA.is_valid(r) for r in free) and {r["state"] for r in free} <= set(STATES)


@pytest.mark.slow
def test_a_fitted_model_writes_words_from_its_vocabulary(tmp_path):
    words = ["Lake", "Wood", "Bay", "Pine", "Elm", "Oak", "Red", "Fox", "Stone", "Mill"]
    kinds = ["County", "Municipal", "Regional", "Field", "Memorial"]
    schema = parse_schema(
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "n": {"type": "integer", "minimum": 0, "maximum": 100}},
            "required": ["name", "n"],
        }
    )
    data = [{"name": f"{a} {b}", "n": i % 50} for i, (a, b) in enumerate((a, b) for a in words for b in kinds)] * 2
    gen = load_generator(
        "embedded",
        schema,
        data,
        options={"d_model": 48, "n_layers": 2, "n_heads": 2, "train_steps": 300},
        cache_dir=tmp_path,
    )
    recs = [c.record for c in gen.sample(Prompt(), 60, seed=0)]
    vocab = {w.lower() for w in words + kinds}
    got = [w.lower() for r in recs for w in re.findall(r"[A-Za-z]+", r["name"])]
    assert got and sum(w in vocab for w in got) / len(got) >= 0.8


def test_the_cache_key_changes_with_the_canvas_settings(tmp_path):
    data = seeds(30)
    keys = set()
    for opts in (
        {},
        {"text_pieces": 200},
        {"number_bins": 0},
        {"strings": "chars"},
        {"string_modes": {"$.state": "text"}},
    ):
        gen = load_generator("embedded", SCHEMA, data, options=opts, cache_dir=tmp_path)
        keys.add(gen.cache_key())
    assert len(keys) == 5
    with pytest.raises(InputError, match="strings must be auto or chars"):
        EmbeddedConfig(strings="letters").canvas_options()


@pytest.mark.parametrize(
    "opts, words",
    [
        ({"strings": "bogus"}, "strings must be auto or chars"),
        ({"string_modes": {"$.name": "poetry"}}, "string mode for $.name"),
        ({"string_modes": "$.name"}, "string_modes must be a JSON object"),
        ({"text_pieces": -1}, "must be a whole number >= 0"),
        ({"number_bins": 1}, "number_bins must be 0"),
        ({"number_bins": 63}, "2 to 62"),
        ({"train_steps": 0}, "train_steps must be a whole number"),
    ],
)
def test_bad_canvas_settings_are_refused_before_loading(opts, words):
    from aod_core.errors import InputError
    from aod_core.generators import check_options

    with pytest.raises(InputError, match=re.escape(words)):
        check_options("embedded", opts)
    check_options("embedded", {"strings": "chars", "text_pieces": 0, "number_bins": 0})


def test_a_large_bin_count_stays_within_one_slots_block_of_marks():
    data = seeds(600)
    sc = Scaffold.build(SCHEMA.resolved, data, CanvasOptions.realistic(number_bins=500))
    mass = slot(sc, "$.mass")
    assert mass.bins and len(mass.bins) <= 64 and len({m for _lo, _hi, m in mass.bins}) == len(mass.bins)
    assert all(sc.decode(sc.encode(r)) == r for r in data)
