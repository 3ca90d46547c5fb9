"""The reproducibility fingerprint (fingerprint.py): recorded when a run starts, compared on resume.

A run's ``config.json`` holds hashes of its inputs, of the fitted generator's weights and of each
chat model's files (or server URL and model name), package versions, device and seed; ``aod resume``
warns (one line, even with --quiet) when any of them changed, the run records what changed, and the
HTML report shows both.
"""

from __future__ import annotations

import json

import pytest

from aod_core.chat.openai_compat import OpenAIChatModel
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.cli import main
from aod_core.runs import fingerprint
from aod_core.runs.store import RunStore
from tests.test_faults import seeds_file  # noqa: F401  (the fixture: 60 penguin seeds, a session model cache)
from tests.test_loop import PENGUINS


def _run(tmp_path, seeds_file, iterations=2):
    out = tmp_path / "run"
    assert (
        main(
            [
                "run",
                "--schema",
                str(PENGUINS / "schema.json"),
                "--seeds",
                str(seeds_file),
                "--out",
                str(out),
                "--iterations",
                str(iterations),
                "--batch",
                "6",
                "--proposals",
                "0",
                "--fit-steps",
                "40",
                "--quiet",
            ]
        )
        == 0
    )
    return out


def test_file_hashes_are_remembered_by_size_and_time_and_follow_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(fingerprint, "CACHE_MIN_BYTES", 500)
    small = tmp_path / "config.json"
    small.write_text("{}")
    fingerprint.file_sha256(small)
    assert not (tmp_path / "cache" / "file-hashes.json").exists()  # small files are just read
    f = tmp_path / "weights.bin"
    f.write_bytes(b"a" * 1000)
    first = fingerprint.file_sha256(f)
    assert first == fingerprint.file_sha256(f) == __import__("hashlib").sha256(b"a" * 1000).hexdigest()
    (entry,) = json.loads((tmp_path / "cache" / "file-hashes.json").read_text())  # remembered
    assert entry.startswith(str(f.resolve()))
    f.write_bytes(b"b" * 1001)
    assert fingerprint.file_sha256(f) != first
    assert len(json.loads((tmp_path / "cache" / "file-hashes.json").read_text())) == 1  # the old version went
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / ".hidden").write_text("x")
    one = fingerprint.files_sha256(folder)
    (folder / ".hidden").write_text("y")  # hidden files do not count
    assert fingerprint.files_sha256(folder) == one
    (folder / "config.json").write_text('{"a": 1}')
    assert fingerprint.files_sha256(folder) != one
    assert fingerprint.files_sha256(tmp_path / "nowhere") is None


def test_chat_models_are_fingerprinted_by_files_or_by_server():
    server = OpenAIChatModel("m", "http://user:pw@127.0.0.1:9/v1", max_retries=0)
    remote = fingerprint.chat_fingerprint(server, "openai:m@…")
    assert remote["base_url"] == "http://127.0.0.1:9/v1" and remote["model"] == "m"  # no credentials
    assert remote["structured_output"].startswith("unknown")  # nothing listens on port 9
    assert "files_sha256" not in fingerprint.chat_fingerprint(ScriptedChatModel(["{}"]), "scripted")


def test_changes_name_each_part_that_differs():
    a = {"packages": {"torch": "2.13.0"}, "generator": {"weights_sha256": "0" * 32}, "seed": 0}
    b = {"packages": {"torch": "2.14.0"}, "generator": {"weights_sha256": "1" * 32}, "seed": 0}
    found = fingerprint.changes(a, b)
    assert found == ["generator.weights_sha256: 000000000000… → 111111111111…", "packages.torch: 2.13.0 → 2.14.0"]
    assert fingerprint.changes(a, a) == []
    assert "2 more" in fingerprint.describe_changes(found * 3)


@pytest.mark.slow
def test_a_run_records_its_fingerprint_and_a_changed_resume_warns(tmp_path, seeds_file, capsys):
    out = _run(tmp_path, seeds_file)
    config = json.loads((out / "config.json").read_text())
    fp = config["fingerprint"]
    inputs = out / "inputs"
    assert fp["inputs"]["seeds.jsonl"] == fingerprint.file_sha256(inputs / "seeds.jsonl")
    assert len(fp["generator"]["weights_sha256"]) == 32 and fp["generator"]["cache_entry"]
    assert fp["packages"]["torch"] and fp["device"] == "cpu" and fp["seed"] == 0
    assert fp["chat"]["optimizer"]["spec"] == "embedded" and len(fp["chat"]["optimizer"]["files_sha256"]) == 64
    assert "judge" not in fp["chat"]  # the plausibility judge alone: fitted on the seeds, no chat model
    capsys.readouterr()

    # the same environment: no warning (one more iteration, nothing recorded as changed)
    config["loop"]["iterations"] = 3
    (out / "config.json").write_text(json.dumps(config))
    assert main(["resume", str(out), "--quiet"]) == 0
    assert "warning" not in capsys.readouterr().err
    assert "fingerprint_changes" not in json.loads((out / "config.json").read_text())

    # a different torch than the run started with, and hand-edited seeds: one warning line naming both
    config = json.loads((out / "config.json").read_text())
    config["loop"]["iterations"] = 4
    config["fingerprint"]["packages"]["torch"] = "0.0.1"
    (out / "config.json").write_text(json.dumps(config))
    with open(inputs / "seeds.jsonl", "a") as f:
        f.write((PENGUINS / "seeds.jsonl").read_text().splitlines()[70] + "\n")
    assert main(["resume", str(out), "--quiet"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("aod: warning:")]
    assert len(warnings) == 1
    assert "inputs.seeds.jsonl" in warnings[0] and "packages.torch: 0.0.1 →" in warnings[0]
    saved = json.loads((out / "config.json").read_text())
    (entry,) = saved["fingerprint_changes"]
    assert entry["iteration"] == 3 and any(c.startswith("packages.torch") for c in entry["changes"])
    assert saved["fingerprint"]["packages"]["torch"] == "0.0.1"  # what the run started with stays recorded
    assert RunStore.open(out).iterations_done() == 4

    assert main(["report", str(out), "--out", str(tmp_path / "report.html")]) == 0
    html = (tmp_path / "report.html").read_text()
    assert "Reproducibility" in html and "generator.weights_sha256" in html and "Resumed after iteration 3" in html


@pytest.mark.slow
def test_the_app_job_shows_what_changed_on_resume(tmp_path, seeds_file):
    from aod_core.studio.jobs import JobRegistry

    out = _run(tmp_path, seeds_file, iterations=1)
    config = json.loads((out / "config.json").read_text())
    config["loop"]["iterations"] = 2
    config["fingerprint"]["device"] = "cuda:0 (NVIDIA H200)"
    (out / "config.json").write_text(json.dumps(config))
    reg = JobRegistry()
    job = reg.start(RunStore.open(out))
    job.thread.join(timeout=300)
    view = job.view()
    assert view.status == "finished", view.error
    assert len(view.warnings) == 1 and "device: cuda:0 (NVIDIA H200) → cpu" in view.warnings[0]
