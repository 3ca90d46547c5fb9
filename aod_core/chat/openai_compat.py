"""Chat over any OpenAI-compatible server (OpenAI, vLLM, SGLang, Ollama, llama.cpp server).

Structured output: not every server honours ``response_format={"type": "json_schema", ...}``.
vLLM and SGLang document schema-constrained decoding, ``transformers serve`` ignores the field, and
some llama.cpp server builds refuse a request that carries it (docs/SERVERS.md). So on first use one tiny request finds out (:meth:`OpenAIChatModel.structured_output`),
with a schema no model answers unless the server enforces it, and the mode found is kept: the
schema is sent while the server enforces it; otherwise it is left out and the agents' own prompts
ask for the JSON. Either way every answer is parsed and validated here, and retried when unusable.
The mode goes into ``describe()`` and the run's fingerprint (config.json). Transport
failures (time-outs, 5xx, 429, refused connections) are retried with backoff and then come back as
an error reply, never as an exception, so one flaky request cannot kill an agent run.

The API key is held in one private attribute and handed to the client only; it never appears in
``describe()``, ``repr()`` or an error text.
"""

from __future__ import annotations

import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from aod_core.chat.base import (
    DEFAULT_RETRIES,
    BatchChat,
    ChatReply,
    Conversation,
    RawAnswer,
    complete_with_retries,
    parse_json,
)
from aod_core.errors import InputError

PLACEHOLDER_KEY = "EMPTY"  # local servers (vLLM, Ollama) want some key and ignore its value
DEFAULT_TIMEOUT = 30.0  # seconds per request; a hosted API answers well within it
# A model on a CPU, or one request among several a server works on together, can take minutes to
# answer; this is the time-out that protects the user from a dead server, so the user sets it.
TIMEOUT_ENV = "AOD_CHAT_TIMEOUT"

# How structured answers are asked for. "auto": probe the server on first use.
STRUCTURED_MODES = ("auto", "json_schema", "prompt")
# The probe's schema: one string of one allowed value that no model writes by itself when asked to
# say hello, so only a server that enforces the schema answers with it.
PROBE_VALUE = "aod-probe-7f3q"
PROBE_SCHEMA = {
    "type": "object",
    "properties": {"probe": {"type": "string", "enum": [PROBE_VALUE]}},
    "required": ["probe"],
    "additionalProperties": False,
}
PROBE_MESSAGES = [{"role": "user", "content": "Say hello."}]


class OpenAIChatModel(BatchChat):
    """One model on one OpenAI-compatible endpoint."""

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_retries: int = 2,
        *,
        structured: str = "auto",
        workers: int = 4,
        retries: int = DEFAULT_RETRIES,
        backoff: float = 0.5,
        max_retry_after: float = 30.0,
    ) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.max_retries = max_retries  # transport retries per request (time-out, 5xx, 429, connection)
        self.retries = retries  # answer retries (not JSON / fails the schema / empty)
        self.workers = workers  # concurrent requests in complete_many
        self.backoff = backoff
        self.max_retry_after = max_retry_after  # the longest Retry-After (429/503) waited for, in seconds
        if structured not in STRUCTURED_MODES:
            raise InputError(f"structured output must be one of {', '.join(STRUCTURED_MODES)}, got {structured!r}")
        # "json_schema" or "prompt" once known; the reason says how it was found (describe()).
        self.structured = None if structured == "auto" else structured
        self.structured_reason = "" if structured == "auto" else "set by the caller"
        self.spec = f"openai:{model}@{_public_url(self.base_url)}"
        self.__key = api_key or os.environ.get("OPENAI_API_KEY") or PLACEHOLDER_KEY
        self._client = None
        self._lock = threading.Lock()

    def _get_client(self):
        with self._lock:
            if self._client is None:
                import openai

                # Our own loop does the retrying, so it can count attempts and word the error.
                self._client = openai.OpenAI(
                    api_key=self.__key, base_url=self.base_url, timeout=self.timeout, max_retries=0
                )
            return self._client

    def _scrub(self, text: str) -> str:
        """Error texts may echo request details; make sure the key is never among them."""
        if self.__key and self.__key != PLACEHOLDER_KEY:
            text = text.replace(self.__key, "***")
        return " ".join(text.split())[:300]

    def _request(
        self, messages: Conversation, json_schema: dict | None, max_tokens: int, temperature: float, seed: int | None
    ) -> RawAnswer:
        import openai

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        if seed is not None:
            kwargs["seed"] = seed
        if json_schema is not None and self.structured != "prompt":
            # Strict mode only takes an object at the root; a union of shapes (the optimizer's
            # per-operation branches) goes non-strict and is validated here like every answer.
            strict = json_schema.get("type") == "object"
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": _schema_name(json_schema), "schema": json_schema, "strict": strict},
            }
        client = self._get_client()
        attempts = self.max_retries + 1
        failure = "no request made"
        for n in range(1, attempts + 1):
            wait = min(self.backoff * 2 ** (n - 1), 8.0)
            try:
                resp = client.chat.completions.create(**kwargs)
            except openai.APITimeoutError:
                failure = f"timed out after {self.timeout:g} s"
            except openai.APIConnectionError as e:
                failure = f"cannot connect to {_public_url(self.base_url)}: {self._scrub(str(e.__cause__ or e))}"
            except openai.APIStatusError as e:
                detail = self._scrub(_status_message(e))
                if e.status_code < 500 and e.status_code not in (408, 409, 429):
                    # 400/401/403/404: the request itself is wrong; asking again cannot help.
                    return RawAnswer(
                        text="", failure=f"server refused the request: HTTP {e.status_code} {detail}", requests=n
                    )
                failure = f"server error {e.status_code}" + (f" ({detail})" if detail else "")
                asked = _retry_after(e)
                if asked is not None:  # the server said when to come back (429, 503): honour it, capped
                    if asked > self.max_retry_after:
                        return RawAnswer(
                            text="",
                            requests=n,
                            failure=f"{failure}: the server asks to retry after {asked:g} s, longer than the {self.max_retry_after:g} s this run waits",
                        )
                    wait = asked
            except openai.APIError as e:  # a 200 whose body is not a chat completion
                return RawAnswer(text="", failure=f"bad response from server: {self._scrub(str(e))}", requests=n)
            except ValueError as e:  # a JSON body cut short (the client parses it): asked again, like a drop
                failure = f"bad response from server: the body is not complete JSON ({self._scrub(str(e))})"
            else:
                return _raw_from_response(resp, requests=n)
            if n < attempts:
                time.sleep(wait)
        return RawAnswer(
            text="", failure=f"{failure} after {attempts} attempt{'s' if attempts != 1 else ''}", requests=attempts
        )

    def complete_many(
        self, conversations, *, json_schema=None, max_tokens=256, temperature=0.0, seed=None
    ) -> list[ChatReply]:
        # the ChatModel protocol's signature (chat/base.py)
        def generate(convs: list[Conversation], temp: float, s: int | None) -> list[RawAnswer]:
            # Distinct seeds per conversation, so K identical proposals requests can differ.
            seeds = [None if s is None else s + 7919 * j for j in range(len(convs))]
            if len(convs) == 1 or self.workers <= 1:
                return [self._request(c, json_schema, max_tokens, temp, sd) for c, sd in zip(convs, seeds)]
            with ThreadPoolExecutor(max_workers=min(self.workers, len(convs))) as pool:
                return list(
                    pool.map(lambda cs: self._request(cs[0], json_schema, max_tokens, temp, cs[1]), zip(convs, seeds))
                )

        if json_schema is not None:
            self.structured_output()
        return complete_with_retries(
            generate, conversations, json_schema=json_schema, temperature=temperature, seed=seed, retries=self.retries
        )

    def structured_output(self) -> str | None:
        """How this server gets structured answers: "json_schema" (it enforces ``response_format``) or
        "prompt" (it ignores or refuses it; the prompt asks and the answer is validated here). Probed
        once, on first use; None while the server has not answered (the probe is tried again later,
        and requests meanwhile carry the schema, as a server that enforces it needs)."""
        with self._lock:
            if self.structured is not None:
                return self.structured
        found = self._probe()
        with self._lock:
            if found is not None and self.structured is None:
                self.structured, self.structured_reason = found
            return self.structured

    def _probe(self) -> tuple[str, str] | None:
        probe = self._request(PROBE_MESSAGES, PROBE_SCHEMA, 32, 0.0, None)
        if probe.failure is None:
            try:
                honoured = parse_json(probe.text) == {"probe": PROBE_VALUE}
            except ValueError:
                honoured = False
            if honoured:
                return "json_schema", "the server enforces response_format json_schema"
            return "prompt", "the server ignores response_format json_schema"
        if not probe.failure.startswith("server refused the request"):
            return None  # no answer at all (down, timed out): nothing learnt about the schema
        plain = self._request(PROBE_MESSAGES, None, 8, 0.0, None)
        if plain.failure is None:  # the same request without the schema goes through
            return "prompt", f"the server refuses response_format json_schema ({probe.failure.split(': ', 1)[-1]})"
        return None  # refused either way (a wrong model name, a bad key): the requests will say so

    def describe(self) -> dict:
        return {
            "backend": "openai",
            "spec": self.spec,
            "model": self.model,
            "base_url": _public_url(self.base_url),
            "timeout_s": self.timeout,
            "max_retries": self.max_retries,
            "structured_output": self.structured or "not probed yet",
            "structured_output_why": self.structured_reason,
            "api_key": "set" if self.__key != PLACEHOLDER_KEY else "none (placeholder)",
        }

    def __repr__(self) -> str:
        return f"OpenAIChatModel(model={self.model!r}, base_url={_public_url(self.base_url)!r})"


def _raw_from_response(resp: Any, *, requests: int) -> RawAnswer:
    if not hasattr(resp, "choices"):  # the client hands back a plain str for a non-JSON body
        return RawAnswer(
            text="",
            requests=requests,
            failure=f"server answered with something that is not a chat completion: {' '.join(str(resp).split())[:80]!r}",
        )
    usage = getattr(resp, "usage", None)
    choices = resp.choices or []
    if not choices:
        return RawAnswer(text="", requests=requests)
    choice = choices[0]
    msg = choice.message
    text = msg.content or ""
    if not text and getattr(msg, "refusal", None):
        text = f"[refused] {msg.refusal}"  # kept visible; it fails validation like any non-answer
    return RawAnswer(
        text=text,
        requests=requests,
        truncated=choice.finish_reason == "length",
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
    )


def _retry_after(e: Any) -> float | None:
    """Seconds a 429/503 answer's ``Retry-After`` header asks for (delta-seconds or an HTTP date)."""
    if getattr(e, "status_code", None) not in (429, 503):
        return None
    response = getattr(e, "response", None)
    raw = response.headers.get("retry-after") if response is not None else None
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _status_message(e: Any) -> str:
    """The server's own words for a refusal: OpenAI's ``{"error": {"message": ...}}``, or FastAPI's
    ``{"detail": ...}`` (transformers serve, and servers built on FastAPI), a text or a list of field errors."""
    body = getattr(e, "body", None)
    if not isinstance(body, dict):
        return ""
    err = body.get("error")
    if isinstance(err, dict) and err.get("message"):
        return str(err["message"])
    if isinstance(err, str):
        return err
    if body.get("message"):
        return str(body["message"])
    detail = body.get("detail")
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):  # FastAPI's validation errors: [{"loc": [...], "msg": ...}, ...]
        return "; ".join(
            f"{'.'.join(str(x) for x in d.get('loc', []))}: {d.get('msg', '')}" if isinstance(d, dict) else str(d)
            for d in detail
        )
    return ""


def _schema_name(schema: dict) -> str:
    """OpenAI wants a name matching ^[a-zA-Z0-9_-]{1,64}$; the schema's title when it has one."""
    name = re.sub(r"[^a-zA-Z0-9_-]+", "_", str(schema.get("title") or "answer")).strip("_")
    return (name or "answer")[:64]


def _public_url(url: str) -> str:
    """The URL without any user:password@ part, for specs, logs and describe()."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def build(
    target: str, *, spec: str, cache_dir: Any = None, device: str | None = None, api_key: str | None = None
) -> OpenAIChatModel:
    """The chat registry's builder for ``openai:<model>@<base_url>`` (``aod_core.chat.CHAT_BACKENDS``)."""
    model, at, url = target.partition("@")
    model, url = model.strip(), url.strip()
    if not model or not at or not url:
        raise InputError(
            f"chat model spec {spec!r}: expected openai:<model>@<base_url>, e.g. openai:gpt-4o-mini@https://api.openai.com/v1"
        )
    if not url.lower().startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
        raise InputError(f"chat model spec {spec!r}: base URL must start with http:// or https://")
    return OpenAIChatModel(model, url, api_key=api_key, timeout=request_timeout())


def request_timeout() -> float:
    """Seconds one request may take: ``AOD_CHAT_TIMEOUT`` when set, else the default."""
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise InputError(f"must be a number of seconds above 0, got {raw!r}", where=TIMEOUT_ENV)
    return value
