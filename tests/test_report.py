"""``build_report`` (aod_core/report.py) and ``aod report``: content, escaping, offline page, CLI errors."""

import html
import json
import re

import pytest

from aod_core.agents.optimizer import prompt_summary
from aod_core.canvas.prompt import Prompt
from aod_core.cli import main
from aod_core.runs.report import build_report
from aod_core.runs.store import IterationLog, RunStore

XSS = "<script>alert(1)</script>"
PROMPT0 = {"text": "penguins & friends", "pins": {"$.island": "Dream"}}
PROMPT1 = {"text": "penguins & friends", "pins": {"$.island": "Dream"}, "forbid": {"$.sex": ["male"]}}


def _cand(i, score, verdict, judged_by="llm", record=None):
    return {
        "text": "{}",
        "record": record or {"i": i},
        "decode_error": None,
        "checks": {"parses": True, "schema_errors": [], "duplicate": False, "seed_copy": False, "field_overlap": 0.1},
        "verdict": verdict,
        "score": score,
        "reasons": [],
        "judged_by": judged_by,
        "index": i,
        "phase": "main",
        "accepted": verdict == "accept",
    }


def _metrics(reward, tsr):
    return {
        "reward": reward,
        "task_success_rate": tsr,
        "schema_valid_rate": 1.0,
        "field_overlap": 0.2,
        "duplicate_rate": 0.0,
        "distinct_2": 0.6,
    }


@pytest.fixture
def run(tmp_path):
    store = RunStore.create(
        tmp_path / "penguin-run", {"generator": "embedded", "judge": "embedded", "task": "penguins"}
    )
    accepted0 = [{"i": i, "note": XSS if i == 0 else "ok"} for i in range(15)]
    store.commit(
        IterationLog(
            iteration=0,
            candidates=[
                _cand(0, 0.9, "accept", record=accepted0[0]),
                _cand(1, 0.0, "reject", "checks"),
                _cand(2, None, "reject", "failed"),
            ],
            prompts=[
                {"role": "used", "prompt": PROMPT0, "author": "human", "reward": 0.25},
                {"role": "incumbent_probe", "prompt": PROMPT0, "reward": 0.3, "probe_seed": 1},
                {
                    "role": "proposal",
                    "prompt": PROMPT1,
                    "reward": 0.4,
                    "probe_seed": 1,
                    "edit": {"op": "forbid", "path": "$.sex", "value": "male"},
                    "error": None,
                    "rationale": "too many <b>males</b>",
                },
                {
                    "role": "proposal",
                    "prompt": None,
                    "reward": None,
                    "edit": {"op": "range", "path": "$.year"},
                    "error": "range [3, 1] is empty",
                    "rationale": "",
                },
                {"role": "next", "prompt": PROMPT1, "author": "optimizer"},
            ],
            feedback=[
                {
                    "feedback": "Records look fine <img src=x onerror=alert(2)>",
                    "facts": {},
                    "summary": "",
                    "summary_error": None,
                }
            ],
            accepted=accepted0,
            metrics=_metrics(0.25, 0.5),
        )
    )
    store.commit(
        IterationLog(
            iteration=1,
            candidates=[_cand(0, 0.7, "accept"), _cand(1, 0.2, "reject")],
            prompts=[
                {"role": "used", "prompt": PROMPT1, "author": "optimizer", "reward": 0.5},
                {"role": "next", "prompt": PROMPT1, "author": "optimizer"},
            ],
            feedback=[{"feedback": "Second batch: more variety needed"}],
            accepted=[{"i": 100 + i} for i in range(10)],
            metrics=_metrics(0.5, 0.75),
        )
    )
    store.set_status("finished", iteration=2)
    return store


def test_report_content(run):
    page = build_report(run)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<h1>AoD run report: penguin-run</h1>" in page and "status: finished" in page
    # summary: iterations, accepted count, last reward and TSR
    for card in (
        "<b>2</b>iterations done",
        "<b>25</b>accepted records",
        "<b>5</b>candidates judged",
        "<b>0.500</b>last reward",
        "<b>75.0%</b>last task success rate",
    ):
        assert card in page
    # prompt history: compact summaries, roles, authors, the failed proposal's error, rationale
    assert html.escape(prompt_summary(Prompt.from_dict(PROMPT1))) in page
    assert "penguins &amp; friends" in page and "penguins & friends" not in page
    assert page.count("<td title=") == 7 and ">incumbent_probe</td>" in page
    assert "error: range [3, 1] is empty" in page and "too many &lt;b&gt;males&lt;/b&gt;" in page
    # feedback per iteration, 1-based
    assert (
        "<h3>Iteration 1</h3>" in page
        and "<h3>Iteration 2</h3>" in page
        and "Second batch: more variety needed" in page
    )
    # 20 of 25 accepted records, pretty-printed
    assert "Accepted records (20 of 25 shown)" in page
    assert html.escape(json.dumps({"i": 100 + 4}, indent=2)) in page and '"i": 100 + 5' not in page
    assert "&quot;i&quot;: 105" not in page
    # config
    assert "&quot;task&quot;: &quot;penguins&quot;" in page


def test_report_escapes_model_text(run):
    page = build_report(run)
    assert XSS not in page and "<img src=x" not in page and "<b>males" not in page
    assert html.escape(XSS) in page
    assert "&lt;img src=x onerror=alert(2)&gt;" in page


def test_report_is_offline_with_plotly_once(run):
    page = build_report(run)
    assert page.count("* plotly.js v") == 1  # the library, inline, once
    assert page.count("Plotly.newPlot(") == 2  # metric curves and score histogram
    assert re.findall(r"<script[^>]*\bsrc=", page) == [] and "<link" not in page  # nothing fetched


def test_report_scrubs_secrets_again(run):
    # an older or hand-edited config.json with a key in it
    (run.path / "config.json").write_text(json.dumps({"judge": "openai:m@http://x", "judge_api_key": "sk-secret"}))
    page = build_report(run)
    assert "sk-secret" not in page and "&lt;redacted&gt;" in page


def test_report_accepted_override(run):
    page = build_report(run, overrides={"accepted": [{"only": "<this>"}]})
    assert "<b>1</b>accepted records" in page and "Accepted records (1 of 1 shown)" in page
    assert "&lt;this&gt;" in page and html.escape(XSS) not in page
    assert "<b>2</b>iterations done" in page  # everything else still from the store


def test_report_of_a_run_without_iterations(tmp_path):
    store = RunStore.create(tmp_path / "fresh", {})
    page = build_report(store)
    assert "status: created" in page and "No finished iteration yet" in page and "No judged candidates yet" in page
    assert "No prompts recorded yet" in page and "No accepted records yet" in page and "<b>–</b>last reward" in page


# -- aod report ----------------------------------------------------------------------------------


def _aod(capsys, *args):
    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err.splitlines()


def test_cli_report_writes_the_page(run, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, err = _aod(capsys, "report", run.path, "--out", out)
    assert code == 0 and "wrote the report of 2 iterations" in err[-1]
    page = out.read_text(encoding="utf-8")
    assert "AoD run report: penguin-run" in page and html.escape(XSS) in page and XSS not in page
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".report")] == []  # no temp file left


@pytest.mark.parametrize("case", ["not_a_run", "missing_run", "out_folder_missing", "out_is_folder"])
def test_cli_report_bad_input_is_one_line_exit_2(run, tmp_path, capsys, case):
    (tmp_path / "plain").mkdir()
    run_dir, out, needle = run.path, tmp_path / "r.html", ""
    if case == "not_a_run":
        run_dir, needle = tmp_path / "plain", "not a run folder"
    elif case == "missing_run":
        run_dir, needle = tmp_path / "nope", "not a run folder"
    elif case == "out_folder_missing":
        out, needle = tmp_path / "no" / "r.html", "does not exist"
    else:
        out, needle = tmp_path / "plain", "is a folder"
    code, err = _aod(capsys, "report", run_dir, "--out", out)
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("aod: error: ") and needle in err[0]
    assert not (tmp_path / "r.html").exists() and list((tmp_path / "plain").iterdir()) == []


def test_report_shows_compiled_instructions(tmp_path):
    store = RunStore.create(tmp_path / "run", {"generator": "embedded", "judge": "embedded"})
    compiled = {
        "text": "mostly <i>Dream</i>",
        "author": "compiler",
        "edits": [
            {
                "op": "bias",
                "path": "$.island",
                "value": "Dream",
                "amount": 2.0,
                "share": 0.7,
                "direction": 1,
                "author": "compiler",
            }
        ],
        "unmapped": [{"phrase": "x", "reason": "no field matches 'x'"}],
    }
    prompt = {"text": "mostly <i>Dream</i>", "bias": {"$.island": {'"Dream"': 2.0}}, "compiled": compiled}
    store.commit(
        IterationLog(
            iteration=0,
            candidates=[_cand(0, 0.9, "accept")],
            prompts=[
                {"role": "compiled", "author": "compiler", "for": "human", **compiled},
                {"role": "used", "prompt": prompt, "author": "human", "reward": 0.3},
            ],
            feedback=[],
            accepted=[],
            metrics=_metrics(0.3, 0.1),
        )
    )
    page = build_report(store)
    assert "for the human prompt, from &#x27;mostly &lt;i&gt;Dream&lt;/i&gt;&#x27;" in page
    assert "bias island = &quot;Dream&quot; by +2.00 (target ≥ 70%) [compiler]" in page
    assert "<i>Dream</i>" not in page
