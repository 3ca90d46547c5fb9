"""Faults: an agent endpoint that misbehaves, agents that keep failing, a disk that fills up.

The endpoint is a real HTTP server on 127.0.0.1 (``http.server`` in a thread) that plays one scripted
behaviour per request: connection refused, time-out, 429 with Retry-After, 500, a truncated body, a
body that is not JSON, an answer in the wrong shape, a stall mid-body. Each ends as an error reply
after bounded retries, never as an exception; the loop's circuit breaker (``breaker.py``) stops a
run after N consecutive failed answers and records why; a full disk during a commit leaves the
committed iterations intact and ``resume`` finishes the run.
"""

from __future__ import annotations

import errno
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aod_core.agents.breaker import AgentBreaker, AgentsFailing
from aod_core.chat.openai_compat import OpenAIChatModel
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.errors import InputError
from aod_core.runs.store import IterationLog, RunStore, StoreWriteError

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"enum": ["accept", "reject"]}},
    "required": ["verdict"],
    "additionalProperties": False,
}
GOOD = json.dumps({"verdict": "accept"})
CONV = [{"role": "user", "content": "judge this"}]


def completion(content: str) -> bytes:
    return json.dumps(
        {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        }
    ).encode()


class Endpoint:
    """A loopback OpenAI-compatible server; ``script`` is a list of behaviours, one per request
    (the last one repeats)."""

    def __init__(self, script):
        self.script, self.requests, self.times = list(script), 0, []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                self.body = self.rfile.read(int(self.headers.get("content-length", 0)))
                endpoint.times.append(time.monotonic())
                i = endpoint.requests
                endpoint.requests += 1
                action = endpoint.script[min(i, len(endpoint.script) - 1)]
                kind, arg = action if isinstance(action, tuple) else (action, None)
                try:
                    self._act(kind, arg)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _send(self, code, body, headers=(), length=None):
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body) if length is None else length))
                for k, v in headers:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()

            def _act(self, kind, arg):
                if kind == "ok":
                    self._send(200, completion(arg or GOOD))
                elif kind == "agent":  # a judge that accepts everything, and writes batch feedback
                    review = b"review a batch" in self.body
                    answer = (
                        {"feedback": "Looks fine."}
                        if review
                        else {"verdict": "accept", "score": 0.9, "reasons": ["plausible"]}
                    )
                    self._send(200, completion(json.dumps(answer)))
                elif kind == "status":
                    code, headers = arg
                    self._send(code, json.dumps({"error": {"message": f"status {code}"}}).encode(), headers)
                elif kind == "sleep":
                    time.sleep(arg)
                    self._send(200, completion(GOOD))
                elif kind == "truncated":  # the connection closes before the promised body ends
                    body = completion(GOOD)
                    self._send(200, body[: len(body) // 2], length=len(body))
                    self.close_connection = True
                elif kind == "not_json":
                    self._send(200, b'{"id": "x", "choices": [{"message": {"content": "acc')
                elif kind == "wrong_shape":
                    self._send(200, json.dumps({"result": "accept"}).encode())
                elif kind == "stall":  # half the body, then silence
                    body = completion(GOOD)
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[:10])
                    self.wfile.flush()
                    time.sleep(arg)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint():
    made = []

    def make(*script):
        e = Endpoint(script)
        made.append(e)
        return e

    yield make
    for e in made:
        e.close()


def model(url, **kw):
    # Each script step is one request: no probe request in between (test_chat.py tests the probe).
    kw = {"timeout": 1.0, "max_retries": 2, "retries": 1, "backoff": 0.01, "structured": "json_schema", **kw}
    return OpenAIChatModel("m", url, **kw)


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- the agent endpoint ------------------------------------------------------------------------------


def test_a_healthy_endpoint_answers(endpoint):
    e = endpoint("ok")
    reply = model(e.url).complete(CONV, json_schema=SCHEMA)
    assert reply.ok and reply.data == {"verdict": "accept"} and e.requests == 1


def test_connection_refused_is_an_error_reply_after_bounded_retries():
    url = f"http://127.0.0.1:{_free_port()}/v1"
    t0 = time.monotonic()
    reply = model(url, max_retries=2).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and "cannot connect to" in reply.error and "after 3 attempts" in reply.error
    assert reply.attempts == 3 and time.monotonic() - t0 < 10


def test_timeout_is_retried_then_reported(endpoint):
    e = endpoint(("sleep", 3.0))
    reply = model(e.url, timeout=0.3, max_retries=1).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and "timed out after 0.3 s" in reply.error and e.requests == 2


def test_429_waits_as_long_as_retry_after_says(endpoint):
    e = endpoint(("status", (429, [("Retry-After", "1")])), "ok")
    reply = model(e.url, backoff=0.01).complete(CONV, json_schema=SCHEMA)
    assert reply.ok and e.requests == 2
    assert e.times[1] - e.times[0] >= 0.9  # the server's wait, not the 0.01 s backoff


def test_a_retry_after_longer_than_the_cap_is_not_waited_for(endpoint):
    e = endpoint(("status", (429, [("Retry-After", "3600")])), "ok")
    t0 = time.monotonic()
    reply = model(e.url, max_retry_after=2).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and "retry after 3600 s" in reply.error and time.monotonic() - t0 < 5


def test_500_is_retried_with_backoff_and_recovers(endpoint):
    e = endpoint(("status", (500, [])), ("status", (500, [])), "ok")
    reply = model(e.url, max_retries=2).complete(CONV, json_schema=SCHEMA)
    assert reply.ok and e.requests == 3


def test_500_every_time_ends_in_an_error_reply(endpoint):
    e = endpoint(("status", (500, [])))
    reply = model(e.url, max_retries=2, retries=0).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and "server error 500" in reply.error and e.requests == 3


def test_400_is_not_retried(endpoint):
    e = endpoint(("status", (400, [])))
    reply = model(e.url).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and "HTTP 400" in reply.error and e.requests == 1


@pytest.mark.parametrize("kind", ["truncated", "not_json", "wrong_shape"])
def test_broken_bodies_are_error_replies_and_a_later_good_one_is_used(endpoint, kind):
    e = endpoint(kind)
    reply = model(e.url).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and reply.data is None and reply.error
    e2 = endpoint(kind, "ok")
    assert model(e2.url).complete(CONV, json_schema=SCHEMA).ok


def test_an_answer_of_the_wrong_shape_is_retried_and_never_patched(endpoint):
    e = endpoint(("ok", json.dumps({"verdict": "maybe"})))
    reply = model(e.url, retries=1).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and "fails the schema" in reply.error and reply.data is None and e.requests == 2


def test_a_server_that_stalls_mid_body_times_out(endpoint):
    e = endpoint(("stall", 3.0))
    t0 = time.monotonic()
    reply = model(e.url, timeout=0.3, max_retries=0, retries=0).complete(CONV, json_schema=SCHEMA)
    assert not reply.ok and time.monotonic() - t0 < 2.5


def test_the_api_key_never_appears_in_an_error(endpoint):
    e = endpoint(("status", (500, [])))
    reply = model(e.url, api_key="sk-very-secret", retries=0).complete(CONV, json_schema=SCHEMA)
    assert "sk-very-secret" not in reply.error


# ---- the circuit breaker -----------------------------------------------------------------------------


def test_the_breaker_trips_after_n_consecutive_failures_and_a_success_resets_it():
    breaker = AgentBreaker(3)
    chat = breaker.wrap(ScriptedChatModel(["nope", "nope", GOOD, "nope", "nope", "nope"], retries=0))
    assert chat.spec == "scripted"
    assert not chat.complete(CONV, json_schema=SCHEMA).ok
    assert not chat.complete(CONV, json_schema=SCHEMA).ok
    assert chat.complete(CONV, json_schema=SCHEMA).ok  # resets the count
    assert not chat.complete(CONV, json_schema=SCHEMA).ok
    assert not chat.complete(CONV, json_schema=SCHEMA).ok
    with pytest.raises(AgentsFailing, match=r"stopped after 3 agent calls in a row failed .*scripted: not JSON"):
        chat.complete(CONV, json_schema=SCHEMA)
    assert breaker.describe()["failures"] == 5 and breaker.describe()["calls"] == 6
    with pytest.raises(InputError):
        AgentBreaker(0)


# ---- the loop with a dead judge endpoint, and a full disk -------------------------------------------------

from tests.test_loop import PENGUINS, TINY, respond  # noqa: E402


@pytest.fixture
def seeds_file(tmp_path, monkeypatch, tmp_path_factory):
    monkeypatch.setenv("AOD_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "model-cache"))
    p = tmp_path / "seeds.jsonl"
    p.write_text("\n".join((PENGUINS / "seeds.jsonl").read_text().splitlines()[:60]) + "\n")
    return p


def _config(judge="embedded", **loop):
    from aod_core.agents.judge import JudgeSettings
    from aod_core.runs.loop import LoopSettings
    from aod_core.runs.setup import RunConfig

    return RunConfig(
        generator_config=TINY,
        judge=judge,
        judge_settings=JudgeSettings(mode="llm"),
        loop=LoopSettings(**{"iterations": 3, "batch": 6, "probe": 4, "proposals": 0, **loop}),
    )


@pytest.mark.slow
def test_a_dead_judge_endpoint_stops_the_run_by_the_breaker_rule_and_resume_continues(tmp_path, seeds_file, endpoint):
    from aod_core.runs.setup import create_run, open_loop
    from aod_core.studio.runview import list_runs

    e = endpoint("ok")
    spec = f"openai:m@{e.url}"
    store = create_run(
        str(PENGUINS / "schema.json"), str(seeds_file), str(tmp_path / "run"), _config(judge=spec, max_agent_failures=4)
    )
    healthy = ScriptedChatModel(respond)
    flaky = {"down": False}

    def judge_answer(messages):
        return "connection refused" if flaky["down"] else respond(messages)

    # iteration 0 with a working judge, then the endpoint "goes down" (every answer unusable)
    events = []
    judge = ScriptedChatModel(judge_answer, retries=0)
    handle = open_loop(store, chat_cache={spec: judge, "embedded": healthy}, on_event=events.append)
    orig = handle.loop._iteration

    def iteration(it):
        flaky["down"] = it >= 1
        orig(it)

    handle.loop._iteration = iteration
    with pytest.raises(AgentsFailing):
        handle.loop.run()
    state = store.state()
    assert state["status"] == "failed" and "circuit breaker" in state["error"]
    assert state["agents"]["consecutive"] >= 4 and state["agents"]["limit"] == 4
    assert store.iterations_done() == 1  # iteration 0 kept; the failing one never committed
    assert [ev.kind for ev in events][-1] == "failed"
    (row,) = [r for r in list_runs(tmp_path) if r["run"] == "run"]
    assert row["status"] == "failed" and "circuit breaker" in row["error"]  # what the Runs/Run pages show
    # the endpoint is back: resume finishes the run
    flaky["down"] = False
    store.release()  # the failed run's process would have ended
    again = open_loop(RunStore.open(store.path), chat_cache={spec: ScriptedChatModel(respond), "embedded": healthy})
    assert again.loop.start_iteration == 1 and again.loop.run() == "finished"
    assert store.iterations_done() == 3


def _log(it, accepted):
    return IterationLog(
        iteration=it,
        candidates=[{"index": 0, "record": {"i": it}}],
        prompts=[{"role": "used", "prompt": {"text": "p"}, "reward": 0.1}],
        feedback=[{"feedback": "f"}],
        accepted=accepted,
        metrics={"reward": 0.1},
    )


def test_disk_full_during_a_commit_keeps_earlier_iterations_and_resume_repairs(tmp_path, monkeypatch):
    store = RunStore.create(tmp_path / "r", {})
    store.commit(_log(0, [{"a": 1}]))
    import aod_core.runs.store as rs

    real_append = rs._append
    calls = {"n": 0}

    def full_disk(path, rows):
        calls["n"] += 1
        if path.name == "accepted.jsonl":  # half a line lands, then the disk is full
            with open(path, "a") as f:
                f.write('{"a": 2, "b')
            raise OSError(errno.ENOSPC, "No space left on device")
        real_append(path, rows)

    monkeypatch.setattr(rs, "_append", full_disk)
    with pytest.raises(StoreWriteError) as e:
        store.commit(_log(1, [{"a": 2}]))
    msg = str(e.value)
    assert "No space left on device" in msg and "1 iteration(s) saved before are intact" in msg
    assert "aod resume" in msg and "\n" not in msg
    monkeypatch.setattr(rs, "_append", real_append)
    store.release()  # the failed command ended
    again = RunStore.open(store.path)  # space is back: resume repairs
    assert again.iterations_done() == 1 and again.accepted() == [{"a": 1}]
    again.commit(_log(1, [{"a": 2}]))
    assert again.accepted() == [{"a": 1}, {"a": 2}]
    for name in ("accepted.jsonl", "candidates.jsonl", "metrics.jsonl", "prompts.jsonl", "feedback.jsonl"):
        for line in (store.path / name).read_text().splitlines():
            json.loads(line)


@pytest.mark.slow
def test_disk_full_in_a_real_run_is_one_clear_line_and_resume_finishes(tmp_path, seeds_file, monkeypatch, capsys):
    import aod_core.runs.store as rs
    from aod_core.cli import main

    out = tmp_path / "run"
    args = [
        "run",
        "--schema",
        str(PENGUINS / "schema.json"),
        "--seeds",
        str(seeds_file),
        "--out",
        str(out),
        "--iterations",
        "3",
        "--batch",
        "6",
        "--proposals",
        "0",
        "--fit-steps",
        "40",
        "--quiet",
    ]
    real_commit = rs.RunStore._commit

    def commit(self, log):
        if log.iteration == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_commit(self, log)

    monkeypatch.setattr(rs.RunStore, "_commit", commit)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "aod resume" in err[0]
    store = RunStore.open(out, repair=False)
    assert store.iterations_done() == 1 and store.state()["status"] == "failed"
    monkeypatch.setattr(rs.RunStore, "_commit", real_commit)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert RunStore.open(out).iterations_done() == 3


@pytest.mark.slow
def test_an_api_key_is_used_but_never_written_anywhere(tmp_path, seeds_file, monkeypatch, capsys):
    """A run whose LLM judge is a real OpenAI-compatible client on a loopback server, with a key in the
    environment: the server sees the key; no file the run, the report or the export wrote holds it."""
    from aod_core.cli import main

    key = "sk-test-DO-NOT-LEAK-4242"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    seen = []

    class Judge(Endpoint):
        pass

    e = Judge(["agent"])
    original = e.server.RequestHandlerClass.do_POST

    def do_post(handler):
        seen.append(handler.headers.get("authorization", ""))
        original(handler)

    e.server.RequestHandlerClass.do_POST = do_post
    try:
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
                    "2",
                    "--batch",
                    "4",
                    "--proposals",
                    "0",
                    "--fit-steps",
                    "40",
                    "--quiet",
                    "--judge",
                    f"openai:m@{e.url}",
                    "--judge-mode",
                    "llm",
                ]
            )
            == 0
        )
        assert main(["report", str(out), "--out", str(tmp_path / "report.html")]) == 0
        assert main(["export", str(out), "--format", "csv", "--out", str(tmp_path / "acc.csv")]) == 0
    finally:
        e.close()
    assert seen and all(h == f"Bearer {key}" for h in seen)  # the key was used
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 8
    assert not [str(p) for p in written if key.encode() in p.read_bytes()]
    assert key not in capsys.readouterr().err


# ---- GPU out of memory and models that fail to load ------------------------------------------------


def _oom_above(limit, real):
    """A stand-in for the sampler that runs out of GPU memory on batches larger than ``limit``."""
    import torch

    sizes = []

    def run(*args, **kwargs):
        b = len(args[1])  # the canvas (embedded) or the plans (hf:)
        sizes.append(b)
        if b > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(*args, **kwargs)

    return run, sizes


def test_out_of_memory_halves_the_sample_batch_until_it_fits(tmp_path, monkeypatch, tiny):
    import aod_core.generators.embedded as emb
    from aod_core.canvas.prompt import Prompt
    from aod_core.data.schema import load_schema
    from aod_core.data.seeds import load_records
    from aod_core.generators.base import in_batches

    schema = load_schema(PENGUINS / "schema.json")
    seeds = load_records(PENGUINS / "seeds.jsonl", schema).records[:40]
    gen = emb.EmbeddedGenerator(schema.resolved, seeds, config=tiny(30, sample_batch=8), cache_dir=tmp_path)
    gen.fit()
    run, sizes = _oom_above(2, emb.generate)
    monkeypatch.setattr(emb, "generate", run)
    out = gen.sample(Prompt(), 7, seed=3)
    assert len(out) == 7 and all(c.parsed for c in out)
    assert sizes[:3] == [7, 3, 1]  # halved 7 -> 3 -> 1, then the rest at that size
    assert max(sizes[2:]) <= 2 and gen.oom_halvings == 2 and gen.batch_now == 1
    sizes.clear()
    assert len(gen.sample(Prompt(), 3, seed=4)) == 3 and sizes == [1, 1, 1]  # the size that fits is kept

    def never(*a, **k):
        raise __import__("torch").cuda.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(InputError, match="even one record at a time") as e:
        in_batches(5, 4, lambda start, b: never(), what="the embedded generator")
    assert "\n" not in str(e.value) and "--device cpu" in str(e.value)


def _tiny_causal_lm(folder, *, broken: bool):
    """A two-layer character-level Llama that transformers can load offline; ``broken`` writes a
    damaged weights file instead (what a truncated download or a bad disk leaves)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(exist_ok=True)
    vocab = {
        "<unk>": 0,
        "<s>": 1,
        "</s>": 2,
        **{c: i + 3 for i, c in enumerate('{}[]":,. abcdefghijklmnopqrstuvwxyz0123456789_')},
    }
    tk = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>").save_pretrained(
        folder
    )
    cfg = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        bos_token_id=1,
        eos_token_id=2,
    )
    cfg.save_pretrained(folder)
    if broken:
        (folder / "model.safetensors").write_bytes(b"\x00not a safetensors file" * 50)
    else:
        torch.manual_seed(0)
        LlamaForCausalLM(cfg).save_pretrained(folder)


def test_a_damaged_chat_model_is_one_clear_line(tmp_path):
    from aod_core.chat.local import LocalChatModel

    _tiny_causal_lm(tmp_path / "m", broken=True)
    model = LocalChatModel.from_path(str(tmp_path / "m"))
    with pytest.raises(InputError, match="cannot load chat model hf:") as e:
        model.load()
    assert "\n" not in str(e.value) and not model.loaded


@pytest.mark.slow
def test_a_model_that_fails_to_load_mid_run_fails_the_run_cleanly_and_resume_finishes(tmp_path, seeds_file, capsys):
    """The optimizer's model is first loaded in iteration 1's optimize step: its damaged weights stop
    the run with one line (exit 2), the iteration in flight is dropped, and once the model folder is
    repaired ``aod resume`` finishes the run."""
    from aod_core.cli import main

    folder = tmp_path / "optimizer-model"
    _tiny_causal_lm(folder, broken=True)
    out = tmp_path / "run"
    args = [
        "run",
        "--schema",
        str(PENGUINS / "schema.json"),
        "--seeds",
        str(seeds_file),
        "--out",
        str(out),
        "--iterations",
        "2",
        "--batch",
        "6",
        "--proposals",
        "1",
        "--probe",
        "4",
        "--fit-steps",
        "40",
        "--optimizer",
        f"hf:{folder}",
        "--quiet",
    ]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot load chat model hf:" in err[0] and "SafetensorError" in err[0]
    store = RunStore.open(out, repair=False)
    state = store.state()
    assert state["status"] == "failed" and "cannot load chat model" in state["error"]
    assert store.iterations_done() == 0
    _tiny_causal_lm(folder, broken=False)
    assert main(["resume", str(out), "--quiet"]) == 0
    assert RunStore.open(out).iterations_done() == 2
