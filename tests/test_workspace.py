import json

import pytest

from aod_core.canvas.constraints import CanvasConstraint
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.data import demos
from aod_core.data.schema import parse_schema
from aod_core.data.seeds import RecordIssue, RecordSet
from aod_core.diffusion.sampler import StepInfo
from aod_core.errors import InputError
from aod_core.generators.base import Progress
from aod_core.records import Candidate
from aod_core.studio import cells, datasets, design, fields, prompt_forms, sampling

PEOPLE = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1, "description": "Full name."},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "city": {"type": ["string", "null"], "enum": ["Oslo", "Lima", None]},
    },
    "required": ["name", "age"],
    "additionalProperties": False,
}
PEOPLE_BYTES = json.dumps(PEOPLE).encode()
GOOD = [{"name": "Ann", "age": 31, "city": "Oslo"}, {"name": "Bo", "age": 7, "city": None}]


def jsonl(records):
    return "".join(json.dumps(r) + "\n" for r in records).encode()


# ---- load_uploaded ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, data",
    [
        ("seeds.jsonl", jsonl(GOOD)),
        ("seeds.ndjson", jsonl(GOOD)),
        ("people.json", json.dumps(GOOD).encode()),
        ("people.csv", b"name,age,city\nAnn,31,Oslo\nBo,7,\n"),
        ("BOM.jsonl", b"\xef\xbb\xbf" + jsonl(GOOD)),
    ],
)
def test_load_uploaded_each_format(name, data):
    ds = datasets.load_uploaded(PEOPLE_BYTES, "people.schema.json", data, name, "stop")
    assert ds.seeds.records == GOOD
    assert ds.seeds.source == name
    assert ds.holdout is None and ds.seeds.dropped == 0
    assert ds.schema.source == "people.schema.json"


def test_load_uploaded_schema_with_bom_and_path_in_name():
    ds = datasets.load_uploaded(
        b"\xef\xbb\xbf" + PEOPLE_BYTES, "C:\\Users\\me\\s.json", jsonl(GOOD), "/x/y/seeds.jsonl"
    )
    assert ds.schema.source == "s.json" and ds.seeds.source == "seeds.jsonl"


@pytest.mark.parametrize(
    "schema, match",
    [
        (b"{nope", r"^s\.json: invalid JSON at line 1, column 2"),
        (b"", r"s\.json: the schema file is empty"),
        (b"\xff\xfe{}", r"s\.json: schema file is not UTF-8"),
        (b"[1, 2]", r"s\.json: schema must be a JSON object, got an array"),
        (b'{"type": "string"}', r"root schema must describe an object"),
    ],
)
def test_load_uploaded_bad_schema(schema, match):
    with pytest.raises(InputError, match=match) as err:
        datasets.load_uploaded(schema, "s.json", jsonl(GOOD), "seeds.jsonl")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "name, data, match",
    [
        ("seeds.txt", jsonl(GOOD), r"seeds\.txt: unsupported seeds file type '\.txt'"),
        ("seeds", jsonl(GOOD), r"unsupported seeds file type '\(none\)'"),
        ("seeds.jsonl", b'{"name": "Ann", "age": 3}\n{oops\n', r"^seeds\.jsonl: line 2 is not valid JSON"),
        ("seeds.jsonl", b"", r"^seeds\.jsonl: no records"),
        ("seeds.json", b'{"name": "Ann"}', r"^seeds\.json: expected an array of records, found an object"),
        ("seeds.csv", b"name\nAnn\n", r"^seeds\.csv: missing columns for required properties: age"),
    ],
)
def test_load_uploaded_bad_seeds(name, data, match):
    with pytest.raises(InputError, match=match) as err:
        datasets.load_uploaded(PEOPLE_BYTES, "s.json", data, name)
    assert not isinstance(err.value, datasets.SeedsInvalid)
    assert "aod-upload-" not in str(err.value)  # the temporary copy is never named


BAD = GOOD + [{"name": "", "age": -1}, {"name": "Cy", "age": 5, "city": "Rome"}]


def test_load_uploaded_stop_reports_every_issue():
    with pytest.raises(datasets.SeedsInvalid) as err:
        datasets.load_uploaded(PEOPLE_BYTES, "s.json", jsonl(BAD), "seeds.jsonl", "stop")
    e = err.value
    assert isinstance(e, InputError)
    assert str(e).startswith("seeds.jsonl:3: $.age: -1 is less than the minimum of 0")
    assert "aod-upload-" not in str(e)
    assert e.records == 4 and e.bad_records == 2
    assert [(i.line, i.path) for i in e.issues] == [(3, "$.age"), (3, "$.name"), (4, "$.city")]
    assert {i.source for i in e.issues} == {"seeds.jsonl"}


def test_load_uploaded_drop_keeps_valid_and_lists_dropped():
    ds = datasets.load_uploaded(PEOPLE_BYTES, "s.json", jsonl(BAD), "seeds.jsonl", "drop")
    assert ds.seeds.records == GOOD and ds.seeds.dropped == 2 and ds.seeds.lines == [1, 2]
    assert [(i.source, i.line) for i in ds.seeds.issues] == [("seeds.jsonl", 3)] * 2 + [("seeds.jsonl", 4)]


def test_load_uploaded_drop_when_everything_is_invalid():
    with pytest.raises(datasets.SeedsInvalid, match="no valid seeds in seeds.jsonl") as err:
        datasets.load_uploaded(PEOPLE_BYTES, "s.json", jsonl(BAD[2:]), "seeds.jsonl", "drop")
    assert len(err.value.issues) == 3


def test_load_uploaded_rejects_unknown_mode():
    with pytest.raises(ValueError):
        datasets.load_uploaded(PEOPLE_BYTES, "s.json", jsonl(GOOD), "seeds.jsonl", "ignore")  # type: ignore[arg-type]


# ---- demos ------------------------------------------------------------------------------------


def test_demo_names_and_load_every_demo():
    names = datasets.demo_names()
    assert {"penguins", "penguin-groups", "seattle-weather"} <= set(names)
    for name in names:
        ds = datasets.load_demo(name)
        summary = datasets.dataset_summary(ds)
        assert summary["seeds"] > 0 and summary["dropped"] == 0 and summary["fields"] > 0
        assert summary["holdout"] == len(ds.holdout.records)


def test_load_demo_unknown():
    with pytest.raises(InputError, match=r"unknown demo dataset 'nope' \(available: .*penguins"):
        datasets.load_demo("nope")


@pytest.fixture
def broken_demo(tmp_path, monkeypatch):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "schema.json").write_text(json.dumps(PEOPLE))
    (folder / "seeds.jsonl").write_bytes(jsonl(BAD))
    monkeypatch.setattr(demos, "ASSETS", tmp_path)
    return folder


def test_load_demo_invalid_seeds_stop_and_drop(broken_demo):
    with pytest.raises(datasets.SeedsInvalid) as err:
        datasets.load_demo("broken", "stop")
    assert len(err.value.issues) == 3 and err.value.records == 4
    ds = datasets.load_demo("broken", "drop")
    assert ds.seeds.dropped == 2 and len(ds.seeds.issues) == 3


def test_load_demo_invalid_holdout(broken_demo):
    (broken_demo / "seeds.jsonl").write_bytes(jsonl(GOOD))
    (broken_demo / "holdout.jsonl").write_bytes(jsonl([{"name": "Di", "age": 500}]))
    with pytest.raises(datasets.SeedsInvalid, match="holdout.jsonl:1") as err:
        datasets.load_demo("broken", "stop")
    assert [i.path for i in err.value.issues] == ["$.age"]


# ---- schema fields ----------------------------------------------------------------------------


def test_field_table_nested_demo():
    rows = fields.field_table(datasets.load_demo("penguin-groups").schema)
    by_path = {r["path"]: r for r in rows}
    assert [r["path"] for r in rows][:5] == ["$.island", "$.year", "$.group_size", "$.birds", "$.birds[*]"]
    assert set(rows[0]) == {
        "path",
        "type",
        "required",
        "nullable",
        "constraints",
        "description",
        "dependencies",
        "notes",
    }
    assert all(r["notes"] == "" for r in rows)
    species = by_path["$.birds[*].species"]
    assert species["type"] == "string" and species["required"] is True
    assert species["constraints"] == 'one of "Adelie" | "Chinstrap" | "Gentoo"'
    assert species["description"] == "Penguin species."
    assert by_path["$.birds[*].sex"]["nullable"] is True and by_path["$.birds[*].sex"]["type"] == "string | null"
    assert by_path["$.year"]["constraints"] == "min 2007; max 2009"
    assert by_path["$.birds"]["constraints"] == "min items 1; max items 4"
    assert by_path["$.birds[*]"]["constraints"] == "no other keys"


def test_field_table_keywords_and_odd_keys():
    schema = parse_schema(
        {
            "type": "object",
            "properties": {
                "day": {"type": "string", "format": "date", "pattern": "^2", "title": "Day"},
                "kind": {"const": "x"},
                "first name": {"type": "string", "maxLength": 5},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
                "score": {"type": "number", "exclusiveMinimum": 0},
                "any": {},
            },
            "required": ["day"],
        }
    )
    by_path = {r["path"]: r for r in fields.field_table(schema)}
    assert by_path["$.day"]["constraints"] == "format date; pattern ^2"
    assert by_path["$.day"]["description"] == "Day" and by_path["$.day"]["required"] is True
    assert by_path["$.kind"]["type"] == "const" and by_path["$.kind"]["constraints"] == 'const "x"'
    assert by_path['$["first name"]']["constraints"] == "max length 5"
    assert by_path['$["first name"]']["required"] is False
    assert by_path["$.tags[*]"]["type"] == "string"
    assert by_path["$.tags"]["constraints"] == "unique items"
    assert by_path["$.score"]["constraints"] == "min (exclusive) 0"
    assert by_path["$.any"]["type"] == "any"
    assert fields.leaf_paths(schema) == ["$.day", "$.kind", '$["first name"]', "$.tags[*]", "$.score", "$.any"]


def test_field_table_shows_each_note_at_its_field():
    schema = parse_schema(
        {
            "type": "object",
            "properties": {
                "tags": {"type": "array", "items": {"type": "string", "not": {"const": "x"}}, "uniqueItems": True},
                "ip": {"type": "string", "format": "ipv6"},
                "kind": {"oneOf": [{"type": "integer"}, {"type": "string"}, {"type": "boolean"}]},
            },
            "minProperties": 1,
        }
    )
    seeds = [{"tags": ["a"], "ip": "::1", "kind": 1}, {"tags": [], "ip": "::2", "kind": "a"}]
    from aod_core.canvas.scaffold import Scaffold

    sc = Scaffold.build(schema.resolved, seeds)
    by_path = {r["path"]: r for r in fields.field_table(schema, sc.notes)}
    assert by_path["$"]["notes"].startswith("minProperties: keyword 'minProperties' is not enforced")
    assert by_path["$.tags"]["notes"].startswith("uniqueItems:")
    assert by_path["$.tags[*]"]["notes"].startswith("not:")
    assert "format" in by_path["$.ip"]["notes"] and "drawn from the seeds" in by_path["$.ip"]["notes"]
    assert "1 of 3 alternatives are used by no seed" in by_path["$.kind"]["notes"]
    assert fields.note_field("/properties/a/anyOf/0/properties/b") == "$.a"
    assert fields.note_field("$.birds[3].sex|variant") == "$.birds[*].sex"


# ---- seeds ------------------------------------------------------------------------------------


def test_seed_stats_numbers_categories_nested():
    schema = parse_schema(
        {
            "type": "object",
            "properties": {
                "n": {"type": ["number", "null"]},
                "c": {"type": "string"},
                "b": {"type": "boolean"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"v": {"type": "integer"}}}},
            },
        }
    )
    records = [
        {"n": 1, "c": "a", "b": True, "items": [{"v": 1}, {"v": 2}]},
        {"n": None, "c": "a", "b": False, "items": [{"v": 2}]},
        {"n": 4.5, "c": "b", "items": []},
        {"c": "a"},
    ]
    rows = {r["path"]: r for r in fields.seed_stats(records, schema)}
    assert list(rows) == ["$.n", "$.c", "$.b", "$.items[*].v"]
    n = rows["$.n"]
    assert (n["kind"], n["count"], n["nulls"], n["distinct"], n["min"], n["max"], n["mean"]) == (
        "number",
        3,
        1,
        2,
        1.0,
        4.5,
        2.75,
    )
    c = rows["$.c"]
    assert (c["kind"], c["count"], c["distinct"], c["top"], c["min"]) == ("category", 4, 2, "a (3), b (1)", None)
    assert rows["$.b"]["kind"] == "category" and rows["$.b"]["top"] == "true (1), false (1)"
    v = rows["$.items[*].v"]
    assert (v["count"], v["distinct"], v["min"], v["max"]) == (3, 2, 1.0, 2.0)


def test_seed_stats_empty_field():
    schema = parse_schema({"type": "object", "properties": {"x": {"type": ["string", "null"]}}})
    (row,) = fields.seed_stats([{"x": None}, {}], schema)
    assert (row["kind"], row["count"], row["nulls"], row["distinct"], row["top"]) == ("empty", 1, 1, 0, "")


def test_seed_issue_rows_from_each_source():
    issues = [RecordIssue("s.jsonl", 3, "$.age", "too small"), RecordIssue("s.jsonl", 5, "$", "missing")]
    expected = [{"line": 3, "path": "$.age", "message": "too small"}, {"line": 5, "path": "$", "message": "missing"}]
    assert datasets.seed_issue_rows(issues) == expected
    assert datasets.seed_issue_rows(RecordSet([], [], "s.jsonl", issues, dropped=2)) == expected
    assert datasets.seed_issue_rows(datasets.SeedsInvalid("bad", issues=issues, records=9)) == expected
    assert datasets.seed_issue_rows(RecordSet([{}], [1], "s.jsonl")) == []


def test_records_preview_flattens_nested_values():
    rows = datasets.records_preview([{"a": 1, "b": {"c": [1]}, "d": ["x"]}, {"a": 2}], limit=1)
    assert rows == [{"a": 1, "b": '{"c": [1]}', "d": '["x"]'}]


# ---- scaffold and prompt ----------------------------------------------------------------------


def test_scaffold_preview_demo():
    p = design.scaffold_preview(datasets.load_demo("penguin-groups"))
    assert "⟨len 1..4⟩" in p.skeleton and p.skeleton.startswith('{"island": ⟨"Biscoe"|"Dream"|"Torgersen"⟩')
    assert p.field_keys == [
        "$.island",
        "$.year",
        "$.group_size",
        "$.birds[*].species",
        "$.birds[*].sex",
        "$.birds[*].bill_length_mm",
        "$.birds[*].body_mass_g",
    ]
    assert {"path", "kind", "constraint"} <= set(p.slots[0]) and p.notes == []


@pytest.mark.parametrize(
    "text, value",
    [
        ("42", 42),
        ("4.5", 4.5),
        ("null", None),
        ("true", True),
        ('"Dream"', "Dream"),
        ("Dream", "Dream"),
        ("two words", "two words"),
        (7, 7),
    ],
)
def test_parse_cell_value(text, value):
    assert cells.parse_cell_value(text) == value


def test_build_prompt_from_editor_rows():
    prompt = prompt_forms.build_prompt(
        "penguins",
        sampling={"steps": 10, "temperature": 0.5, "remasking": "low_confidence", "num_blocks": 2, "threshold": None},
        pins=[
            {"path": "$.island", "value": "Dream"},
            {"path": None, "value": None},
            {"path": "year", "value": " 2008 "},
            {"path": "", "value": float("nan")},
        ],
        forbids=[{"path": "$.sex", "value": "null"}, {"path": "$.sex", "value": "male"}],
    )
    assert prompt.text == "penguins"
    assert prompt.pins == {"$.island": "Dream", "$.year": 2008}
    assert prompt.forbid == {"$.sex": [None, "male"]}
    assert (prompt.sampling.steps, prompt.sampling.remasking, prompt.sampling.num_blocks) == (10, "low_confidence", 2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pins": [{"path": None, "value": "x"}]}, "pin row 1: choose a field path"),
        ({"pins": [{"path": "$.a", "value": None}]}, r"pin \$\.a: no value"),
        ({"forbids": [{"path": "$.a", "value": ""}]}, r"forbid \$\.a: no value"),
        ({"pins": [{"path": "$.a", "value": "1"}, {"path": "$.a", "value": "2"}]}, "pinned twice"),
        ({"sampling": {"temperature": -1}}, "temperature must be >= 0"),
        ({"sampling": {"threshold": 2.0}}, r"threshold must be in \(0, 1\]"),
        ({"sampling": {"bogus": 1}}, "bad sampling settings"),
    ],
)
def test_build_prompt_errors(kwargs, match):
    with pytest.raises(InputError, match=match):
        prompt_forms.build_prompt("", **kwargs)


class FakeGen:
    """A generator stand-in: no model, records calls, returns fixed candidates."""

    def __init__(self, scaffold=None, candidates=(), batch=2):
        self.scaffold = scaffold
        self.candidates = list(candidates)
        self.config = type("Cfg", (), {"sample_batch": batch})()
        self.calls = []

    def check_prompt(self, prompt):
        prompt.sampling.check()
        if self.scaffold is not None:
            CanvasConstraint(self.scaffold, prompt, "cpu")
        elif prompt.pins or prompt.forbid:
            raise InputError("pins, forbids, ranges and biases need the scaffold (it is switched off)")

    def fit(self, on_progress=None):
        self.calls.append("fit")
        if on_progress:
            on_progress(Progress("fit", 5, 10, {"loss": 1.25}))
            on_progress(Progress("fit", 10, 10, {"loss": 1.0}))
        return {"seconds": 0.1, "cached": False}

    def sample(self, prompt, n, *, seed=0, on_step=None):
        self.calls.append(("sample", n, seed))
        if on_step:
            for _ in range((n + 1) // 2):  # batches of 2, two steps each
                on_step(StepInfo(1, 0, 1, 2, 4))
                on_step(StepInfo(2, 0, 1, 0, 4))
        return self.candidates[:n]


@pytest.fixture(scope="module")
def people_scaffold():
    return Scaffold.build(parse_schema(PEOPLE).resolved, GOOD)


def test_check_prompt(people_scaffold):
    gen = FakeGen(people_scaffold)
    gen.check_prompt(Prompt(pins={"$.city": "Lima"}))
    with pytest.raises(InputError, match=r"pin \$\.city: \"Rome\" is not one of"):
        gen.check_prompt(Prompt(pins={"$.city": "Rome"}))
    with pytest.raises(InputError, match=r"no field '\$\.nope' in the scaffold"):
        gen.check_prompt(Prompt(forbid={"$.nope": [1]}))
    FakeGen(None).check_prompt(Prompt())
    with pytest.raises(InputError, match="need the scaffold"):
        FakeGen(None).check_prompt(Prompt(pins={"$.city": "Lima"}))


def test_fit_and_sample_reports_progress(people_scaffold):
    cands = [Candidate.from_text(json.dumps(r)) for r in GOOD * 3]
    gen = FakeGen(people_scaffold, cands)
    fits, steps = [], []
    res = sampling.fit_and_sample(
        gen, Prompt(), 5, seed=3, on_fit=lambda f, t: fits.append((f, t)), on_step=lambda f, t: steps.append((f, t))
    )
    assert gen.calls == ["fit", ("sample", 5, 3)]
    assert len(res.candidates) == 5 and res.n == 5 and res.seed == 3 and res.scaffold is True
    assert res.fit_report["seconds"] == 0.1 and res.fit_seconds >= 0 and res.sample_seconds >= 0
    assert fits == [(0.5, "Fitting: step 5/10 · loss 1.250"), (1.0, "Fitting: step 10/10 · loss 1.000")]
    fracs = [f for f, _ in steps]
    assert fracs == sorted(fracs) and fracs[-1] == 1.0 and len(fracs) == 6
    assert steps[0][1] == "Sampling: step 1 · batch 1/3"


def test_fit_and_sample_checks_before_fitting(people_scaffold):
    gen = FakeGen(people_scaffold)
    with pytest.raises(InputError, match="pin"):
        sampling.fit_and_sample(gen, Prompt(pins={"$.city": "Rome"}), 5)
    with pytest.raises(InputError, match="number of records must be >= 1"):
        sampling.fit_and_sample(gen, Prompt(), 0)
    assert gen.calls == []


def test_fit_progress_cached():
    assert sampling.fit_progress(Progress("fit", 3, 3, {"cached": True, "loss": 0.5})) == (
        1.0,
        "Model loaded from cache",
    )


def test_generator_inputs_and_build_generator(tmp_path):
    ds = datasets.load_demo("penguins")
    schema_text, seeds_text = sampling.generator_inputs(ds)
    assert list(json.loads(schema_text)["properties"])[:2] == ["species", "island"]  # order kept
    gen = sampling.build_generator(schema_text, seeds_text, scaffold=True, train_steps=25, cache_dir=str(tmp_path))
    assert gen.config.train_steps == 25 and gen.fitted is False
    assert gen.scaffold.slots[0].key == "$.species"
    assert str(gen.cache_path()).startswith(str(tmp_path))
    raw = sampling.build_generator(schema_text, seeds_text, scaffold=False, train_steps=25, cache_dir=str(tmp_path))
    assert raw.scaffold is None
    with pytest.raises(InputError, match="training steps"):
        sampling.build_generator(schema_text, seeds_text, train_steps=0)


def test_model_cache_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path))
    assert sampling.model_cache_dir() == str(tmp_path)
    assert sampling.default_train_steps() >= 20


# ---- results ----------------------------------------------------------------------------------


def test_sample_summary_rows_and_batch():
    schema = parse_schema(PEOPLE)
    cands = [
        Candidate.from_text('{"name": "Zed", "age": 40, "city": "Lima"}'),  # new and valid
        Candidate.from_text(json.dumps(GOOD[0])),  # exact seed copy
        Candidate.from_text('{"age": 40, "city": "Lima", "name": "Zed"}'),  # duplicate of #1 (key order)
        Candidate.from_text('{"name": "Q", "age": -3, "city": "Rome"}'),  # two schema errors
        Candidate.from_text('{"name": '),  # not JSON
        Candidate(text=None, error="$.age: null where the field does not allow it"),  # decode failure
    ]
    summary = sampling.sample_summary(cands, schema, GOOD)
    rows = summary.rows
    assert [r["#"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert set(rows[0]) == {"#", "json", "parsed", "schema_valid", "seed_copy", "duplicate", "dependency", "error"}
    assert rows[0] == {
        "#": 1,
        "json": cands[0].text,
        "parsed": True,
        "schema_valid": True,
        "seed_copy": False,
        "duplicate": False,
        "dependency": "",
        "error": "",
    }
    assert rows[1]["seed_copy"] and not rows[1]["duplicate"]
    assert rows[2]["duplicate"] and not rows[2]["seed_copy"]
    assert rows[3]["schema_valid"] is False and rows[3]["error"] == "$.age: -3 is less than the minimum of 0 (+1 more)"
    assert rows[4]["parsed"] is False and rows[4]["error"].startswith("not valid JSON")
    assert rows[5]["json"] == "" and rows[5]["error"].startswith("$.age: null")
    assert not any(r["seed_copy"] or r["duplicate"] for r in rows[4:])
    b = summary.batch
    assert b["candidates"] == 6
    assert b["valid_json_rate"] == pytest.approx(4 / 6)
    assert b["schema_valid_rate"] == pytest.approx(3 / 6)
    assert b["exact_copy_rate"] == pytest.approx(1 / 6)
    assert b["duplicate_rate"] == pytest.approx(1 / 6)


def test_records_jsonl():
    schema = parse_schema(PEOPLE)
    cands = [
        Candidate.from_text(json.dumps(GOOD[0])),
        Candidate.from_text("{bad"),
        Candidate.from_text('{"name": "Ö", "age": -1}'),
    ]
    text = sampling.records_jsonl(cands)
    assert [json.loads(line) for line in text.splitlines()] == [GOOD[0], {"name": "Ö", "age": -1}]
    assert "Ö" in text and text.endswith("\n")
    assert sampling.records_jsonl(cands, only_valid_for=schema) == json.dumps(GOOD[0]) + "\n"
    assert sampling.records_jsonl([]) == ""


def test_session_defaults_are_fresh_values():
    from ui.state import SESSION_DEFAULTS

    assert SESSION_DEFAULTS["dataset"] is None and SESSION_DEFAULTS["prompt_text"] == ""
    assert {"dataset", "dataset_label", "prompt_text", "sample_result"} <= set(SESSION_DEFAULTS)


def test_seed_fixes_replace_drop_and_recheck():
    from aod_core.studio import datasets

    schema = json.dumps(
        {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
            "required": ["name", "age"],
        }
    ).encode()
    seeds = b'{"name": "a", "age": 1}\n{"name": "b", "age": -2}\n{"name": "c"}\n'
    with pytest.raises(datasets.SeedsInvalid) as info:
        datasets.load_uploaded(schema, "s.json", seeds, "p.jsonl", "stop")
    e = info.value
    rows = datasets.seed_fix_rows(e)
    assert [r["line"] for r in rows] == [2, 3] and "minimum" in rows[0]["problems"]
    # unchanged: still invalid, with every problem
    with pytest.raises(datasets.SeedsInvalid, match="2 record"):
        datasets.apply_seed_fixes(e, rows, "p.jsonl")
    # fix line 2, drop line 3
    ds = datasets.apply_seed_fixes(
        e, [{"line": 2, "record": '{"name": "b", "age": 2}'}, {"line": 3, "record": ""}], "p.jsonl"
    )
    assert ds.seeds.records == [{"name": "a", "age": 1}, {"name": "b", "age": 2}] and ds.seeds.dropped == 1
    with pytest.raises(InputError, match="line 2: the fixed record is not valid JSON"):
        datasets.apply_seed_fixes(e, [{"line": 2, "record": "{oops"}], "p.jsonl")
    with pytest.raises(InputError, match="must be a JSON object"):
        datasets.apply_seed_fixes(e, [{"line": 2, "record": "[1]"}], "p.jsonl")
