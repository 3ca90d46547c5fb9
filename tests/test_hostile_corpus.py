"""The hostile-input corpus (issue 28; cases and their expected lines in ``tests/hostile/make_corpus.py``)
run through ``aod`` in process, one test per case.

A refused case must: exit 2; print exactly one line on stderr, ``aod: error: ...``, matching the
case's expected message, and nothing on stdout; leave every file of the corpus as it was (no output
file, no half-written folder, a damaged run folder untouched) and create nothing outside it; never
reach a model's fit (checks come before work); and finish within ``CASE_TIMEOUT_S``, so a hang fails
the case instead of blocking the suite. ``tests/test_hostile.py`` holds the earlier cases (bad
seeds and schemas, limits, ``$ref``s, CSV cells, injected text); none is repeated here.

Valid inputs the strict readers must read, not refuse, are checked for their figures.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from aod_core import cli
from aod_core.runs.lock import LOCK_NAME

sys.path.insert(0, str(Path(__file__).resolve().parent / "hostile"))
from make_corpus import Case, write_corpus  # noqa: E402

CASE_TIMEOUT_S = 30
PREFIX = "aod: error: "

# The case ids for parametrizing; the session fixture below writes the corpus the tests read.
with tempfile.TemporaryDirectory() as _d:
    _cases, _valid = write_corpus(_d)
    CASE_IDS = [c.id for c in _cases]
    VALID_IDS = [v.id for v in _valid]


class Corpus:
    def __init__(self, root: Path) -> None:
        self.root = root
        cases, valid = write_corpus(root)
        self.cases = {c.id: c for c in cases}
        self.valid = {v.id: v for v in valid}


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return Corpus(tmp_path_factory.mktemp("hostile") / "corpus")


@pytest.fixture
def writes_stay_in(monkeypatch):
    """``os.replace`` (how every output is put in place) refuses a target outside the corpus's
    temporary folders, so a case whose path check regressed fails instead of replacing /dev/full."""
    real = os.replace
    allowed = (tempfile.gettempdir(),)

    def replace(src, dst, *a, **k):
        if not os.path.abspath(os.fsdecode(dst)).startswith(allowed):
            raise AssertionError(f"a refused case tried to write {dst}")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", replace)


@pytest.fixture
def no_fit(monkeypatch):
    """A case that reaches a generator's fit fails: every check must come before the work."""
    from aod_core.generators import ar, base

    def fit(self, *a, **k):
        raise AssertionError(f"{type(self).__name__}.fit was reached: the input was not refused before the work")

    monkeypatch.setattr(base.CachedFit, "fit", fit)
    monkeypatch.setattr(ar.ARGenerator, "fit", fit)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root`` with its kind, and a file's size, inode and modification time
    (a folder's own times change when a path check probes it, so they are left out)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            kind = stat.S_IFMT(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                out[p] = (kind,)
            elif name == LOCK_NAME:  # a resume refused after its claim leaves the lock file as it was, but touched
                out[p] = (kind, st.st_size, st.st_ino)
            else:
                out[p] = (kind, st.st_size, st.st_ino, st.st_mtime_ns)
    return out


def run_cli(argv: list[str], capsys) -> tuple[object, str, str]:
    """``cli.main(argv)`` in a thread joined with a timeout: (exit code, stdout, stderr)."""
    result: dict[str, object] = {}

    def target() -> None:
        try:
            result["rc"] = cli.main(argv)
        except SystemExit as e:  # argparse's usage errors
            result["rc"] = e.code
        except BaseException as e:  # reported below with the case
            result["error"] = e

    capsys.readouterr()
    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(CASE_TIMEOUT_S)
    out, err = capsys.readouterr()
    if t.is_alive():
        pytest.fail(f"did not finish within {CASE_TIMEOUT_S} s: aod {' '.join(argv)}")
    if "error" in result:
        raise result["error"]
    return result["rc"], out, err


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_refused_with_one_line_before_any_work(case_id, corpus, monkeypatch, capsys, no_fit, writes_stay_in, tmp_path):
    case: Case = corpus.cases[case_id]
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "models"))
    for k, v in case.env.items():
        monkeypatch.setenv(k, v)
    before = snapshot(corpus.root)
    rc, out, err = run_cli(case.argv, capsys)
    assert rc == 2, f"exit {rc}; stderr: {err!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected one line on stderr, got {lines!r}"
    assert lines[0].startswith(PREFIX) and "Traceback" not in err, lines[0]
    assert re.search(case.expect, lines[0][len(PREFIX) :]), f"{lines[0]!r} does not match {case.expect!r}"
    assert out == ""
    after = snapshot(corpus.root)
    assert after == before, f"the corpus changed: {sorted(set(after.items()) ^ set(before.items()))[:4]}"
    for p in case.outputs:
        assert not os.path.exists(p), f"{p} was written"
    assert not (tmp_path / "models").exists()  # nothing fitted, nothing cached


@pytest.mark.parametrize("valid_id", VALID_IDS)
def test_strict_reading_counts_what_it_refuses_as_invalid(valid_id, corpus, monkeypatch, capsys, tmp_path):
    from aod_core.eval import embedder

    v = corpus.valid[valid_id]
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "models"))
    # The figures checked do not depend on sentence embeddings, and loading the model takes seconds.
    monkeypatch.setattr(embedder, "available", lambda: False)
    monkeypatch.setattr(embedder, "load", lambda device=None: None)
    rc, _out, err = run_cli(v.argv, capsys)
    assert rc == 0, err
    text = Path(v.out).read_text(encoding="utf-8")
    if v.command == "audit":
        got = json.loads(text)
        for key, want in v.figures.items():
            assert got[key] == pytest.approx(want), (key, got[key], want)
    else:  # judge: one verdict per line, in order; a line that is not strict JSON is rejected as such
        verdicts = [json.loads(line) for line in text.splitlines()]
        assert [d["checks"]["parses"] for d in verdicts] == v.figures["parses"]
        assert all(d["verdict"] == "reject" for d, ok in zip(verdicts, v.figures["parses"]) if not ok)
    Path(v.out).unlink()  # the session's corpus stays as written for the refused cases


def test_the_corpus_is_big_enough_and_covers_every_command():
    from collections import Counter

    per = Counter(c.split(":")[0] for c in CASE_IDS)
    assert len(CASE_IDS) >= 150
    assert set(per) == {"sample", "judge", "audit", "run", "export", "report", "resume", "generate", "bench"}


def test_the_flag_bounds_take_every_value_they_promise():
    """The preflight refuses what the tools cannot take, and nothing they can: a refusal at the edge
    would fail a valid command before it starts."""
    from aod_core.cli.parser import MAX_COUNT, MAX_SEED, check_flag
    from aod_core.errors import InputError

    for flag, dest, kind, value in (
        ("--seed", "seed", int, 0),
        ("--seed", "seed", int, MAX_SEED),  # above MAX_COUNT, still a seed
        ("--n", "n", int, MAX_COUNT),
        ("--near-numbers", "near_numbers", float, -1.0),
        ("--prompt", "prompt", None, "café ☕"),
        ("--out", "out", None, "caf\udce9.jsonl"),  # a path may hold any bytes the file system takes
    ):
        check_flag(flag, dest, kind, value)
    for flag, dest, kind, value in (
        ("--seed", "seed", int, MAX_SEED + 1),
        ("--n", "n", int, MAX_COUNT + 1),
        ("--veto", "veto", float, float("nan")),
        ("--pin", "pin", None, ["a=1", "b=\udcff"]),
    ):
        with pytest.raises(InputError, match=flag):
            check_flag(flag, dest, kind, value)
