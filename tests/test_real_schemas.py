"""Schemas as people write them: every draft, the common keywords, extreme numbers, budgets.

Records are sampled on the scaffold with random logits (no fitted model): whatever the weights,
every record must validate against the schema, because the scaffold enforces the keywords.
"""

import json
import subprocess
import sys

import pytest
import torch

from aod_core.canvas import automaton
from aod_core.canvas import layout as scaffold_mod
from aod_core.canvas.constraints import CanvasConstraint
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import MASK
from aod_core.data.schema import parse_schema
from aod_core.diffusion.sampler import default_steps, generate
from aod_core.errors import BudgetExceeded, InputError


def sample(schema, seeds, n=48, seed=0):
    """(loaded schema, scaffold, records) sampled with random logits under the constraints."""
    loaded = schema if hasattr(schema, "resolved") else parse_schema(schema)
    for s in seeds:
        assert loaded.validate(s) == [], s
    sc = Scaffold.build(loaded.resolved, seeds)
    c = CanvasConstraint(sc, Prompt())
    g = torch.Generator().manual_seed(seed)
    V = len(sc.vocab)
    out = generate(
        lambda x: torch.randn(x.shape[0], x.shape[1], V, generator=g) * 3,
        c.initial_canvas(n),
        mask_id=MASK,
        constraint=c,
        generator=g,
    )
    return loaded, sc, [sc.decode(row.tolist()) for row in out]


def all_valid(loaded, records):
    bad = [(r, loaded.validate(r)) for r in records if not loaded.is_valid(r)]
    assert not bad, bad[:3]


# ---- drafts -------------------------------------------------------------------------------------

# One schema in each dialect: a bounded exclusive minimum, a definition used twice, a tuple with
# extra items, a dependency of one key on another.
DIALECTS = {
    "draft-04": {
        "$schema": "http://json-schema.org/draft-04/schema#",
        "definitions": {"tag": {"type": "string", "maxLength": 4}},
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "maximum": 50},
            "a": {"$ref": "#/definitions/tag"},
            "b": {"$ref": "#/definitions/tag"},
            "pair": {
                "type": "array",
                "items": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "boolean"}],
                "additionalItems": {"$ref": "#/definitions/tag"},
            },
        },
        "dependencies": {"a": ["b"]},
        "required": ["n", "pair"],
    },
    "draft-06": {
        "$schema": "http://json-schema.org/draft-06/schema#",
        "definitions": {"tag": {"type": "string", "maxLength": 4}},
        "type": "object",
        "properties": {
            "n": {"type": "integer", "exclusiveMinimum": 0, "maximum": 50},
            "a": {"$ref": "#/definitions/tag"},
            "b": {"$ref": "#/definitions/tag"},
            "pair": {
                "type": "array",
                "items": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "boolean"}],
                "additionalItems": {"$ref": "#/definitions/tag"},
            },
        },
        "dependencies": {"a": ["b"]},
        "required": ["n", "pair"],
    },
}
DIALECTS["draft-07"] = {**DIALECTS["draft-06"], "$schema": "http://json-schema.org/draft-07/schema#"}
DIALECTS["2019-09"] = {
    "$schema": "https://json-schema.org/draft/2019-09/schema",
    "$defs": {"tag": {"type": "string", "maxLength": 4}},
    "type": "object",
    "properties": {
        "n": {"type": "integer", "exclusiveMinimum": 0, "maximum": 50},
        "a": {"$ref": "#/$defs/tag"},
        "b": {"$ref": "#/$defs/tag"},
        "pair": {
            "type": "array",
            "items": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "boolean"}],
            "additionalItems": {"$ref": "#/$defs/tag"},
        },
    },
    "dependentRequired": {"a": ["b"]},
    "required": ["n", "pair"],
}
DIALECTS["2020-12"] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$defs": {"tag": {"type": "string", "maxLength": 4}},
    "type": "object",
    "properties": {
        "n": {"type": "integer", "exclusiveMinimum": 0, "maximum": 50},
        "a": {"$ref": "#/$defs/tag"},
        "b": {"$ref": "#/$defs/tag"},
        "pair": {
            "type": "array",
            "prefixItems": [{"type": "integer", "minimum": 0, "maximum": 9}, {"type": "boolean"}],
            "items": {"$ref": "#/$defs/tag"},
        },
    },
    "dependentRequired": {"a": ["b"]},
    "required": ["n", "pair"],
}
DIALECTS["none"] = {k: v for k, v in DIALECTS["2020-12"].items() if k != "$schema"}
DIALECT_SEEDS = [
    {"n": 1, "a": "x", "b": "yz", "pair": [3, True, "ab"]},
    {"n": 50, "pair": [0, False]},
    {"n": 7, "b": "q", "pair": [9, True, "a", "bcd"]},
]


@pytest.mark.parametrize("draft", list(DIALECTS))
def test_every_draft_gives_the_same_scaffold(draft):
    loaded = parse_schema(DIALECTS[draft])
    assert loaded.draft == ("2020-12" if draft == "none" else draft)
    ref = Scaffold.build(parse_schema(DIALECTS["2020-12"]).resolved, DIALECT_SEEDS)
    sc = Scaffold.build(loaded.resolved, DIALECT_SEEDS)
    assert sc.skeleton() == ref.skeleton()
    assert sc.describe() == ref.describe()
    n = next(s for s in sc.slots if s.path == "$.n")
    assert (n.lo, n.hi) == (1, 50)  # exclusive 0, in the draft-04 boolean form too
    assert loaded.notes == []


@pytest.mark.parametrize("draft", list(DIALECTS))
def test_every_draft_is_validated_with_its_own_semantics(draft):
    loaded = parse_schema(DIALECTS[draft])
    assert loaded.is_valid({"n": 1, "pair": [1, True]})
    assert not loaded.is_valid({"n": 0, "pair": [1, True]})  # exclusive minimum, every draft
    assert not loaded.is_valid({"n": 1, "a": "x", "pair": [1, True]})  # a needs b
    assert not loaded.is_valid({"n": 1, "pair": [1, True, "toolong"]})  # extra items are tags
    loaded, _, records = sample(loaded, DIALECT_SEEDS)
    all_valid(loaded, records)


# ---- keywords -----------------------------------------------------------------------------------


def test_oneof_of_objects_is_a_choice_per_alternative():
    schema = {
        "type": "object",
        "properties": {
            "shape": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"const": "circle"},
                            "r": {"type": "number", "minimum": 0, "maximum": 9},
                        },
                        "required": ["kind", "r"],
                        "additionalProperties": False,
                    },
                    {
                        "type": "object",
                        "properties": {
                            "kind": {"const": "rect"},
                            "w": {"type": "integer", "minimum": 1, "maximum": 5},
                            "h": {"type": "integer", "minimum": 1, "maximum": 5},
                        },
                        "required": ["kind", "w", "h"],
                        "additionalProperties": False,
                    },
                ]
            }
        },
        "required": ["shape"],
    }
    seeds = [
        {"shape": {"kind": "circle", "r": 1.5}},
        {"shape": {"kind": "rect", "w": 2, "h": 3}},
        {"shape": {"kind": "circle", "r": 0.5}},
    ]
    loaded, sc, records = sample(schema, seeds)
    all_valid(loaded, records)
    (variant,) = [s for s in sc.slots if s.role == "variant"]
    assert variant.choices == [0, 1] and variant.path == "$.shape|variant"
    assert {r["shape"]["kind"] for r in records} == {"circle", "rect"}
    assert "⟨" in sc.skeleton() and "circle" in sc.skeleton()


def test_anyof_of_types_and_type_unions():
    schema = {
        "type": "object",
        "properties": {
            "id": {
                "anyOf": [
                    {"type": "integer", "minimum": 0, "maximum": 999},
                    {"type": "string", "pattern": "^x[0-9]+$", "maxLength": 5},
                ]
            },
            "v": {"type": ["boolean", "string", "null"], "maxLength": 3},
            "obj": {
                "type": ["object", "null"],
                "properties": {"a": {"type": "integer", "minimum": 0, "maximum": 3}},
                "required": ["a"],
            },
        },
        "required": ["id", "v", "obj"],
    }
    seeds = [
        {"id": 5, "v": True, "obj": {"a": 1}},
        {"id": "x12", "v": "ab", "obj": None},
        {"id": 700, "v": None, "obj": {"a": 3}},
    ]
    loaded, sc, records = sample(schema, seeds, n=64)
    all_valid(loaded, records)
    kinds = {(type(r["id"]).__name__, type(r["v"]).__name__, type(r["obj"]).__name__) for r in records}
    assert {k[0] for k in kinds} == {"int", "str"} and {k[2] for k in kinds} == {"dict", "NoneType"}
    assert {k[1] for k in kinds} >= {"bool", "str"}
    assert not [n for n in sc.notes if "generated as" in n]


def test_unused_alternatives_are_noted_not_generated():
    schema = {
        "type": "object",
        "properties": {"x": {"oneOf": [{"type": "integer"}, {"type": "string"}, {"type": "boolean"}]}},
        "required": ["x"],
    }
    loaded, sc, records = sample(schema, [{"x": 1}, {"x": "a"}])
    all_valid(loaded, records)
    assert any("1 of 3 alternatives are used by no seed" in n for n in sc.notes)
    assert not any(isinstance(r["x"], bool) for r in records)


def test_allof_parts_are_merged():
    schema = {
        "type": "object",
        "$defs": {
            "base": {"type": "object", "properties": {"id": {"type": "integer", "minimum": 0}}, "required": ["id"]}
        },
        "properties": {
            "item": {
                "allOf": [
                    {"$ref": "#/$defs/base"},
                    {
                        "properties": {"id": {"maximum": 20}, "name": {"type": "string", "maxLength": 3}},
                        "required": ["name"],
                    },
                ]
            }
        },
        "required": ["item"],
    }
    loaded = parse_schema(schema)
    item = loaded.resolved["properties"]["item"]
    assert item == {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 20},
            "name": {"type": "string", "maxLength": 3},
        },
        "required": ["id", "name"],
    }
    assert loaded.notes == []
    loaded, sc, records = sample(loaded, [{"item": {"id": 3, "name": "ab"}}, {"item": {"id": 20, "name": "c"}}])
    all_valid(loaded, records)


def test_recursive_ref_is_unrolled_as_deep_as_the_seeds():
    schema = {
        "type": "object",
        "$defs": {
            "node": {
                "type": "object",
                "properties": {
                    "v": {"type": "integer", "minimum": 0, "maximum": 9},
                    "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                },
                "required": ["v"],
            }
        },
        "properties": {"tree": {"$ref": "#/$defs/node"}},
        "required": ["tree"],
    }
    seeds = [{"tree": {"v": 1, "kids": [{"v": 2, "kids": [{"v": 3}]}]}}, {"tree": {"v": 4}}]
    loaded, sc, records = sample(schema, seeds)
    all_valid(loaded, records)
    assert max(p.path.count("kids") for p in sc.slots) == 2  # the seeds go two levels down

    def depth(n):
        return 1 + max((depth(k) for k in n.get("kids", [])), default=0)

    assert max(depth(r["tree"]) for r in records) <= 3


def test_recursive_ref_no_seed_reaches_is_one_line():
    schema = {
        "type": "object",
        "$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}},
        "properties": {"a": {"type": "integer"}, "loop": {"$ref": "#/$defs/n"}},
        "required": ["a"],
    }
    loaded = parse_schema(schema)
    sc = Scaffold.build(loaded.resolved, [{"a": 1}, {"a": 2}])  # optional, never used: not generated
    assert [s.path for s in sc.slots] == ["$.a"]


def test_map_like_objects_learn_their_keys_from_the_seeds():
    schema = {
        "type": "object",
        "properties": {
            "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 6}},
            "env": {
                "type": "object",
                "patternProperties": {"^[A-Z_]+$": {"type": "integer", "minimum": 0, "maximum": 99}},
                "additionalProperties": False,
            },
        },
        "required": ["labels", "env"],
    }
    seeds = [
        {"labels": {"app": "web", "tier": "front"}, "env": {"PORT": 80}},
        {"labels": {"app": "db"}, "env": {"PORT": 5, "DEBUG": 1}},
    ]
    loaded, sc, records = sample(schema, seeds)
    all_valid(loaded, records)
    keys = {s.path for s in sc.slots}
    assert {"$.labels.app", "$.labels.tier?", "$.env.PORT", "$.env.DEBUG?"} <= keys
    assert loaded.notes == []


def test_lengths_items_multiples_and_exclusive_bounds():
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 2, "maxLength": 4},
            "tags": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"enum": ["a", "b", "c"]}},
            "step": {"type": "integer", "multipleOf": 7, "minimum": 0, "maximum": 100},
            "price": {"type": "number", "multipleOf": 0.01, "exclusiveMinimum": 0, "exclusiveMaximum": 10},
            "half": {"type": "number", "multipleOf": 0.5, "minimum": -2, "maximum": 2},
        },
        "required": ["code", "tags", "step", "price", "half"],
    }
    seeds = [
        {"code": "ab", "tags": ["a"], "step": 14, "price": 1.25, "half": 0.5},
        {"code": "abcd", "tags": ["a", "b", "c"], "step": 98, "price": 9.99, "half": -2},
    ]
    loaded, sc, records = sample(schema, seeds, n=64)
    all_valid(loaded, records)
    assert {len(r["tags"]) for r in records} <= {1, 2, 3}
    # jsonschema divides floats: 4.44 is not a multiple of 0.01 to it, so only accepted multiples are
    # listed, spread over a range too wide to list whole
    assert [n for n in sc.notes if "multipleOf" in n] == [
        "$.price: multipleOf 0.01: values are drawn from 256 multiples spread over the range (of 999)"
    ]
    assert {r["step"] % 7 for r in records} == {0}


@pytest.mark.parametrize(
    "fmt, seeds",
    [
        ("date", ["2020-02-29", "1999-12-31"]),
        ("date-time", ["2020-01-01T10:00:00Z", "2021-06-30T23:59:59.5+02:00"]),
        ("time", ["10:00:00Z", "23:59:59+01:00"]),
        ("email", ["ann@example.org", "b.c@mail.co.uk"]),
        ("uri", ["https://example.org/a?b=1", "urn:isbn:123"]),
        ("uuid", ["123e4567-e89b-12d3-a456-426614174000", "00000000-0000-0000-0000-000000000000"]),
        ("ipv4", ["192.168.0.1", "8.8.8.8"]),
    ],
)
def test_formats_have_real_value_languages(fmt, seeds):
    from jsonschema import Draft202012Validator

    schema = {"type": "object", "properties": {"v": {"type": "string", "format": fmt}}, "required": ["v"]}
    loaded, sc, records = sample(schema, [{"v": s} for s in seeds], n=64)
    all_valid(loaded, records)
    checker = Draft202012Validator.FORMAT_CHECKER
    if fmt in checker.checkers:
        assert all(checker.conforms(r["v"], fmt) for r in records)
    if fmt == "uri":
        assert all(":" in r["v"] for r in records)
    assert not sc.notes and not loaded.notes


def test_format_without_a_language_is_drawn_from_the_seeds():
    schema = {"type": "object", "properties": {"ip": {"type": "string", "format": "ipv6"}}, "required": ["ip"]}
    loaded, sc, records = sample(schema, [{"ip": "::1"}, {"ip": "fe80::1"}])
    all_valid(loaded, records)
    assert {r["ip"] for r in records} <= {"::1", "fe80::1"}
    assert [n.keyword for n in loaded.notes] == ["format"] and any("drawn from the seeds" in n for n in sc.notes)


def test_annotations_are_not_notes():
    schema = {
        "type": "object",
        "title": "T",
        "description": "d",
        "properties": {
            "a": {
                "type": "integer",
                "default": 3,
                "examples": [1, 2],
                "readOnly": True,
                "title": "A",
                "deprecated": True,
            }
        },
        "required": ["a"],
    }
    loaded, sc, records = sample(schema, [{"a": 1}])
    assert loaded.notes == [] and sc.notes == []
    all_valid(loaded, records)


# ---- extreme numbers ----------------------------------------------------------------------------


def test_64_bit_bounds_and_extreme_seed_values_sample_without_overflow():
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 0, "maximum": 18446744073709551615},
            "big": {"type": "integer"},
            "tiny": {"type": "number"},
            "wide": {"type": "number", "minimum": -1.7976931348623157e308, "maximum": 1.7976931348623157e308},
            "sci": {"type": "number", "exclusiveMinimum": 0},
        },
        "required": ["id", "big", "tiny", "wide", "sci"],
    }
    seeds = [
        {"id": 9223372036854775807, "big": 10**300, "tiny": 2.2e-313, "wide": 3.4e38, "sci": 6.02e23},
        {"id": 0, "big": -(10**250), "tiny": 5e-324, "wide": -1.5, "sci": 1.6e-19},
        {"id": 42, "big": 7, "tiny": 1e-310, "wide": 0.0, "sci": 3e8},
    ]
    loaded, sc, records = sample(schema, seeds)
    all_valid(loaded, records)
    widths = {s.path: s.width for s in sc.slots}
    assert max(widths.values()) <= 32  # bounded, not the seeds' 301-digit spelling
    assert next(s for s in sc.slots if s.path == "$.sci").number.notation == "exponent"
    assert next(s for s in sc.slots if s.path == "$.id").hi == 9999999999999999999  # 19 digits: all of int64
    for r in records:
        json.loads(json.dumps(r))  # finite: no Infinity/NaN
    pin = Prompt(pins={"$.id": 9223372036854775807})
    c = CanvasConstraint(sc, pin)
    assert c.pins


def test_number_range_beyond_any_width_is_one_line():
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 10**300}}, "required": ["n"]}
    loaded = parse_schema(schema)
    with pytest.raises(InputError) as e:
        Scaffold.build(loaded.resolved, [{"n": 10**300}])
    assert "$.n" in str(e.value) and "budget" in str(e.value) and "\n" not in str(e.value)


# ---- budgets ------------------------------------------------------------------------------------


def test_exploding_pattern_is_caught_by_the_compile_budget():
    automaton.compile_fsm.cache_clear()
    with pytest.raises(BudgetExceeded, match="budget"):  # 2^22 states: the state budget stops the crawl
        automaton.compile_fsm(".*a[ab]{22}")
    schema = {"type": "object", "properties": {"s": {"type": "string", "pattern": "a[ab]{22}"}}, "required": ["s"]}
    seeds = [{"s": "a" + "b" * 22}, {"s": "xa" + "ab" * 11}]
    loaded, sc, records = sample(schema, seeds)
    all_valid(loaded, records)
    assert any("pattern" in n and "drawn from the seeds" in n for n in sc.notes)


def test_canvas_budget_is_one_line(monkeypatch):
    monkeypatch.setattr(scaffold_mod, "MAX_CANVAS", 50)
    schema = {
        "type": "object",
        "properties": {"xs": {"type": "array", "items": {"type": "string"}}},
        "required": ["xs"],
    }
    loaded = parse_schema(schema)
    with pytest.raises(BudgetExceeded) as e:
        Scaffold.build(loaded.resolved, [{"xs": ["abcdefghij"] * 8}])
    assert "50 positions" in str(e.value) and "$.xs[" in str(e.value) and "\n" not in str(e.value)


def test_default_steps_are_bounded_on_long_canvases():
    # A big schema's canvas once took one forward pass per masked position (minutes for 20 records).
    assert default_steps(22, 22) == 22  # short canvases: one position per step, as before
    assert default_steps(1800, 2200) == 16
    assert default_steps(178, 467) == 70


def test_cli_refuses_a_budget_breaking_schema_with_exit_2(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(
        json.dumps(
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "object",
                "properties": {"n": {"type": "integer", "minimum": 10**300}},
                "required": ["n"],
            }
        )
    )
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"n": 10**300}) + "\n" + json.dumps({"n": 10**300 + 1}) + "\n")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "aod_core.cli",
            "sample",
            "--schema",
            str(schema),
            "--seeds",
            str(seeds),
            "--n",
            "2",
            "--out",
            str(tmp_path / "o.jsonl"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 2, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("aod: error:") and "$.n" in last and "Traceback" not in p.stderr


def test_pattern_field_the_seeds_leave_null_still_gets_a_wide_enough_slot():
    # Seen in a public schema: a nullable url whose every seed is null, the pattern needing 10+ chars
    schema = {
        "type": "object",
        "properties": {
            "url": {"type": ["string", "null"], "pattern": "^([Hh][Tt][Tt][Pp][Ss]?)://.+$", "maxLength": 2000},
            "key": {"type": "string", "pattern": "^[0-9a-f]{8}$"},
        },
        "required": ["url"],
    }
    loaded, sc, records = sample(schema, [{"url": None}, {"url": None}])
    all_valid(loaded, records)
    url = next(s for s in sc.slots if s.path == "$.url")
    assert url.width >= len("http://x")
    assert any(r["url"] for r in records)
