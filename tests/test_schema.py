import json

import pytest

from aod_core.data.schema import SchemaNote, json_path, load_schema, parse_schema
from aod_core.errors import InputError

BIRDS = {
    "type": "object",
    "properties": {
        "site": {"type": "string", "minLength": 1, "title": "Site"},
        "date": {"type": "string", "format": "date"},
        "birds": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "species": {"type": "string", "pattern": "^[A-Z]"},
                    "count": {"type": "integer", "minimum": 1},
                },
                "required": ["species", "count"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["site", "birds"],
}


def error_of(obj, source="s.json") -> str:
    with pytest.raises(InputError) as info:
        parse_schema(obj, source)
    text = str(info.value)
    assert "\n" not in text and info.value.where == source
    return text


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_draft_detection():
    assert parse_schema(BIRDS).draft == "2020-12"
    s = parse_schema({**BIRDS, "$schema": "https://json-schema.org/draft/2020-12/schema"})
    assert s.draft == "2020-12"
    s = parse_schema({**BIRDS, "$schema": "http://json-schema.org/draft-07/schema#"})
    assert s.draft == "draft-07"
    for uri, draft in (
        ("http://json-schema.org/draft-04/schema#", "draft-04"),
        ("http://json-schema.org/draft-06/schema", "draft-06"),
        ("https://json-schema.org/draft/2019-09/schema", "2019-09"),
        ("http://json-schema.org/schema#", "2020-12"),
    ):
        assert parse_schema({**BIRDS, "$schema": uri}).draft == draft
    msg = error_of({**BIRDS, "$schema": "http://json-schema.org/draft-03/schema#"})
    assert "draft-03" in msg and "draft-04" in msg and "2020-12" in msg
    own = parse_schema({**BIRDS, "$schema": "https://example.com/my-meta.json"})
    assert own.draft == "2020-12" and [n.keyword for n in own.notes] == ["$schema"]


def test_draft07_validator_semantics():
    # exclusiveMinimum is a number in draft-07 and in 2020-12, a boolean only in draft-04
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"n": {"type": "integer", "exclusiveMinimum": 0}, "d": {"type": "string", "format": "date"}},
    }
    s = parse_schema(schema)
    assert s.is_valid({"n": 1, "d": "2024-02-29"})
    assert s.validate({"n": 0, "d": "2023-02-30"}) == [
        ("$.d", "'2023-02-30' is not a 'date'"),
        ("$.n", "0 is less than or equal to the minimum of 0"),
    ]


def test_fully_supported_schema_has_no_notes(tmp_path):
    s = load_schema(write(tmp_path, "schema.json", json.dumps(BIRDS)))
    assert s.notes == []
    assert s.source.endswith("schema.json") and s.raw == BIRDS and s.resolved == BIRDS


def test_local_refs_are_inlined_2020_12():
    schema = {
        "type": "object",
        "$defs": {
            "count": {"type": "integer", "minimum": 0},
            "bird": {"type": "object", "properties": {"n": {"$ref": "#/$defs/count"}}},
            "flock": {"type": "array", "items": {"$ref": "#/$defs/bird"}},
        },
        "properties": {
            "a": {"$ref": "#/$defs/flock"},
            "b": {"$ref": "#/$defs/flock"},
            "c": {"$ref": "#/$defs/count", "description": "extra", "maximum": 9},
        },
    }
    s = parse_schema(schema)
    bird = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}
    assert s.resolved["properties"]["a"] == {"type": "array", "items": bird}
    assert s.resolved["properties"]["b"] == s.resolved["properties"]["a"]
    assert s.resolved["properties"]["a"] is not s.resolved["properties"]["b"]
    assert s.resolved["properties"]["c"] == {"type": "integer", "minimum": 0, "description": "extra", "maximum": 9}
    assert "$defs" not in s.resolved and "$ref" not in json.dumps(s.resolved)
    assert s.raw == schema  # the raw schema is left alone
    assert s.notes == []
    assert s.validate({"a": [{"n": -1}], "c": 10}) == [
        ("$.a[0].n", "-1 is less than the minimum of 0"),
        ("$.c", "10 is greater than the maximum of 9"),
    ]


def test_conflicting_ref_sibling_goes_into_allof_note():
    schema = {
        "type": "object",
        "$defs": {"n": {"type": "integer", "maximum": 5}},
        "properties": {"x": {"$ref": "#/$defs/n", "maximum": 3}},
    }
    s = parse_schema(schema)
    assert s.resolved["properties"]["x"] == {"type": "integer", "maximum": 3}
    assert s.notes == []
    two = {
        "type": "object",
        "$defs": {"s": {"type": "string", "pattern": "^a"}},
        "properties": {"x": {"$ref": "#/$defs/s", "pattern": "b$"}},
    }
    s = parse_schema(two)
    assert s.resolved["properties"]["x"] == {"type": "string", "pattern": "^a", "allOf": [{"pattern": "b$"}]}
    assert [(n.path, n.keyword) for n in s.notes] == [("/properties/x", "allOf")]


def test_draft07_definitions_and_ignored_siblings():
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {
            "name": {"type": "string", "maxLength": 5},
            "person": {"type": "object", "properties": {"name": {"$ref": "#/definitions/name"}}},
        },
        "$ref": "#/definitions/root",
    }
    schema["definitions"]["root"] = {
        "type": "object",
        "properties": {"who": {"$ref": "#/definitions/person", "minProperties": 1}},
    }
    s = parse_schema(schema)
    assert s.resolved == {
        "type": "object",
        "properties": {"who": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 5}}}},
    }
    assert [(n.path, n.keyword) for n in s.notes] == [("/properties/who", "minProperties")]
    assert "ignored" in s.notes[0].message
    assert s.validate({"who": {"name": "too long"}}) == [("$.who.name", "'too long' is too long")]


def test_ref_by_anchor():
    schema = {
        "type": "object",
        "$defs": {"c": {"$anchor": "code", "type": "string"}},
        "properties": {"x": {"$ref": "#code"}},
    }
    assert parse_schema(schema).resolved["properties"]["x"] == {"$anchor": "code", "type": "string"}


@pytest.mark.parametrize("ref", ["https://example.com/bird.json", "other.json#/$defs/x"])
def test_remote_ref_is_an_error(ref):
    schema = {"type": "object", "properties": {"b": {"type": "array", "items": {"$ref": ref}}}}
    msg = error_of(schema)
    assert ref in msg and "/properties/b/items" in msg and "never fetched" in msg


def test_remote_ref_in_unused_defs_is_an_error():
    schema = {**BIRDS, "$defs": {"x": {"$ref": "http://example.com/x"}}}
    assert "/$defs/x" in error_of(schema)


def test_unresolvable_local_ref():
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    msg = error_of(schema)
    assert "unresolvable" in msg and "#/$defs/missing" in msg and "/properties/a" in msg


@pytest.mark.parametrize(
    "defs, prop",
    [
        (
            {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}},
            {"$ref": "#/$defs/node"},
        ),
        ({}, {"type": "array", "items": {"$ref": "#"}}),
    ],
)
def test_recursive_ref_stays_a_ref_into_resolved_defs(defs, prop):
    schema = {"type": "object", "$defs": defs, "properties": {"p": prop}}
    s = parse_schema(schema)
    text = json.dumps(s.resolved)
    assert '"$ref": "#/$defs/' in text and s.resolved["$defs"]
    # the resolved form is a valid 2020-12 schema that accepts what the original accepts
    from aod_core.data.schema import resolved_validator

    record = {"p": {"kids": [{"kids": []}]}} if defs else {"p": [{"p": [{"p": []}]}]}
    assert s.is_valid(record) and resolved_validator(s.resolved).is_valid(record)


def test_reference_loop_without_a_schema_is_an_error():
    schema = {
        "type": "object",
        "$defs": {"a": {"$ref": "#/$defs/b"}, "b": {"$ref": "#/$defs/a"}},
        "properties": {"p": {"$ref": "#/$defs/a"}},
    }
    assert "refers to itself" in error_of(schema)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "array", "items": {"type": "string"}},
        {"type": "object"},
        {"properties": {"a": {"type": "string"}}},
        {"type": ["string", "null"], "properties": {"a": {"type": "string"}}},
    ],
)
def test_root_must_be_an_object_schema(schema):
    assert "root schema must describe an object" in error_of(schema)


def test_root_type_list_with_object_is_fine():
    parse_schema({"type": ["object", "null"], "properties": {"a": {"type": "string"}}})


def test_root_not_a_json_object():
    assert "must be a JSON object" in error_of([1, 2])


def test_meta_schema_failure_names_pointer():
    schema = {"type": "object", "properties": {"age": {"type": "integr"}}}
    msg = error_of(schema)
    assert "not a valid 2020-12 JSON Schema" in msg and "/properties/age/type" in msg
    assert "'integr'" in msg
    d7 = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "properties": {"a": {"type": "string", "minLength": -1}},
    }
    msg = error_of(d7)
    assert "draft-07" in msg and "/properties/a/minLength" in msg


def test_invalid_json_names_line_and_column(tmp_path):
    p = write(tmp_path, "schema.json", '{\n  "type": "object",\n  "properties": {,}\n}')
    with pytest.raises(InputError) as info:
        load_schema(p)
    msg = str(info.value)
    assert str(p) in msg and "line 3, column 18" in msg and "\n" not in msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError) as info:
        load_schema(tmp_path / "nope.json")
    assert "nope.json" in str(info.value) and "cannot read" in str(info.value)


def test_notes_for_unsupported_keywords():
    schema = {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "v6": {"type": "string", "format": "ipv6"},
            "tags": {"type": "array", "uniqueItems": True, "items": {"type": "string"}},
            "qty": {"type": "number", "multipleOf": 0.5},
            "kind": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]},
            "meta": {
                "type": "object",
                "properties": {},
                "additionalProperties": {"type": "string"},
                "patternProperties": {"^x": {"type": "integer", "not": {"const": 3}}},
            },
            "free": {"description": "anything"},
        },
        "minProperties": 2,
    }
    s = parse_schema(schema)
    got = {(n.path, n.keyword) for n in s.notes}
    assert got == {
        ("/properties/v6", "format"),
        ("/properties/tags", "uniqueItems"),
        ("/properties/meta/patternProperties/^x", "not"),
        ("/properties/free", "type"),
        ("", "minProperties"),
    }
    by_key = {(n.path, n.keyword): n for n in s.notes}
    fmt = by_key[("/properties/v6", "format")]
    assert '"ipv6"' in fmt.message and "draws such values from the seeds" in fmt.message
    assert "not enforced by the scaffold" in by_key[("/properties/tags", "uniqueItems")].message
    assert "'free'" in by_key[("/properties/free", "type")].message
    assert str(by_key[("", "minProperties")]).startswith("/: keyword 'minProperties'")
    assert all("\n" not in str(n) for n in s.notes)


def test_property_with_enum_or_const_needs_no_type():
    s = parse_schema({"type": "object", "properties": {"a": {"enum": [1, "x"]}, "b": {"const": 2}}})
    assert s.notes == []


def test_schema_note_str():
    assert str(SchemaNote("/properties/a", "x", "msg")) == "/properties/a: msg"
    assert str(SchemaNote("", "x", "msg")) == "/: msg"


def test_property_names_that_look_like_keywords_are_not_keywords():
    schema = {
        "type": "object",
        "properties": {"$ref": {"type": "string"}, "enum": {"type": "integer"}, "default": {"type": "boolean"}},
    }
    s = parse_schema(schema)
    assert s.resolved == schema and s.notes == []
    assert s.validate({"$ref": 1}) == [('$["$ref"]', "1 is not of type 'string'")]


def test_validate_paths_nested_arrays_of_objects():
    s = parse_schema(BIRDS)
    record = {
        "site": "",
        "birds": [{"species": "Robin", "count": 2}, {"species": "wren", "count": 0, "colour": "brown"}, {"count": "3"}],
        "date": "2024-13-01",
    }
    errors = s.validate(record)
    assert errors == [
        ("$.birds[1]", "Additional properties are not allowed ('colour' was unexpected)"),
        ("$.birds[1].count", "0 is less than the minimum of 1"),
        ("$.birds[1].species", "'wren' does not match '^[A-Z]'"),
        ("$.birds[2]", "'species' is a required property"),
        ("$.birds[2].count", "'3' is not of type 'integer'"),
        ("$.date", "'2024-13-01' is not a 'date'"),
        ("$.site", "'' should be non-empty"),
    ]
    assert not s.is_valid(record)
    assert s.is_valid({"site": "x", "birds": [{"species": "Robin", "count": 2}]})
    assert s.validate({"site": "x", "birds": [{"species": "Robin", "count": 2}]}) == []


def test_validate_sorts_indices_numerically():
    s = parse_schema({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "integer"}}}})
    xs = [0] * 12
    xs[2] = xs[10] = "x"
    assert [p for p, _ in s.validate({"xs": xs})] == ["$.xs[2]", "$.xs[10]"]


def test_json_path():
    assert json_path([]) == "$"
    assert json_path(["birds", 0, "species"]) == "$.birds[0].species"
    assert json_path(["a b", "é", "_ok1", "1x"]) == '$["a b"]["é"]._ok1["1x"]'
