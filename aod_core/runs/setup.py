"""Starting and resuming runs: inputs + model specs + settings -> a RunStore and an AoDLoop.

A run folder is self-contained: the schema and seeds are copied into ``inputs/`` and the
configuration (no secrets) into ``config.json``, so ``aod resume RUN_DIR`` needs nothing else.
Everything that can be checked before minutes of work (inputs, model specs, the initial prompt)
is checked before the folder is created.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from aod_core.agents.breaker import AgentBreaker
from aod_core.agents.compiler import compiler_for, should_compile
from aod_core.agents.judge import DEFAULT_RUBRIC, Judge, JudgeSettings
from aod_core.agents.optimizer import PromptOptimizer
from aod_core.agents.repairs import MAX_REPAIRS
from aod_core.agents.reward import RewardWeights
from aod_core.canvas.prompt import Prompt
from aod_core.chat import load_chat_model
from aod_core.chat.endpoints import endpoints, trust
from aod_core.data.dependencies import DependencySettings
from aod_core.data.schema import LoadedSchema, load_schema
from aod_core.data.seeds import load_records
from aod_core.errors import InputError
from aod_core.files import atomic_write_text
from aod_core.generators import Progress, load_generator
from aod_core.runs import fingerprint
from aod_core.runs.loop import AoDLoop, Event, LoopSettings
from aod_core.runs.store import RunStore
from aod_core.secrets import scrub

# Keys of config.json that the runner records about a run rather than settings (fingerprint.py).
RECORDED = ("fingerprint", "fingerprint_changes")


@dataclass
class RunConfig:
    generator: str = "embedded"
    judge: str = "embedded"
    optimizer: str = "embedded"
    task: str = ""
    rubric: str = DEFAULT_RUBRIC
    prompt: dict[str, Any] = field(default_factory=lambda: Prompt().to_dict())
    loop: LoopSettings = field(default_factory=LoopSettings)
    drop_invalid: bool = False
    device: str | None = None
    scaffold: bool = True
    generator_config: dict[str, Any] = field(default_factory=dict)  # the generator's own settings, e.g. train_steps
    judge_settings: JudgeSettings = field(default_factory=JudgeSettings)
    # Instruction text -> scaffold edits (agents/compiler.py): auto (for generators that cannot read
    # text), on, off; ``compiler`` is the chat model asked about what the rules leave ("" = the
    # optimizer's model, "none" = the rules alone).
    compile: str = "auto"
    compiler: str = ""
    # The seeds' dependencies and keys (data/dependencies.py): auto, off, and the user's ignores and additions.
    dependencies: DependencySettings = field(default_factory=DependencySettings)

    def compiler_spec(self) -> str | None:
        spec = (self.compiler or self.optimizer).strip()
        return None if spec.lower() == "none" else spec

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunConfig:
        d = {k: v for k, v in d.items() if k not in RECORDED}
        loop = dict(d.get("loop") or {})
        loop["weights"] = RewardWeights(**(loop.get("weights") or {}))
        judge = JudgeSettings(**(d.get("judge_settings") or {}))
        deps = DependencySettings.from_dict(d.get("dependencies"))  # runs from before it: auto
        return cls(**{**d, "loop": LoopSettings(**loop), "judge_settings": judge, "dependencies": deps})


def _generator(config: RunConfig, schema, seeds, api_key: str | None = None):
    how = {"device": config.device, "scaffold": config.scaffold, "options": config.generator_config}
    return load_generator(config.generator, schema, seeds, **how, api_key=api_key, dependencies=config.dependencies)


def check_settings(s: LoopSettings) -> None:
    if s.iterations < 1:
        raise InputError(f"--iterations must be >= 1, got {s.iterations}")
    if s.batch < 1:
        raise InputError(f"--batch must be >= 1, got {s.batch}")
    if s.target is not None and s.target < 1:
        raise InputError(f"--target must be >= 1, got {s.target}")
    if s.proposals < 0 or s.probe < 1:
        raise InputError("--proposals must be >= 0 and --probe >= 1")
    if not 0 <= s.repairs <= MAX_REPAIRS:
        raise InputError(
            f"--repairs must be 0 to {MAX_REPAIRS} (one temperature and one range repair), got {s.repairs}"
        )
    if s.max_agent_failures < 1:
        raise InputError(f"--max-agent-failures must be >= 1, got {s.max_agent_failures}")
    s.weights.check()


def needs_chat(config: RunConfig, spec: str) -> bool:
    """Whether a run loads this chat model: the optimizer always; the judge unless it is the
    plausibility judge alone."""
    return spec == config.optimizer or config.judge_settings.resolved_mode(config.judge) != "plausibility"


@dataclass
class RunHandle:
    store: RunStore
    loop: AoDLoop
    config: RunConfig


def create_run(schema_path: str, seeds_path: str, out: str, config: RunConfig) -> RunStore:
    """Validate everything cheap, then create the run folder with its inputs and config."""
    check_settings(config.loop)
    schema = load_schema(schema_path)
    seeds = load_records(seeds_path, schema, on_invalid="drop" if config.drop_invalid else "stop")
    return create_run_from(schema, seeds.records, out, config)


def create_run_from(schema: LoadedSchema, seeds: list[Any], out: str | os.PathLike, config: RunConfig) -> RunStore:
    """``create_run`` for inputs already loaded and checked (the app's Design page)."""
    check_settings(config.loop)
    config.judge_settings.check()
    config.dependencies.check()
    if not seeds:
        raise InputError("no valid seed records to learn from")
    prompt = Prompt.from_dict(config.prompt)
    should_compile(config.compile, config.generator)  # a bad mode fails now
    gen = _generator(config, schema, seeds)
    gen.check_prompt(prompt)
    for spec in {config.judge, config.optimizer} | ({config.compiler_spec()} - {None}):
        load_chat_model(spec)  # spec errors now; loading is lazy
    store = RunStore.create(out, config.to_dict())
    trust(endpoints(config.to_dict()))  # servers the user names for their own run: a resume need not ask
    inputs = store.path / "inputs"
    inputs.mkdir()
    # The schema as parsed (key order kept: it is the scaffold's field order) and only the seeds
    # actually used (invalid ones dropped), as JSONL whatever the original format.
    atomic_write_text(inputs / "schema.json", json.dumps(schema.raw, indent=2, ensure_ascii=False))
    atomic_write_text(inputs / "seeds.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in seeds))
    return store


def check_inputs(store: RunStore) -> None:
    """InputError when the folder's copied inputs are missing: killed between config.json and the
    inputs (``create_run_from``), or removed by hand."""
    missing = [n for n in ("schema.json", "seeds.jsonl") if not (store.path / "inputs" / n).is_file()]
    if missing:
        raise InputError(
            f"inputs/{' and inputs/'.join(missing)} missing: the run was interrupted while it was "
            "being created (or the file was removed); delete the folder and start the run again",
            where=str(store.path),
        )


def open_loop(
    store: RunStore,
    *,
    on_event: Callable[[Event], None] | None = None,
    on_fit: Callable[[Progress], None] | None = None,
    chat_cache: dict[str, Any] | None = None,
    api_key: str | None = None,
) -> RunHandle:
    """Build the generator, agents and loop for a run folder (new or resumed); fits the generator."""
    config = RunConfig.from_dict(store.config)
    check_inputs(store)
    schema = load_schema(store.path / "inputs" / "schema.json")
    seeds = load_records(store.path / "inputs" / "seeds.jsonl", schema).records
    gen = _generator(config, schema, seeds, api_key)
    cache = chat_cache if chat_cache is not None else {}
    for spec in {config.judge, config.optimizer}:
        if spec not in cache and needs_chat(config, spec):
            cache[spec] = load_chat_model(spec, device=config.device, api_key=api_key)
    breaker = AgentBreaker(config.loop.max_agent_failures)  # wraps each agent's model, never the shared cache
    compiler = None
    if should_compile(config.compile, config.generator):
        cspec = config.compiler_spec()
        if cspec is not None and cspec not in cache:
            cache[cspec] = load_chat_model(cspec, device=config.device, api_key=api_key)
        compiler = compiler_for(
            getattr(gen, "scaffold", None),
            schema.resolved,
            seeds,
            breaker.wrap(cache.get(cspec)) if cspec else None,
            seed=config.loop.seed,
        )
    initial = Prompt.from_dict(config.prompt)
    if compiler is not None and initial.text.strip() and not initial.compiled:
        initial = compiler.apply(initial, check=gen.check_prompt)
        if on_event:
            on_event(Event("compiled", store.iterations_done(), {"compiled": initial.compiled}))
    gen.fit(on_progress=on_fit)
    chats = {
        role: (spec, cache.get(spec))
        for role, spec in (
            ("judge", config.judge),
            ("optimizer", config.optimizer),
            ("compiler", config.compiler_spec()),
        )
        if spec is not None
        and (role != "compiler" or compiler is not None)
        and (role != "judge" or config.judge_settings.resolved_mode(config.judge) != "plausibility")
    }
    _check_fingerprint(
        store,
        fingerprint.run_fingerprint(
            store.path,
            gen,
            chats,
            generator_spec=config.generator,
            generator_options=config.generator_config,
            device=config.device,
            seed=config.loop.seed,
        ),
        on_event,
    )

    def judge_progress(done: int, total: int) -> None:
        if on_fit:
            on_fit(Progress("judge", done, total))

    judge = Judge.build(
        config.judge,
        breaker.wrap(cache.get(config.judge)),
        schema,
        seeds,
        config.judge_settings,
        task=config.task,
        rubric=config.rubric,
        seed=config.loop.seed,
        on_progress=judge_progress,
        dependencies=config.dependencies,
    )
    optimizer = PromptOptimizer(
        breaker.wrap(cache[config.optimizer]),
        getattr(gen, "scaffold", None),
        task=config.task,
        seed=config.loop.seed,
        compiler=compiler,
    )
    loop = AoDLoop(
        store, gen, judge, optimizer, config.loop, initial_prompt=initial, on_event=on_event, breaker=breaker
    )
    return RunHandle(store, loop, config)


def _check_fingerprint(store: RunStore, now: dict[str, Any], on_event: Callable[[Event], None] | None) -> list[str]:
    """Record the run's fingerprint the first time; on a resume, record and announce what changed."""
    now = scrub(now)  # as stored: a spec's URL credentials are never written, so never compared either
    before = store.config.get("fingerprint")
    if not isinstance(before, dict):
        store.update_config(fingerprint=now)
        return []
    found = fingerprint.changes(before, now)
    if found:
        history = list(store.config.get("fingerprint_changes") or [])
        if not history or history[-1].get("changes") != found:
            history.append({"iteration": store.iterations_done(), "time": time.time(), "changes": found})
            store.update_config(fingerprint_changes=history)
        if on_event:
            on_event(
                Event(
                    "warning",
                    store.iterations_done(),
                    {"warning": fingerprint.describe_changes(found), "changes": found},
                )
            )
    return found
