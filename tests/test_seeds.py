import json

import pytest

from aod_core.data.schema import parse_schema
from aod_core.data.seeds import RecordIssue, check_records, load_dataset, load_records, read_records
from aod_core.errors import InputError

SCHEMA = parse_schema(
    {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "age": {"type": "integer", "minimum": 0},
            "score": {"type": "number"},
            "weight": {"type": ["number", "integer"]},
            "ok": {"type": "boolean"},
            "note": {"type": ["string", "null"]},
            "level": {"enum": [1, 2, "high"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "where": {"type": "object", "properties": {"lat": {"type": "number"}}},
            "day": {"type": "string", "format": "date"},
        },
        "required": ["name", "age"],
        "additionalProperties": False,
    }
)
OPEN = parse_schema({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})
BIRDS = parse_schema(
    {
        "type": "object",
        "properties": {
            "site": {"type": "string"},
            "birds": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"species": {"type": "string"}, "count": {"type": "integer"}},
                    "required": ["species"],
                },
            },
        },
        "required": ["site"],
    }
)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def jsonl(*records):
    return "\n".join(json.dumps(r) for r in records) + "\n"


def raised(fn, *args, **kwargs) -> str:
    with pytest.raises(InputError) as info:
        fn(*args, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_jsonl_skips_blank_lines_and_keeps_line_numbers(tmp_path):
    p = write(tmp_path, "seeds.jsonl", '{"name": "a", "age": 1}\n\n  \n{"name": "b", "age": 2}\r\n')
    records, lines = read_records(p, SCHEMA)
    assert records == [{"name": "a", "age": 1}, {"name": "b", "age": 2}] and lines == [1, 4]
    assert read_records(write(tmp_path, "s.ndjson", '{"name": "a", "age": 1}'), SCHEMA)[1] == [1]


def test_jsonl_invalid_line(tmp_path):
    p = write(tmp_path, "seeds.jsonl", '{"name": "a", "age": 1}\n{"name": "b", age: 2}\n')
    msg = raised(read_records, p, SCHEMA)
    assert str(p) in msg and "line 2" in msg and "not valid JSON" in msg and "column 15" in msg
    p = write(tmp_path, "nan.jsonl", '{"name": "a", "age": NaN}\n')
    assert "line 1" in raised(read_records, p, SCHEMA)


@pytest.mark.parametrize(
    "line, kind", [("[1, 2]", "an array"), ('"x"', "a string"), ("3", "a number"), ("null", "null")]
)
def test_jsonl_non_object_record(tmp_path, line, kind):
    p = write(tmp_path, "seeds.jsonl", f'{{"name": "a", "age": 1}}\n\n{line}\n')
    msg = raised(read_records, p, SCHEMA)
    assert str(p) in msg and f"line 3 is {kind}, not a JSON object" in msg


def test_json_array(tmp_path):
    p = write(tmp_path, "seeds.json", json.dumps([{"name": "a", "age": 1}, {"name": "b", "age": 2}], indent=2))
    assert read_records(p, SCHEMA) == ([{"name": "a", "age": 1}, {"name": "b", "age": 2}], [1, 2])


def test_json_errors(tmp_path):
    p = write(tmp_path, "seeds.json", '{"name": "a", "age": 1}')
    assert "expected an array" in raised(read_records, p, SCHEMA)
    p = write(tmp_path, "seeds.json", '[{"name": "a"}, [1]]')
    msg = raised(read_records, p, SCHEMA)
    assert str(p) in msg and "item 2 is an array, not a JSON object" in msg
    p = write(tmp_path, "seeds.json", '[\n  {"name": "a"},\n  {"name": }\n]')
    msg = raised(read_records, p, SCHEMA)
    assert "line 3, column 12" in msg


@pytest.mark.parametrize(
    "name, text",
    [
        ("seeds.jsonl", ""),
        ("seeds.jsonl", "\n \n"),
        ("seeds.json", ""),
        ("seeds.json", "[]"),
        ("seeds.csv", ""),
        ("seeds.csv", "name,age\n"),
    ],
)
def test_empty_file(tmp_path, name, text):
    p = write(tmp_path, name, text)
    msg = raised(read_records, p, SCHEMA)
    assert "no records" in msg and str(p) in msg


def test_unsupported_extension_and_missing_file(tmp_path):
    msg = raised(read_records, write(tmp_path, "seeds.txt", "x"), SCHEMA)
    assert "'.txt'" in msg and ".jsonl" in msg and ".csv" in msg
    msg = raised(read_records, tmp_path / "gone.jsonl", SCHEMA)
    assert "gone.jsonl" in msg and "cannot read" in msg


def test_csv_coercion(tmp_path):
    text = (
        "\ufeffage,name,score,weight,ok,note,level,tags,where,day\n"
        '3,Ann,2,4.0,yes,,2,"[""a"", ""b""]","{""lat"": 1.5}",2024-01-02\n'
        "3.0,Bob,2.5,4.5,FALSE,hi,high,[],{},2024-01-03\n"
        "7,Cy,,,1,,,,,\n"
    )
    records, lines = read_records(write(tmp_path, "seeds.csv", text), SCHEMA)
    assert lines == [2, 3, 4]
    a, b, c = records
    assert a == {
        "age": 3,
        "name": "Ann",
        "score": 2.0,
        "weight": 4,
        "ok": True,
        "note": None,
        "level": 2,
        "tags": ["a", "b"],
        "where": {"lat": 1.5},
        "day": "2024-01-02",
    }
    assert type(a["age"]) is int and type(a["score"]) is float and type(a["weight"]) is int
    assert b == {
        "age": 3,
        "name": "Bob",
        "score": 2.5,
        "weight": 4.5,
        "ok": False,
        "note": "hi",
        "level": "high",
        "tags": [],
        "where": {},
        "day": "2024-01-03",
    }
    assert type(b["age"]) is int
    # empty cells: null where allowed, otherwise the key is left out
    assert c == {"age": 7, "name": "Cy", "ok": True, "note": None}
    assert check_records(records, lines, SCHEMA, "seeds.csv") == []


def test_csv_uncoercible_cells_are_reported_by_validation(tmp_path):
    text = "name,age,ok,tags,level\n,3.5,maybe,not json,3\nZed,-1,0,{},1\n"
    p = write(tmp_path, "seeds.csv", text)
    records, lines = read_records(p, SCHEMA)
    assert records[0] == {"age": "3.5", "ok": "maybe", "tags": "not json", "level": "3"}
    assert records[1] == {"name": "Zed", "age": -1, "ok": False, "tags": "{}", "level": 1}
    issues = check_records(records, lines, SCHEMA, "seeds.csv")
    assert [(i.line, i.path) for i in issues] == [
        (2, "$"),
        (2, "$.age"),
        (2, "$.level"),
        (2, "$.ok"),
        (2, "$.tags"),
        (3, "$.age"),
        (3, "$.tags"),
    ]
    assert issues[0].message == "'name' is a required property"
    assert issues[1].message == "'3.5' is not of type 'integer'"


def test_csv_multiline_cell_line_numbers(tmp_path):
    p = write(tmp_path, "seeds.csv", 'name,age\n"two\nlines",1\nb,2\n')
    records, lines = read_records(p, SCHEMA)
    assert records[0]["name"] == "two\nlines" and lines == [3, 4]


def test_csv_missing_required_column(tmp_path):
    p = write(tmp_path, "seeds.csv", "score,ok\n1,true\n")
    msg = raised(read_records, p, SCHEMA)
    assert str(p) in msg and "missing columns" in msg and "name, age" in msg


def test_csv_extra_columns(tmp_path):
    p = write(tmp_path, "seeds.csv", "name,age,colour,size\nA,1,red,2\n")
    msg = raised(read_records, p, SCHEMA)
    assert "additionalProperties is false" in msg and "colour, size" in msg and str(p) in msg
    # allowed when the schema does not forbid extra properties: kept as text, empty cells omitted
    p = write(tmp_path, "open.csv", "colour,name,size\nred,A,\n")
    assert read_records(p, OPEN) == ([{"colour": "red", "name": "A"}], [2])


def test_csv_row_with_too_many_cells(tmp_path):
    p = write(tmp_path, "seeds.csv", "name,age\nA,1\nB,2,3\n")
    msg = raised(read_records, p, SCHEMA)
    assert "line 3" in msg and "more cells" in msg


def test_stop_policy_reports_first_issue_and_counts(tmp_path):
    p = write(
        tmp_path,
        "seeds.jsonl",
        jsonl(
            {"site": "a", "birds": [{"species": "x", "count": 1}]},
            {"site": "b", "birds": [{"species": "x"}, {"count": "2"}]},
            {"birds": []},
        ),
    )
    with pytest.raises(InputError) as info:
        load_records(p, BIRDS)
    msg = str(info.value)
    assert msg == (
        f"{p}:2: $.birds[1]: 'species' is a required property (and 2 more problems in 2 records; drop invalid records to continue)"
    )
    assert info.value.where == f"{p}:2"


def test_stop_policy_single_issue_has_no_suffix(tmp_path):
    p = write(tmp_path, "seeds.jsonl", jsonl({"site": 1}))
    assert raised(load_records, p, BIRDS) == f"{p}:1: $.site: 1 is not of type 'string'"


def test_drop_policy_keeps_valid_and_all_issues(tmp_path):
    p = write(
        tmp_path,
        "seeds.json",
        json.dumps(
            [{"site": "a"}, {"site": "b", "birds": [{"species": 3, "count": 1.5}]}, {"site": "c", "birds": []}, {}]
        ),
    )
    rs = load_records(p, BIRDS, on_invalid="drop")
    assert rs.records == [{"site": "a"}, {"site": "c", "birds": []}]
    assert rs.lines == [1, 3] and rs.dropped == 2 and rs.source == str(p)
    assert [(i.line, i.path) for i in rs.issues] == [(2, "$.birds[0].count"), (2, "$.birds[0].species"), (4, "$")]
    assert str(rs.issues[2]) == f"{p}:4: $: 'site' is a required property"


def test_valid_records_have_no_issues(tmp_path):
    p = write(tmp_path, "seeds.jsonl", jsonl({"site": "a"}, {"site": "b", "birds": []}))
    rs = load_records(p, BIRDS)
    assert rs.records == [{"site": "a"}, {"site": "b", "birds": []}]
    assert rs.issues == [] and rs.dropped == 0 and rs.lines == [1, 2]


def test_drop_policy_all_invalid(tmp_path):
    p = write(tmp_path, "holdout.jsonl", jsonl({"site": 1}, {}))
    msg = raised(load_records, p, BIRDS, on_invalid="drop", what="holdout records")
    assert f"no valid holdout records in {p} (2 invalid" in msg and "$.site" in msg


def test_record_issue_str():
    assert str(RecordIssue("s.jsonl", 3, "$.a", "bad")) == "s.jsonl:3: $.a: bad"


SCHEMA_TEXT = json.dumps({"type": "object", "properties": {"site": {"type": "string"}}, "required": ["site"]})


def test_load_dataset(tmp_path):
    write(tmp_path, "schema.json", SCHEMA_TEXT)
    write(tmp_path, "seeds.csv", "site\nfrom-csv\n")
    ds = load_dataset(tmp_path)
    assert ds.seeds.records == [{"site": "from-csv"}] and ds.holdout is None
    assert ds.folder == str(tmp_path) and ds.schema.source.endswith("schema.json")
    write(tmp_path, "seeds.json", '[{"site": "from-json"}]')
    assert load_dataset(tmp_path).seeds.records == [{"site": "from-json"}]
    write(tmp_path, "seeds.jsonl", jsonl({"site": "from-jsonl"}, {"site": 2}))
    write(tmp_path, "holdout.jsonl", jsonl({"site": "h"}, {}))
    msg = raised(load_dataset, tmp_path)
    assert "seeds.jsonl:2: $.site" in msg
    ds = load_dataset(tmp_path, on_invalid="drop")
    assert ds.seeds.records == [{"site": "from-jsonl"}] and ds.seeds.dropped == 1
    assert ds.holdout.records == [{"site": "h"}] and ds.holdout.dropped == 1
    assert ds.holdout.source.endswith("holdout.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "holdout.jsonl",
        "schema.json",
        "seeds.csv",
        "seeds.json",
        "seeds.jsonl",
    ]


def test_load_dataset_missing_files(tmp_path):
    msg = raised(load_dataset, tmp_path / "nope")
    assert "nope" in msg and "not found" in msg
    msg = raised(load_dataset, tmp_path)
    assert "schema.json" in msg and "seeds.jsonl" in msg and "seeds.csv" in msg
    write(tmp_path, "seeds.jsonl", jsonl({"site": "a"}))
    msg = raised(load_dataset, tmp_path)
    assert "missing schema.json" in msg and "seeds file" not in msg
    (tmp_path / "seeds.jsonl").unlink()
    write(tmp_path, "schema.json", SCHEMA_TEXT)
    msg = raised(load_dataset, tmp_path)
    assert "schema.json" not in msg.replace(str(tmp_path), "") and "seeds.jsonl" in msg
