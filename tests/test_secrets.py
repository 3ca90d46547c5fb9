"""Secrets: a key typed into a model URL reaches no file the product writes, a planted cache file
is never read (test_plausibility.py), and resuming someone else's run does not send your key to
their server without asking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aod_core import cli
from aod_core.chat.endpoints import UntrustedEndpoint, check_resume, endpoints, normalise
from aod_core.data.schema import load_schema
from aod_core.data.seeds import load_records
from aod_core.runs.setup import RunConfig, _check_fingerprint, create_run_from
from aod_core.runs.store import IterationLog, RunStore
from aod_core.secrets import scrub, strip_credentials

PENGUINS = Path(__file__).resolve().parent.parent / "assets" / "penguins"
KEY = "sk-live-0123456789abcdef"
URL = f"http://aoduser7:{KEY}@127.0.0.1:9/v1"
SPEC = f"openai:gpt-4o-mini@{URL}"


@pytest.mark.parametrize(
    "text, want",
    [
        (SPEC, "openai:gpt-4o-mini@http://127.0.0.1:9/v1"),
        (f"cannot connect to {URL}: refused", "cannot connect to http://127.0.0.1:9/v1: refused"),
        ("https://tok@example.org/x", "https://example.org/x"),
        (f"https://h/v1?api_key={KEY}&x=1", "https://h/v1?api_key=<redacted>&x=1"),
        (f"https://h/v1?x=1&token={KEY}", "https://h/v1?x=1&token=<redacted>"),
        ("aoduser7@example.org and 3 = 3", "aoduser7@example.org and 3 = 3"),  # no URL: untouched
    ],
)
def test_credentials_are_stripped(text, want):
    assert strip_credentials(text) == want and KEY not in strip_credentials(text)


def test_scrub_walks_values_and_keys():
    got = scrub({"optimizer": SPEC, "nested": [{"api_key": KEY}, URL], "n": 3})
    assert KEY not in json.dumps(got) and got["n"] == 3 and got["nested"][0]["api_key"] == "<redacted>"


def _run(tmp_path, iterations: int = 1) -> RunStore:
    schema = load_schema(PENGUINS / "schema.json")
    seeds = load_records(PENGUINS / "seeds.jsonl", schema).records
    config = RunConfig(optimizer=SPEC, judge="embedded", compiler=SPEC)
    config.loop.iterations = iterations
    return create_run_from(schema, seeds, tmp_path / "run", config)


def test_a_key_in_a_model_url_reaches_no_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "config"))
    store = _run(tmp_path)
    # What a run writes after its first fit and when it fails: the fingerprint (with the specs) and
    # an error quoting the server's URL.
    _check_fingerprint(store, {"chat": {"optimizer": {"spec": SPEC}}}, None)
    store.commit(IterationLog(0, accepted=[{"species": "Adelie"}], metrics={"reward": 0.5}))
    store.set_status("failed", error=f"cannot connect to {URL}")
    store.release()
    assert _check_fingerprint(store, {"chat": {"optimizer": {"spec": SPEC}}}, None) == []  # same run, no change
    report, export = tmp_path / "report.html", tmp_path / "out.csv"
    assert cli.main(["report", str(store.path), "--out", str(report)]) == 0
    assert cli.main(["export", str(store.path), "--format", "csv", "--out", str(export)]) == 0
    written = [p for p in store.path.rglob("*") if p.is_file()] + [report, export]
    assert len(written) > 8
    for p in written:
        data = p.read_bytes()
        assert KEY.encode() not in data and b"aoduser7" not in data, p
    assert "openai:gpt-4o-mini@http://127.0.0.1:9/v1" in store.config["optimizer"]  # the server is kept
    # Errors on the terminal are stripped too.
    capsys.readouterr()
    argv = ["run", "--schema", str(PENGUINS / "schema.json"), "--seeds", str(PENGUINS / "seeds.jsonl")]
    argv += ["--out", str(tmp_path / "r2"), "--optimizer", SPEC.replace("http:", "ftp:")]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "base URL must start with http" in err and KEY not in err


def test_resuming_someone_elses_run_asks_before_sending_the_key(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    store = _run(tmp_path, iterations=2)
    store.commit(IterationLog(0, accepted=[], metrics={"reward": 0.5}))  # one of its two iterations is done
    store.release()
    config = store.config
    assert endpoints(config) == ["http://127.0.0.1:9/v1"]
    monkeypatch.setenv("OPENAI_API_KEY", "sk-mine")
    check_resume(config)  # the user's own run: its server was trusted when they started it
    # The same folder from someone else: its servers are new to this user.
    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "other-user"))
    before = (store.path / "state.json").read_bytes()
    assert cli.main(["resume", str(store.path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "http://127.0.0.1:9/v1" in err and "--trust-endpoint" in err
    assert (store.path / "state.json").read_bytes() == before  # refused before anything
    with pytest.raises(UntrustedEndpoint):
        check_resume(config, api_key="sk-session")  # the app: a session's key counts too
    monkeypatch.delenv("OPENAI_API_KEY")
    check_resume(config)  # no key would be sent: nothing to ask
    monkeypatch.setenv("OPENAI_API_KEY", "sk-mine")
    monkeypatch.setattr(cli, "_drive", lambda store, args: 0)  # the loop itself is not under test here
    assert cli.main(["resume", str(store.path), "--quiet", "--trust-endpoint"]) == 0  # confirmed ...
    check_resume(config)  # ... and remembered
    store.commit(IterationLog(1, accepted=[], metrics={"reward": 0.5}))
    store.release()
    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "fourth-user"))
    assert cli.main(["resume", str(store.path), "--quiet"]) == 0  # finished: nothing would be sent
    monkeypatch.setenv("AOD_CONFIG_DIR", str(tmp_path / "third-user"))
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1/")
    check_resume(config)  # the server the user configured is trusted


def test_endpoints_compare_without_credentials_or_default_ports():
    assert normalise("HTTPS://U:P@Api.Example.org/v1/") == normalise("https://api.example.org:443/v1")
    assert normalise("http://h/v1") != normalise("http://h:8080/v1")
