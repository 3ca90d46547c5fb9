"""A hostile regular expression cannot freeze the process (issue 28, item 1).

``^(a+)+$`` against ``"aaaa…a!"`` takes Python's ``re`` time that doubles with every character
(about 1.6 s at 24 characters here); the schema's patterns run on RE2 instead (``data/patterns.py``),
so 10,000 characters take a millisecond. Patterns RE2 cannot run (backreferences, lookarounds) are
refused when the schema is loaded, one line naming where the pattern is.

A hang cannot be caught by a thread with a join timeout: ``re`` holds the GIL for the whole match,
so the waiting thread never runs again either. The matching itself is run in a forked child
(``_finishes``) that the test kills after ``LIMIT_S`` and fails with the reason; the commands that
run in-process (the CLI, the upload path) are watched by faulthandler's own C thread, which needs
no GIL: past ``WATCHDOG_S`` it ends the whole process (exit 1), so a regression fails rather than
hangs the suite.
"""

from __future__ import annotations

import faulthandler
import json
import multiprocessing
import queue
import sys
import time

import pytest

from aod_core import cli
from aod_core.chat.base import schema_validator
from aod_core.data.schema import _short, load_schema, parse_schema
from aod_core.data.seeds import load_records
from aod_core.errors import InputError
from aod_core.studio import datasets

LIMIT_S = 30  # Python's re needs about 1.6 s at 24 characters and twice that per character more
WATCHDOG_S = 120
EVIL = "^(a+)+$"
LONG_BAD = "a" * 10_000 + "!"  # no match: what backtracking tries every split of
LONG_GOOD = "a" * 10_000

SCHEMA = {
    "type": "object",
    "properties": {"code": {"type": "string", "pattern": EVIL}, "n": {"type": "integer"}},
    "required": ["code", "n"],
}


@pytest.fixture(autouse=True)
def _watchdog():
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True, file=sys.stderr)
    yield
    faulthandler.cancel_dump_traceback_later()


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _finishes(fn, what: str):
    """``fn()`` run in a forked child: (its result, seconds), or the test fails after ``LIMIT_S``."""
    results = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=lambda: results.put(_timed(fn)), daemon=True)
    child.start()
    try:
        out, seconds = results.get(timeout=LIMIT_S)
    except queue.Empty:
        pytest.fail(f"{what} did not finish in {LIMIT_S} s: a backtracking engine is matching the pattern")
    finally:
        child.join(1)
        if child.is_alive():
            child.kill()
    print(f"{what}: {seconds * 1000:.2f} ms")
    return out


def _write(path, obj):
    path.write_text(json.dumps(obj))
    return path


# ---- validation runs in linear time ------------------------------------------------------------------


def test_the_hostile_pattern_checks_ten_thousand_characters_right_away():
    loaded = parse_schema(SCHEMA, "schema.json")
    errors = _finishes(lambda: loaded.validate({"code": LONG_BAD, "n": 1}), f"^(a+)+$ on {len(LONG_BAD):,} characters")
    # jsonschema's wording, the long value cut to one readable line
    assert errors == [("$.code", _short(f"{LONG_BAD!r} does not match {EVIL!r}"))]
    assert len(errors[0][1]) < 400 and errors[0][1].endswith(f"does not match {EVIL!r}")
    assert loaded.validate({"code": LONG_GOOD, "n": 1}) == []
    assert loaded.is_valid({"code": "aaa", "n": 1}) and not loaded.is_valid({"code": "aab", "n": 1})


@pytest.mark.parametrize("draft", ["draft-04", "draft-06", "draft-07", "2019-09", "2020-12"])
def test_pattern_properties_and_additional_properties_are_linear_in_every_draft(draft):
    uri = {
        "draft-04": "http://json-schema.org/draft-04/schema#",
        "draft-06": "http://json-schema.org/draft-06/schema#",
        "draft-07": "http://json-schema.org/draft-07/schema#",
        "2019-09": "https://json-schema.org/draft/2019-09/schema",
        "2020-12": "https://json-schema.org/draft/2020-12/schema",
    }[draft]
    doc = {
        "$schema": uri,
        "type": "object",
        "properties": {
            "m": {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "additionalProperties": False}
        },
    }
    loaded = parse_schema(doc, "schema.json")
    assert loaded.draft == draft
    errors = _finishes(
        lambda: loaded.validate({"m": {LONG_BAD: 1, LONG_GOOD: "x", "aa": 2}}), f"{draft}: patternProperties, long keys"
    )
    messages = sorted(m for _, m in errors)
    # the long key of a's matches (its value must be an integer); the one with "!" matches nothing
    assert messages == sorted(
        ["'x' is not of type 'integer'", _short(f"{LONG_BAD!r} does not match any of the regexes: {EVIL!r}")]
    )


@pytest.mark.parametrize(
    "uri", ["https://json-schema.org/draft/2019-09/schema", "https://json-schema.org/draft/2020-12/schema"]
)
def test_unevaluated_properties_count_pattern_properties_with_re2(uri):
    doc = {
        "$schema": uri,
        "type": "object",
        "properties": {
            "m": {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "unevaluatedProperties": False}
        },
    }
    loaded = parse_schema(doc, "schema.json")
    assert loaded.validate({"m": {LONG_GOOD: 1}}) == []  # evaluated by patternProperties
    errors = _finishes(lambda: loaded.validate({"m": {LONG_BAD: 1}}), "unevaluatedProperties, a long key")
    assert [p for p, _ in errors] == ["$.m"] and "Unevaluated properties are not allowed" in errors[0][1]


def test_property_names_pattern_and_the_scaffold_validator_are_linear():
    from aod_core.data.schema import resolved_validator

    doc = {"type": "object", "properties": {"m": {"type": "object", "propertyNames": {"pattern": EVIL}}}}
    loaded = parse_schema(doc, "schema.json")
    assert [p for p, _ in _finishes(lambda: loaded.validate({"m": {LONG_BAD: 1}}), "propertyNames")] == ["$.m"]
    scaffold_side = resolved_validator(loaded.resolved)
    assert scaffold_side.is_valid({"m": {LONG_GOOD: 1}})
    assert not _finishes(lambda: scaffold_side.is_valid({"m": {LONG_BAD: 1}}), "the scaffold's validator")


def test_the_layout_matches_seed_keys_with_re2():
    from aod_core.canvas.layout import LayoutBuilder

    schema = {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}, "additionalProperties": False}
    assert LayoutBuilder.key_schema(schema, LONG_GOOD) == {"type": "integer"}
    assert _finishes(lambda: LayoutBuilder.key_schema(schema, LONG_BAD), "the layout's key lookup") is False


def test_the_chat_output_validator_is_linear_and_refuses_what_re2_cannot_run():
    v = schema_validator(SCHEMA)
    assert not _finishes(lambda: v.is_valid({"code": LONG_BAD, "n": 1}), "the chat output validator")
    assert v.is_valid({"code": LONG_GOOD, "n": 1})
    with pytest.raises(InputError, match=r"^json_schema: /properties/code/pattern: pattern .* cannot be checked"):
        schema_validator({"type": "object", "properties": {"code": {"type": "string", "pattern": r"(a)\1"}}})


def test_ecma_anchors_and_classes():
    """RE2 reads ``$``, ``\\d`` and ``\\w`` as ECMA-262 does (the dialect JSON Schema names), where
    Python's ``re`` let a trailing newline and non-ASCII digits through."""
    loaded = parse_schema(
        {"type": "object", "properties": {"a": {"type": "string", "pattern": "^abc$"}, "d": {"pattern": r"^\d+$"}}},
        "schema.json",
    )
    assert loaded.validate({"a": "abc\n"}) == [("$.a", "'abc\\n' does not match '^abc$'")]
    assert [p for p, _ in loaded.validate({"d": "\u0663"})] == ["$.d"]  # ARABIC-INDIC DIGIT THREE
    assert loaded.validate({"a": "abc", "d": "0123"}) == []


# ---- patterns RE2 cannot run are refused when the schema is loaded ---------------------------------------

REFUSED = {
    "backreference": (r"(a)\1", "backreferences are not supported by the linear-time engine"),
    "lookahead": ("^(?=.*[0-9]).{8,}$", "lookahead is not supported by the linear-time engine"),
    "negative lookahead": ("^(?!x)", "lookahead is not supported by the linear-time engine"),
    "lookbehind": ("(?<=a)b", "lookbehind is not supported by the linear-time engine"),
    "negative lookbehind": ("(?<!a)b", "lookbehind is not supported by the linear-time engine"),
    "huge repetition": ("a{2000}", "the linear-time engine takes repetition counts up to 1000, nested ones included"),
}


def _refused_line(path, pointer, pattern, reason):
    return f"{path}: {pointer}: pattern {json.dumps(pattern)} cannot be checked safely ({reason})"


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_pattern_re2_cannot_run_is_refused_naming_its_place(case, tmp_path):
    pattern, reason = REFUSED[case]
    doc = {**SCHEMA, "properties": {**SCHEMA["properties"], "code": {"type": "string", "pattern": pattern}}}
    path = _write(tmp_path / "schema.json", doc)
    with pytest.raises(InputError) as e:
        load_schema(path)
    assert str(e.value) == _refused_line(path, "/properties/code/pattern", pattern, reason)


def test_refused_wherever_the_pattern_is(tmp_path):
    back = r"^(x)\1$"
    cases = {
        "/properties/tags/patternProperties": {"tags": {"type": "object", "patternProperties": {back: {}}}},
        "/properties/l/items/pattern": {"l": {"type": "array", "items": {"type": "string", "pattern": back}}},
        "/properties/o/propertyNames/pattern": {"o": {"type": "object", "propertyNames": {"pattern": back}}},
    }
    for pointer, props in cases.items():
        with pytest.raises(InputError) as e:
            parse_schema({"type": "object", "properties": props}, "s.json")
        assert str(e.value) == _refused_line(
            "s.json", pointer, back, "backreferences are not supported by the linear-time engine"
        )
    # an unused definition too: a schema never half-works
    unused = {"type": "object", "properties": {"a": {}}, "$defs": {"code": {"type": "string", "pattern": back}}}
    with pytest.raises(InputError, match=r"^s\.json: /\$defs/code/pattern: pattern "):
        parse_schema(unused, "s.json")
    draft7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"a": {}},
        "definitions": unused["$defs"],
    }
    with pytest.raises(InputError, match=r"^s\.json: /definitions/code/pattern: pattern "):
        parse_schema(draft7, "s.json")


def test_the_cli_refuses_it_in_one_line(tmp_path, capsys):
    pattern, reason = REFUSED["backreference"]
    schema = _write(
        tmp_path / "schema.json", {**SCHEMA, "properties": {"code": {"type": "string", "pattern": pattern}}}
    )
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"code": "aa", "n": 1}\n')
    out = tmp_path / "out.jsonl"
    assert cli.main(["sample", "--schema", str(schema), "--seeds", str(seeds), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"aod: error: {_refused_line(schema, '/properties/code/pattern', pattern, reason)}\n"
    assert not out.exists()


def test_the_upload_path_refuses_it_naming_the_upload():
    pattern, reason = REFUSED["lookahead"]
    data = json.dumps({**SCHEMA, "properties": {"code": {"type": "string", "pattern": pattern}}}).encode()
    with pytest.raises(InputError) as e:
        datasets.load_uploaded(data, "my schema.json", b'{"code": "aa", "n": 1}\n', "seeds.jsonl")
    assert str(e.value) == _refused_line("my schema.json", "/properties/code/pattern", pattern, reason)


# ---- the commands that validate seeds and records finish ----------------------------------------------


def _hostile_seeds(path, bad_rows=3):
    good = [{"code": "a" * (3 + i % 7), "n": i} for i in range(30)]
    bad = [{"code": "a" * (10_000 + i) + "!", "n": i} for i in range(bad_rows)]
    path.write_text("".join(json.dumps(r) + "\n" for r in good + bad))
    return path


def test_seeds_with_long_hostile_values_are_refused_right_away(tmp_path, capsys):
    schema = _write(tmp_path / "schema.json", SCHEMA)
    seeds = _hostile_seeds(tmp_path / "seeds.jsonl")
    with pytest.raises(
        InputError,
        match=r"seeds\.jsonl:31: \$\.code: 'a+ … \(9728 characters left out\) … a+!' does not match '\^\(a\+\)\+\$'",
    ):
        load_records(seeds, load_schema(schema))
    dropped, seconds = _timed(lambda: load_records(seeds, load_schema(schema), on_invalid="drop"))
    print(f"33 seeds, 3 of them 10,000-character hostile values, validated in {seconds * 1000:.1f} ms")
    assert len(dropped.records) == 30 and dropped.dropped == 3
    out = tmp_path / "out.jsonl"
    assert cli.main(["sample", "--schema", str(schema), "--seeds", str(seeds), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"aod: error: {seeds}:31: $.code: ") and err.count("\n") == 1 and not out.exists()
    with pytest.raises(datasets.SeedsInvalid) as e:
        datasets.load_uploaded(json.dumps(SCHEMA).encode(), "schema.json", seeds.read_bytes(), "seeds.jsonl")
    assert len(e.value.issues) == 3


def test_aod_judge_rejects_long_hostile_records_and_finishes(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "cache"))
    schema = _write(tmp_path / "schema.json", SCHEMA)
    seeds = _hostile_seeds(tmp_path / "seeds.jsonl", bad_rows=0)
    records = tmp_path / "records.jsonl"
    rows = [{"code": "aaaa", "n": 3}, {"code": LONG_BAD, "n": 4}, {"code": LONG_GOOD + "b", "n": 5}]
    records.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "verdicts.jsonl"
    argv = ["judge", "--schema", str(schema), "--seeds", str(seeds), "--records", str(records), "--out", str(out)]
    code, seconds = _timed(lambda: cli.main([*argv, "--quiet"]))
    print(f"aod judge over two 10,000-character hostile records: {seconds:.1f} s (calibration included)")
    assert code == 0
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert [v["checks"]["schema_errors"] != [] for v in verdicts] == [False, True, True]
    assert [v["verdict"] for v in verdicts][1:] == ["reject", "reject"]
