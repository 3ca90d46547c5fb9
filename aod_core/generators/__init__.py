"""The generator registry: one table of generator kinds, read by everything that knows a spec.

A generator spec is ``<kind>`` or ``<kind>:<target>`` (``embedded``, ``ar:embedded``, ``hf:./llada``,
``difflm``). Each kind is one row of ``GENERATORS``: its prefix, the module that builds it, its options
class, what it can do and its help text. ``load_generator``, the options check, the CLI's help and the
app's pickers all read this table, so adding a generator kind is one module (with a ``build`` function
and an options dataclass) plus one ``register(...)`` line below; ``docs/ARCHITECTURE.md`` walks through
an example. A spec naming no registered kind is refused with a clear message, never replaced.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import MISSING, dataclass, fields, replace
from typing import Any, Callable, Mapping, TypeVar

from aod_core.data.dependencies import DependencySettings
from aod_core.data.limits import strict_loads
from aod_core.data.schema import LoadedSchema
from aod_core.errors import InputError
from aod_core.generators.base import Generator, Progress
from aod_core.generators.embedded import EmbeddedConfig, EmbeddedGenerator
from aod_core.records import Candidate  # noqa: F401  (re-exported)
from aod_core.registry import Registry

C = TypeVar("C")


@dataclass(frozen=True)
class GeneratorKind:
    """One generator kind: how its spec is spelled, where it is built, what it can do."""

    name: str  # the spec's prefix: "hf" for hf:<id-or-path>
    module: str  # imported on first use (some kinds pull in transformers or a chat model)
    options: str | None  # the options dataclass in ``module`` (None: the kind takes no settings)
    help: str  # one sentence for the CLI's help and the Models page
    target: str = ""  # what follows the colon, e.g. "id-or-path"; "" = nothing
    target_required: bool = False  # False with a target: ``name`` alone is also a spec (difflm)
    reads_text: bool = False  # the model reads instruction text itself (else the text is compiled)
    trains: bool = False  # fitted on the seeds; takes ``train_steps``
    scaffold_optional: bool = True  # ``--no-scaffold`` applies (the raw-text ablation); else it is refused
    sample_view: str = "embedded"  # how the Sample page shows it: embedded, hf or difflm
    # The prompt's sampling controls this kind honours (the pages show only these): steps,
    # temperature, blocks, remasking, threshold, pins (pins and forbids).
    controls: frozenset[str] = frozenset({"steps", "temperature", "blocks", "remasking", "threshold", "pins"})
    # Keeps the seeds' dependencies and keys while sampling, and decides steered fields first
    # (canvas/conditioning.py); for other kinds only the judge checks dependencies.
    conditions: bool = False
    builder: str = "build"  # ``module.build(target, schema, seeds, config=, device=, cache_dir=, api_key=)``

    @property
    def form(self) -> str:
        """The spec as users write it: ``hf:<id-or-path>``, ``difflm[:<causal LM folder>]``."""
        if not self.target:
            return self.name
        return f"{self.name}:<{self.target}>" if self.target_required else f"{self.name}[:<{self.target}>]"

    def options_class(self) -> type | None:
        return getattr(importlib.import_module(self.module), self.options) if self.options else None

    def build_function(self) -> Callable[..., Generator]:
        return getattr(importlib.import_module(self.module), self.builder)


GENERATORS: Registry[GeneratorKind] = Registry()
register = GENERATORS.register

# fmt: off  (one kind, one line: the table reads as a table)
register(
    GeneratorKind(
        "embedded",
        "aod_core.generators.embedded",
        "EmbeddedConfig",
        trains=True,
        conditions=True,
        help="a small diffusion model fitted on your seeds (offline; CPU is fine)",
    )
)
register(
    GeneratorKind(
        "ar",
        "aod_core.generators.ar",
        None,
        target="chat model spec",
        target_required=True,
        reads_text=True,
        scaffold_optional=False,
        help="the autoregressive baseline: a chat model writes each record (e.g. ar:embedded)",
    )
)
register(
    GeneratorKind(
        "hf",
        "aod_core.generators.hf",
        "HFConfig",
        target="id-or-path",
        target_required=True,
        reads_text=True,
        scaffold_optional=False,
        sample_view="hf",
        conditions=True,
        controls=frozenset({"temperature", "blocks", "remasking", "threshold", "pins"}),
        help="a pretrained masked diffusion LM (LLaDA, Dream, ModernBERT chat DLMs) from a local "
        "folder or the local HF cache, best on a GPU",
    )
)
register(
    GeneratorKind(
        "difflm",
        "aod_core.generators.difflm.generator",
        "DiffLMConfig",
        target="causal LM folder",
        trains=True,
        scaffold_optional=False,
        sample_view="difflm",
        controls=frozenset({"temperature"}),
        help="DiffLM: a VAE over the seeds decoded by the frozen embedded SmolLM2 through soft "
        "prompts, plus latent diffusion (8-13 min to fit on 2 CPU cores)",
    )
)
# fmt: on

__all__ = [
    "GENERATORS",
    "Candidate",
    "EmbeddedConfig",
    "EmbeddedGenerator",
    "Generator",
    "GeneratorKind",
    "Progress",
    "check_options",
    "conditioning_note",
    "config_from_options",
    "kind_of",
    "load_generator",
    "option_names",
    "parse_options",
    "register",
    "spec_forms",
]


def spec_forms() -> str:
    """Every accepted spec form, for messages and help: ``embedded, ar:<chat model spec>, ...``."""
    return ", ".join(k.form for k in GENERATORS.values())


def split_spec(spec: str | None) -> tuple[GeneratorKind, str]:
    """The registered kind a spec names and its target (the text after the colon); InputError otherwise."""
    s = (spec or "embedded").strip()
    name, sep, target = s.partition(":")
    kind = GENERATORS.get(name)
    if kind is None or (sep and not kind.target):
        raise InputError(f"unknown generator spec {s!r} (use {spec_forms()})")
    target = target.strip()
    if kind.target and sep and not target:
        article = "an" if kind.target[0] in "aeiou" else "a"
        need = f"{article} {kind.target} after the colon" + (
            "" if kind.target_required else f", or use plain {kind.name}"
        )
        raise InputError(f"generator '{kind.name}:' needs {need}")
    if kind.target_required and not sep:
        raise InputError(f"generator {s!r} needs a {kind.target}: {kind.form}")
    return kind, target


def kind_of(spec: str | None) -> GeneratorKind | None:
    """The registered kind a spec names, or None when it names none (no error: for pickers and notes)."""
    try:
        return split_spec(spec)[0]
    except InputError:
        return None


def option_names(kind: GeneratorKind | None) -> set[str]:
    """The settings a kind takes (its options class's fields); empty for none or no kind."""
    cls = kind.options_class() if kind is not None else None
    return {f.name for f in fields(cls)} if cls is not None else set()


def load_generator(
    spec: str,
    schema: LoadedSchema,
    seeds: list[dict],
    *,
    device: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    scaffold: bool = True,
    config: Any = None,
    options: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    dependencies: DependencySettings | None = None,
) -> Generator:
    """The generator a spec names, built on the schema and the seeds (not yet fitted).

    ``options`` are the generator's own settings by name (a run's ``generator_config``, e.g.
    ``{"train_steps": 300}``), checked against the kind's options class; ``config`` is an options
    object already built (it wins over ``options``). ``dependencies``: what the user says about the
    seeds' dependencies and keys, for the kinds that keep them while sampling (``conditions``).
    """
    kind, target = split_spec(spec)
    if not scaffold and not kind.scaffold_optional:
        raise InputError(
            f"{kind.name}: generators have no scaffold-free mode (that ablation is the embedded DLM's); drop --no-scaffold"
        )
    cls = kind.options_class()
    if cls is None and options:
        raise InputError(f"generator {spec!r} takes no settings (got {', '.join(sorted(options))})")
    cfg = config if config is not None else (config_from_options(cls, options, spec) if cls else None)
    if cfg is not None and any(f.name == "scaffold" for f in fields(cfg)):
        cfg = replace(cfg, scaffold=scaffold)  # never edit the caller's config
    extra = {"dependencies": dependencies} if kind.conditions and dependencies is not None else {}
    return kind.build_function()(
        target, schema, seeds, config=cfg, device=device, cache_dir=cache_dir, api_key=api_key, **extra
    )


def conditioning_note(spec: str | None) -> str:
    """What the seeds' dependencies and keys do for this generator, in one sentence ("" when it keeps them)."""
    kind = kind_of(spec)
    if kind is None or kind.conditions:
        return ""
    return (
        f"the {kind.name} generator does not keep the seeds' dependencies and keys while sampling "
        "(nor decide steered fields first): the judge still checks them and rejects a broken dependency"
    )


def config_from_options(cls: type[C], options: Mapping[str, Any] | None, spec: str) -> C:
    """``cls(**options)`` with a one-line InputError naming the unknown or ill-typed setting."""
    options = dict(options or {})
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InputError(
            f"unknown setting(s) {', '.join(unknown)} for generator {spec!r} (known: {', '.join(sorted(known))})"
        )
    for f in fields(cls):
        if f.name in options:
            _check_type(f, options[f.name], spec)
    try:
        config = cls(**options)
    except (TypeError, ValueError) as e:
        raise InputError(f"bad settings for generator {spec!r}: {e}") from None
    check = getattr(config, "check", None)
    if check is not None:
        check()  # its ranges, before anything is built: train_steps=-5 used to end in a ZeroDivisionError
    return config


def _check_type(f: Any, value: Any, spec: str) -> None:
    """InputError when a setting's value is not of its default's JSON type (``setting_type_problem``)."""
    default = (
        f.default if f.default is not MISSING else f.default_factory() if f.default_factory is not MISSING else None
    )
    what = setting_type_problem(default, value)
    if what:
        raise InputError(f"generator {spec!r} setting {f.name} must be {what}, got {value!r}")


def setting_type_problem(default: Any, value: Any) -> str:
    """What ``value`` must be to have the JSON type of a setting whose default is ``default`` (a whole
    number for an int, a finite number for a float, true/false for a bool, text, an object, an
    array); "" when it has it. A setting whose default is None takes any value: the owner's ``check``
    judges it."""
    if default is None:
        ok, what = True, ""
    elif isinstance(default, bool):
        ok, what = isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        ok, what = isinstance(value, int) and not isinstance(value, bool), "a whole number"
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        what = "a finite number"
    elif isinstance(default, str):
        ok, what = isinstance(value, str), "text"
    elif isinstance(default, dict):
        ok, what = isinstance(value, dict), "a JSON object"
    elif isinstance(default, (list, tuple)):
        ok, what = isinstance(value, list), "a JSON array"
    else:
        ok, what = True, ""
    return "" if ok else what


def check_options(spec: str, options: Mapping[str, Any] | None) -> None:
    """Raise InputError now when ``options`` do not fit the generator ``spec`` names (nothing is loaded)."""
    kind, _ = split_spec(spec)
    cls = kind.options_class()
    if cls is None:
        if options:
            raise InputError(f"generator {spec!r} takes no settings (got {', '.join(sorted(options))})")
        return
    config_from_options(cls, options, spec)  # checked there


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
        try:  # strict: NaN or 1e400 stay text, so the setting's type check names them
            opts[key.strip()] = strict_loads(raw)
        except ValueError:
            opts[key.strip()] = raw.strip()
    return opts
