"""``aod sample`` in-process (aod_core.cli.main) and once as a real process."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import aod_core.cli
from aod_core.cli import main
from aod_core.data.schema import load_schema

REPO = Path(__file__).resolve().parent.parent
PENGUINS = REPO / "assets" / "penguins"
N_SEEDS = 40


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    # one cache for the module: runs on the same seeds reuse the fitted model
    return tmp_path_factory.mktemp("aod-cache")


@pytest.fixture
def cli(monkeypatch, tmp_path, tiny, model_cache, capsys):
    """Run ``aod`` in-process with a tiny model; returns (exit code, stdout, stderr lines)."""
    monkeypatch.setenv("AOD_CACHE_DIR", str(model_cache))
    # The CLI's embedded generator gets tiny settings by default (as if --gen-opt had been given for
    # each), so `aod sample` fits a small model in about a second; explicit --gen-opt still wins.
    real = aod_core.cli.generator_options

    def tiny_options(args):
        opts = real(args)
        if getattr(args, "generator", "embedded") == "embedded":
            opts = {**dataclasses.asdict(tiny(train_steps=40)), **opts}
        return opts

    monkeypatch.setattr(aod_core.cli, "generator_options", tiny_options)

    def run(*args: str):
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help and usage errors
            code = e.code
        out, err = capsys.readouterr()
        return code, out, err.splitlines()

    return run


@pytest.fixture
def files(tmp_path):
    """Seed and schema files in tmp_path; outputs go to tmp_path/out (empty)."""
    (tmp_path / "out").mkdir()
    seeds = (PENGUINS / "seeds.jsonl").read_text(encoding="utf-8").splitlines()[:N_SEEDS]
    (tmp_path / "seeds.jsonl").write_text("\n".join(seeds) + "\n", encoding="utf-8")
    return tmp_path


def sample_args(files, *extra, schema=None, seeds=None, out=None):
    return [
        "sample",
        "--schema",
        schema or PENGUINS / "schema.json",
        "--seeds",
        seeds or files / "seeds.jsonl",
        "--out",
        out or files / "out" / "records.jsonl",
        *extra,
    ]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ---- happy paths ------------------------------------------------------------------------------


@pytest.mark.slow
def test_sample_writes_valid_records(cli, files):
    out = files / "out" / "records.jsonl"
    code, stdout, err = cli(
        *sample_args(
            files, "--n", "15", "--seed", "3", "--pin", "island=Dream", "--forbid", "sex=null", "--steps", "11"
        )
    )
    assert code == 0, err
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 15
    schema = load_schema(PENGUINS / "schema.json")
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict) and schema.validate(record) == []
        assert record["island"] == "Dream" and record["sex"] is not None
    assert stdout == ""
    assert "wrote 15 records" in err[-1] and "schema-valid 100.0%" in err[-1]
    assert any(line.startswith("fit") for line in err) and any(line.startswith("sample") for line in err)
    assert sorted(p.name for p in out.parent.iterdir()) == ["records.jsonl"]  # no temp files left


@pytest.mark.slow
def test_drop_invalid(cli, files):
    bad = write(
        files / "mixed.jsonl",
        (files / "seeds.jsonl").read_text()
        + json.dumps(
            {
                "species": "Adelie",
                "island": "Dream",
                "bill_length_mm": 10.0,
                "bill_depth_mm": 18.0,
                "flipper_length_mm": 190,
                "body_mass_g": 3500,
                "sex": "male",
                "year": 2008,
            }
        )
        + "\n",
    )
    out = files / "out" / "records.jsonl"
    code, _, err = cli(*sample_args(files, "--n", "5", "--quiet", seeds=bad))
    assert code == 2 and len(err) == 1 and not out.exists()
    assert f"mixed.jsonl:{N_SEEDS + 1}" in err[0] and "bill_length_mm" in err[0]
    code, _, err = cli(*sample_args(files, "--n", "5", "--quiet", "--drop-invalid", seeds=bad))
    assert code == 0, err
    assert "dropped 1 invalid seed" in err[0] and "wrote 5 records" in err[-1]
    assert len(out.read_text().splitlines()) == 5


def test_help(cli):
    code, stdout, _ = cli("--help")
    assert code == 0 and "sample" in stdout
    code, stdout, _ = cli("sample", "--help")
    assert code == 0 and "--schema" in stdout and "--drop-invalid" in stdout


# ---- bad input: exit 2, one line on stderr, no output file ------------------------------------


def _schema_file(files, text):
    return write(files / "schema.json", text)


BAD = {
    "unreadable schema": (lambda f: sample_args(f, schema=f / "missing.json"), "cannot read schema file"),
    "schema not JSON": (lambda f: sample_args(f, schema=_schema_file(f, '{"type": "object",')), "invalid JSON"),
    "schema not an object": (lambda f: sample_args(f, schema=_schema_file(f, "[1, 2]")), "must be a JSON object"),
    "root not an object schema": (
        lambda f: sample_args(f, schema=_schema_file(f, '{"type": "string"}')),
        "root schema must describe an object",
    ),
    "remote $ref": (
        lambda f: sample_args(
            f,
            schema=_schema_file(
                f, json.dumps({"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}})
            ),
        ),
        "not local",
    ),
    "empty seeds": (lambda f: sample_args(f, seeds=write(f / "empty.jsonl", "")), "no records"),
    "seeds not objects (json)": (
        lambda f: sample_args(f, seeds=write(f / "s.json", "[1, 2]")),
        "item 1 is a number, not a JSON object",
    ),
    "seeds not objects (jsonl)": (
        lambda f: sample_args(f, seeds=write(f / "s.jsonl", '["a"]\n')),
        "line 1 is an array, not a JSON object",
    ),
    "csv missing required column": (
        lambda f: sample_args(
            f,
            seeds=write(
                f / "s.csv",
                "species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g,sex\nAdelie,Dream,40.1,18.0,190,3500,male\n",
            ),
        ),
        "missing columns for required properties: year",
    ),
    "invalid seed": (
        lambda f: sample_args(
            f,
            seeds=write(
                f / "s.jsonl",
                json.dumps(
                    {
                        "species": "Emperor",
                        "island": "Dream",
                        "bill_length_mm": 40.0,
                        "bill_depth_mm": 18.0,
                        "flipper_length_mm": 190,
                        "body_mass_g": 3500,
                        "sex": "male",
                        "year": 2008,
                    }
                )
                + "\n",
            ),
        ),
        "$.species",
    ),
    "--n 0": (lambda f: sample_args(f, "--n", "0"), "--n must be >= 1"),
    "output folder missing": (lambda f: sample_args(f, out=f / "nowhere" / "r.jsonl"), "does not exist"),
    "output is a folder": (lambda f: sample_args(f, out=f / "out"), "is a folder"),
    "unknown generator": (lambda f: sample_args(f, "--generator", "gpt-9"), "unknown generator spec 'gpt-9'"),
    "hf model not local": (lambda f: sample_args(f, "--generator", "hf:x/y"), "not found locally"),
    "bad generator option": (lambda f: sample_args(f, "--gen-opt", "d_model"), "expected KEY=VALUE"),
    "pin without =": (lambda f: sample_args(f, "--pin", "island"), "--pin expects PATH=VALUE"),
    "steps 0": (lambda f: sample_args(f, "--steps", "0"), "steps must be >= 1"),
    "threshold > 1": (lambda f: sample_args(f, "--threshold", "2"), "threshold must be in (0, 1]"),
    "unknown argument": (lambda f: sample_args(f, "--frobnicate"), "unrecognized arguments: --frobnicate"),
    "bad remasking": (lambda f: sample_args(f, "--remasking", "sometimes"), "invalid choice"),
    "missing --out": (
        lambda f: ["sample", "--schema", PENGUINS / "schema.json", "--seeds", f / "seeds.jsonl"],
        "the following arguments are required: --out",
    ),
    "no command": (lambda f: [], "required: command"),
    "dependency without arrow": (
        lambda f: sample_args(f, "--ignore-dependency", "species island"),
        "expected 'A -> B' or '(A, B)'",
    ),
    "dependency on a missing field": (
        lambda f: sample_args(f, "--add-dependency", "species -> wings"),
        "no seed has a field $.wings",
    ),
    "bad dependencies mode": (lambda f: sample_args(f, "--dependencies", "maybe"), "invalid choice"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input(cli, files, case):
    make_args, needle = BAD[case]
    code, stdout, err = cli(*make_args(files))
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(("aod: error: ", "aod sample: error: ")) and needle in err[0], err[0]
    assert list((files / "out").iterdir()) == []  # no output, no temp file
    assert not (files / "nowhere").exists()


@pytest.mark.slow
def test_bad_pin_path(cli, files):
    code, _, err = cli(*sample_args(files, "--quiet", "--pin", "birds[0].sex=male"))
    assert code == 2 and len(err) == 1
    assert "no field '$.birds[0].sex'" in err[0] and "$.island" in err[0]
    assert list((files / "out").iterdir()) == []


@pytest.mark.slow
def test_bad_pin_path_is_reported_before_fitting(cli, files, model_cache):
    before = set(model_cache.iterdir())
    code, _, err = cli(
        *sample_args(
            files,
            "--pin",
            "nope=1",
            seeds=write(files / "other.jsonl", (files / "seeds.jsonl").read_text().splitlines()[0] + "\n"),
        )
    )
    assert code == 2
    assert len(err) == 1, err
    assert set(model_cache.iterdir()) == before  # nothing was fitted


@pytest.mark.slow
def test_pin_of_wrong_type_exits_2(cli, files):
    code, _, err = cli(*sample_args(files, "--quiet", "--pin", "year=abc"))
    assert code == 2 and len(err) == 1 and "year" in err[0]


def test_real_process_bad_input(files):
    """``python -m aod_core.cli``: exit status 2 and a single stderr line, no traceback."""
    env = {**os.environ, "AOD_CACHE_DIR": str(files / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "aod_core.cli", *map(str, sample_args(files, schema=files / "missing.json"))],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("aod: error: ") and "missing.json" in lines[0]
    assert list((files / "out").iterdir()) == []


def test_sample_prompt_text_is_compiled_into_the_distribution(cli, files):
    """`--prompt` changes what the embedded DLM samples: the words become pins, forbids, ranges and
    a measured bias."""
    base = [
        "sample",
        "--schema",
        PENGUINS / "schema.json",
        "--seeds",
        files / "seeds.jsonl",
        "--n",
        "200",
        "--compiler",
        "none",
    ]
    code, _, err = cli(*base, "--out", files / "out" / "plain.jsonl")
    assert code == 0
    plain = [json.loads(x) for x in (files / "out" / "plain.jsonl").read_text().splitlines()]
    code, _, err = cli(
        *base,
        "--prompt",
        "only Dream island, no nulls in sex, body mass above 4 kg",
        "--out",
        files / "out" / "dream.jsonl",
    )
    assert code == 0, err
    assert any(line.startswith("compiled the instruction") for line in err)
    assert any('pin island = "Dream"' in line for line in err)
    recs = [json.loads(x) for x in (files / "out" / "dream.jsonl").read_text().splitlines()]
    assert len(recs) == 200 and all(r["island"] == "Dream" and r["sex"] is not None for r in recs)
    assert all(r["body_mass_g"] is None or r["body_mass_g"] > 4000 for r in recs)

    code, _, err = cli(
        *base, "--prompt", "mostly Torgersen penguins, the weather was nice", "--out", files / "out" / "torg.jsonl"
    )
    assert code == 0, err
    assert any("measured" in line for line in err) and any("not mapped: 'the weather was nice'" in line for line in err)
    torg = [json.loads(x) for x in (files / "out" / "torg.jsonl").read_text().splitlines()]
    share = sum(r["island"] == "Torgersen" for r in torg) / len(torg)
    before = sum(r["island"] == "Torgersen" for r in plain) / len(plain)
    assert share > 0.5 and share > before + 0.2, (share, before)

    # --compile off: the text cannot reach this generator, and the CLI says so
    code, _, err = cli(
        *base, "--n", "5", "--prompt", "only Dream island", "--compile", "off", "--out", files / "out" / "off.jsonl"
    )
    assert code == 0 and any("does not read instruction text" in line for line in err)
    code, _, err = cli(*base, "--compile", "sometimes", "--out", files / "out" / "x.jsonl")
    assert code == 2 and "invalid choice" in err[-1]


def test_audit_reports_dependencies_keys_and_copying_against_real_records(cli, tmp_path):
    """``aod audit`` on the countries demo: records that break a dependency and records that reuse a
    seed's (country, year) with nudged numbers are counted, next to the holdout's own figures."""
    demo = PENGUINS.parent / "countries"
    seeds = [json.loads(line) for line in (demo / "seeds.jsonl").read_text().splitlines()]
    broken = [dict(s, iso_num=380 if s["country"] != "Italy" else 392) for s in seeds[:10]]
    nudged = [dict(s, lifeExp=round(s["lifeExp"] + 0.01, 3)) for s in seeds[10:20]]
    records = write(tmp_path / "r.jsonl", "".join(json.dumps(r) + "\n" for r in broken + nudged))
    out = tmp_path / "audit.json"
    code, _, err = cli(
        "audit",
        "--schema",
        demo / "schema.json",
        "--seeds",
        demo / "seeds.jsonl",
        "--records",
        records,
        "--holdout",
        demo / "holdout.jsonl",
        "--out",
        out,
    )
    assert code == 0, err
    a = json.loads(out.read_text())
    assert a["dependency_violation_rate"] == 0.5 and a["dependency_violation_rate_holdout"] == 0.0
    assert a["key_reuse_rate"] == 1.0 and a["key_reuse_rate_holdout"] == 0.0
    assert a["near_copy_rate"] >= 0.5 and a["dcr_closer_than_reference_p05"] >= 0.5
    assert "($.country, $.year)" in a["dependencies"]
    code, _, err = cli(
        "audit",
        "--schema",
        demo / "schema.json",
        "--seeds",
        demo / "seeds.jsonl",
        "--records",
        records,
        "--dependencies",
        "off",
        "--out",
        out,
    )
    a = json.loads(out.read_text())
    assert code == 0 and a["dependency_violation_rate"] == 0.0 and a["key_reuse_rate"] is None
