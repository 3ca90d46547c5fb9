"""What every chat backend shares: the reply type, the protocol, and the validate/retry loop.

The judge and the prompt optimizer only ever see ``ChatModel``. Backends differ in how they turn
conversations into raw text (a local transformers model, an OpenAI-compatible server, a script);
everything after that — parsing JSON, validating it against the caller's schema, retrying unusable
answers, timing, token counts — lives here once, in :func:`complete_with_retries`, so every backend
treats a bad answer the same way: retried, then returned with ``error`` set and ``data=None``, never
patched up with made-up content.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

from aod_core.errors import InputError

Message = dict[str, str]
Conversation = list[Message]

DEFAULT_RETRIES = 2
# A retry at temperature 0 would reproduce the same failure token for token (greedy decoding is
# deterministic), so retries sample at least this warm, with a different seed each attempt.
RETRY_TEMPERATURE = 0.7


@dataclass
class ChatReply:
    """One answer. ``ok`` is the only thing a caller must check before using ``data``/``text``."""

    text: str  # raw text returned (the last attempt's)
    data: Any = None  # parsed + validated JSON when a json_schema was given
    error: str | None = None  # why the answer is unusable (after retries), else None
    attempts: int = 1  # requests made for this answer, retries included
    # Wall time spent on this answer. In a batch the batch's time is shared evenly between its
    # answers, so summing ``seconds`` over a batch gives the wall time, not n times it.
    seconds: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@runtime_checkable
class ChatModel(Protocol):
    spec: str

    def complete(
        self,
        messages: Conversation,
        *,
        json_schema: dict | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> ChatReply: ...

    def complete_many(
        self,
        conversations: list[Conversation],
        *,
        json_schema: dict | None = None,
        max_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[ChatReply]: ...

    def describe(self) -> dict: ...


class BatchChat:
    """Backends implement ``complete_many``; one conversation is a batch of one."""

    def complete(self, messages, *, json_schema=None, max_tokens=256, temperature=0.0, seed=None) -> ChatReply:
        # the ChatModel protocol's signature (chat/base.py)
        return self.complete_many(
            [messages],
            json_schema=json_schema,
            max_tokens=max_tokens,  # type: ignore[attr-defined]
            temperature=temperature,
            seed=seed,
        )[0]


@dataclass
class RawAnswer:
    """What a backend produced for one conversation in one attempt, before any checking."""

    text: str
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    truncated: bool = False  # stopped by max_tokens rather than by the model
    # Set when no answer came at all (time-out, server error after the transport's own retries,
    # refused connection). Such failures are not retried again here: the transport already did.
    failure: str | None = None
    requests: int = 1  # HTTP requests (or generate calls) it took, transport retries included


# generate(conversations, temperature, seed) -> one RawAnswer per conversation, in order.
Generate = Callable[[list[Conversation], float, "int | None"], list[RawAnswer]]


def check_messages(messages: Conversation) -> None:
    """A conversation is a non-empty list of {"role", "content"} string dicts; anything else is a caller bug."""
    if not isinstance(messages, list) or not messages:
        raise InputError("a conversation must be a non-empty list of messages")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise InputError(f"bad chat message {m!r}: need {{'role': str, 'content': str}}")


def schema_validator(json_schema: dict):
    """A jsonschema validator for the caller's schema; a broken schema is bad input, not a bad answer."""
    import jsonschema

    if not isinstance(json_schema, dict):
        raise InputError("json_schema must be a JSON Schema object (a dict)")
    from aod_core.data.patterns import linear
    from aod_core.data.schema import check_patterns

    cls = jsonschema.validators.validator_for(json_schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(json_schema)
    except jsonschema.SchemaError as e:
        raise InputError(f"json_schema is not a valid JSON Schema: {e.message}") from None
    # The schema is often the user's own (the AR generator's answers are checked against it): its
    # patterns run on RE2, so a model's answer cannot stall the process however it is spelled.
    check_patterns(json_schema, "json_schema")
    return linear(cls)(json_schema)


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def parse_json(text: str) -> Any:
    """The JSON value in ``text``.

    Strict first; then the inside of a ```json fence, then the first object/array followed by
    prose — servers that ignore ``response_format`` wrap answers that way. Nothing is invented: a
    value is only ever taken verbatim from the text. Raises ``ValueError`` saying why not.
    """
    s = text.strip()
    try:
        return json.loads(s)
    except json.JSONDecodeError as first:
        for m in _FENCE.finditer(s):
            try:
                return json.loads(m.group(1).strip())
            except json.JSONDecodeError:
                pass
        starts = [i for i in (s.find("{"), s.find("[")) if i >= 0]
        if starts:
            try:
                return json.JSONDecoder().raw_decode(s, min(starts))[0]
            except json.JSONDecodeError:
                pass
        raise ValueError(f"not JSON ({first.msg} at line {first.lineno} column {first.colno})") from None


def check_answer(raw: RawAnswer, validator) -> tuple[Any, str | None]:
    """(data, problem): ``problem`` is None when the answer is usable."""
    if raw.failure:
        return None, raw.failure
    if not raw.text.strip():
        return None, "empty answer" + (" (cut off by max_tokens)" if raw.truncated else "")
    if validator is None:
        return None, None
    cut = " (cut off by max_tokens)" if raw.truncated else ""
    try:
        data = parse_json(raw.text)
    except ValueError as e:
        return None, f"{e}{cut}"
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        where = "$" + "".join(f"[{p!r}]" if isinstance(p, str) else f"[{p}]" for p in e.absolute_path)
        more = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        return None, f"fails the schema at {where}: {e.message}{more}{cut}"
    return data, None


def complete_with_retries(
    generate: Generate,
    conversations: list[Conversation],
    *,
    json_schema: dict | None,
    temperature: float,
    seed: int | None,
    retries: int = DEFAULT_RETRIES,
) -> list[ChatReply]:
    """Run ``generate`` over the conversations, check each answer, and retry the unusable ones.

    Each round sends all still-unusable conversations to ``generate`` together (one batch for local
    models). Retry ``k`` uses ``seed + k`` and at least ``RETRY_TEMPERATURE``, so it can differ from
    the failed attempt while staying reproducible for a given seed. Transport failures
    (``RawAnswer.failure``) are final: the backend has already retried those.
    """
    for c in conversations:
        check_messages(c)
    if temperature < 0:
        raise InputError(f"temperature must be >= 0, got {temperature}")
    validator = schema_validator(json_schema) if json_schema is not None else None
    replies = [ChatReply(text="", error="not attempted", attempts=0) for _ in conversations]
    pending = list(range(len(conversations)))
    for attempt in range(retries + 1):
        if not pending:
            break
        temp = temperature if attempt == 0 else max(temperature, RETRY_TEMPERATURE)
        s = None if seed is None else seed + attempt
        t0 = time.perf_counter()
        raws = generate([conversations[i] for i in pending], temp, s)
        share = (time.perf_counter() - t0) / len(pending)
        if len(raws) != len(pending):
            raise RuntimeError(f"backend returned {len(raws)} answers for {len(pending)} conversations")
        still = []
        for i, raw in zip(pending, raws):
            r = replies[i]
            data, problem = check_answer(raw, validator)
            r.text, r.data, r.error = raw.text, data, problem
            r.attempts += raw.requests
            r.seconds += share
            r.prompt_tokens = _add(r.prompt_tokens, raw.prompt_tokens)
            r.completion_tokens = _add(r.completion_tokens, raw.completion_tokens)
            if problem is not None and raw.failure is None:
                still.append(i)
        pending = still
    for i in pending:  # ran out of retries: say so, keep the last text for the record
        r = replies[i]
        r.error = f"{r.error} (after {r.attempts} attempt{'s' if r.attempts != 1 else ''})"
    return replies


def _add(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else a + b
