"""Generator registry: a model spec string -> a fitted-on-demand ``Generator``.

Specs (DESIGN.md §5): ``embedded`` is the offline default; ``ar:<chat spec>`` is the autoregressive
baseline (a chat model writing records directly, e.g. ``ar:embedded``). ``hf:<id-or-path>`` and ``difflm``
are reserved for the GPU-scale DLM and the DiffLM generator; until their modules exist they are
refused with a clear message rather than silently replaced by something else.
"""
from __future__ import annotations

import os
from dataclasses import replace

from ..errors import InputError
from ..schema import LoadedSchema
from .base import Candidate, Generator, Progress
from .embedded import EmbeddedConfig, EmbeddedGenerator

AVAILABLE = ("embedded", "ar:<chat spec>")
PLANNED = ("hf:", "difflm")

__all__ = ["AVAILABLE", "Candidate", "EmbeddedConfig", "EmbeddedGenerator", "Generator", "Progress", "load_generator"]


def load_generator(
    spec: str,
    schema: LoadedSchema,
    seeds: list[dict],
    *,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    scaffold: bool = True,
    config: EmbeddedConfig | None = None,
    api_key: str | None = None,
) -> Generator:
    """The generator a spec names, built on ``schema.resolved`` and the seeds (not yet fitted)."""
    spec = (spec or "embedded").strip()
    if spec == "embedded":
        cfg = replace(config or EmbeddedConfig(), scaffold=scaffold)  # never edit the caller's config
        return EmbeddedGenerator(schema.resolved, seeds, config=cfg, device=device, cache_dir=cache_dir)
    if spec.startswith("ar:"):
        from .ar import ARGenerator

        chat_spec = spec[3:].strip()
        if not chat_spec:
            raise InputError("generator 'ar:' needs a chat model spec, e.g. ar:embedded")
        from ..chat import load_chat_model

        load_chat_model(chat_spec)  # a bad spec fails now; nothing is loaded yet
        return ARGenerator(chat_spec, schema, seeds, device=device, api_key=api_key)
    if spec.startswith(PLANNED):
        raise InputError(f"generator {spec!r} is not available in this version (available: {', '.join(AVAILABLE)})")
    raise InputError(f"unknown generator spec {spec!r} (use embedded, ar:<chat spec>, hf:<id-or-path> or difflm)")
