"""Generator registry: a model spec string -> a fitted-on-demand ``Generator``.

Specs (DESIGN.md §5): ``embedded`` is the offline default; ``ar:<chat spec>`` is the autoregressive
baseline (a chat model writing records directly, e.g. ``ar:embedded``); ``hf:<id-or-path>`` is a
pretrained masked diffusion LM (LLaDA, Dream, ModernBERT chat DLMs) decoding into a token-level
scaffold; ``difflm`` is DiffLM (a VAE whose decoder is the frozen embedded SmolLM2 steered by soft
prompts, plus latent diffusion; ``difflm:<causal LM folder>`` swaps the decoder). A spec whose module is
missing is refused with a clear message, never silently replaced.
"""
from __future__ import annotations

import json
import os
from dataclasses import fields, replace
from typing import Any, Mapping, TypeVar

from aod_core.errors import InputError
from aod_core.data.schema import LoadedSchema
from aod_core.generators.base import Candidate, Generator, Progress
from aod_core.generators.embedded import EmbeddedConfig, EmbeddedGenerator

AVAILABLE = ("embedded", "ar:<chat spec>", "hf:<id-or-path>", "difflm")
PLANNED: tuple[str, ...] = ()

C = TypeVar("C")

__all__ = ["AVAILABLE", "Candidate", "EmbeddedConfig", "EmbeddedGenerator", "Generator", "Progress", "check_options", "config_from_options",
           "load_generator", "parse_options"]


def load_generator(
    spec: str,
    schema: LoadedSchema,
    seeds: list[dict],
    *,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    scaffold: bool = True,
    config: EmbeddedConfig | None = None,
    options: Mapping[str, Any] | None = None,
    api_key: str | None = None,
) -> Generator:
    """The generator a spec names, built on ``schema.resolved`` and the seeds (not yet fitted).

    ``options`` are the generator's own settings by name (a run's ``generator_config``, e.g.
    ``{"train_steps": 300}``); each generator kind checks them against its own config class.
    """
    spec = (spec or "embedded").strip()
    if spec == "embedded":
        base = config or config_from_options(EmbeddedConfig, options, spec)
        cfg = replace(base, scaffold=scaffold)  # never edit the caller's config
        return EmbeddedGenerator(schema.resolved, seeds, config=cfg, device=device, cache_dir=cache_dir)
    if spec.startswith("ar:"):
        from aod_core.generators.ar import ARGenerator

        chat_spec = spec[3:].strip()
        if not chat_spec:
            raise InputError("generator 'ar:' needs a chat model spec, e.g. ar:embedded")
        from aod_core.chat import load_chat_model

        load_chat_model(chat_spec)  # a bad spec fails now; nothing is loaded yet
        return ARGenerator(chat_spec, schema, seeds, device=device, api_key=api_key)
    if spec.startswith("hf:"):
        from aod_core.generators.hf import HFConfig, HFGenerator

        if not scaffold:
            raise InputError("hf: generators always decode into the token-level scaffold; drop --no-scaffold")
        return HFGenerator(spec[3:], schema.resolved, seeds, config=config_from_options(HFConfig, options, spec),
                           device=device)
    if spec == "difflm" or spec.startswith("difflm:"):
        from aod_core.generators.difflm.generator import DiffLMConfig, DiffLMGenerator

        decoder = spec[len("difflm:"):].strip() if spec.startswith("difflm:") else "embedded"
        if not decoder:
            raise InputError("generator 'difflm:' needs a causal LM folder after the colon, or use plain difflm")
        cfg = config_from_options(DiffLMConfig, options, spec)
        return DiffLMGenerator(schema, seeds, config=cfg, decoder=decoder, device=device, cache_dir=cache_dir)
    if spec.startswith(PLANNED):
        raise InputError(f"generator {spec!r} is not available in this version (available: {', '.join(AVAILABLE)})")
    raise InputError(f"unknown generator spec {spec!r} (use embedded, ar:<chat spec>, hf:<id-or-path> or difflm)")


def config_from_options(cls: type[C], options: Mapping[str, Any] | None, spec: str) -> C:
    """``cls(**options)`` with a one-line InputError naming the unknown or ill-typed setting."""
    options = dict(options or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(f"unknown setting(s) {', '.join(unknown)} for generator {spec!r} "
                         f"(known: {', '.join(sorted(known))})")
    try:
        return cls(**options)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad settings for generator {spec!r}: {e}") from None


def check_options(spec: str, options: Mapping[str, Any] | None) -> None:
    """Raise InputError now when ``options`` do not fit the generator ``spec`` names (nothing is loaded)."""
    spec = (spec or "embedded").strip()
    if spec == "embedded":
        config_from_options(EmbeddedConfig, options, spec).check()
    elif spec.startswith("hf:"):
        from aod_core.generators.hf import HFConfig

        config_from_options(HFConfig, options, spec).check()
    elif spec == "difflm" or spec.startswith("difflm:"):
        from aod_core.generators.difflm.generator import DiffLMConfig

        config_from_options(DiffLMConfig, options, spec).check()
    elif options:
        raise InputError(f"generator {spec!r} takes no settings (got {', '.join(sorted(options))})")


def parse_options(items: list[str] | str) -> dict[str, Any]:
    """Generator settings from ``KEY=VALUE`` items (CLI ``--gen-opt``) or text with one per line or comma;
    values are read as JSON when they parse (``batch=16`` -> 16) and kept as text otherwise."""
    if isinstance(items, str):
        items = [part for line in items.splitlines() for part in line.split(",")]
    opts: dict[str, Any] = {}
    for item in items:
        if not item.strip():
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"generator option {item.strip()!r}: expected KEY=VALUE")
        try:
            opts[key.strip()] = json.loads(raw)
        except ValueError:
            opts[key.strip()] = raw.strip()
    return opts
