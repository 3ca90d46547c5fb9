"""The app's run settings (the Models & settings page) and how they become a run's configuration.

Every default is read from the engine's own dataclasses (RunConfig, LoopSettings, RewardWeights,
JudgeSettings) and the generator registry, so the app and ``aod run`` start from the same values;
:func:`config_from_settings` checks everything a run needs before any model is loaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aod_core import chat
from aod_core.agents.judge import DEFAULT_RUBRIC, JudgeSettings
from aod_core.agents.reward import RewardWeights
from aod_core.canvas.prompt import Prompt
from aod_core.data.dependencies import DependencySettings
from aod_core.errors import InputError
from aod_core.generators import GeneratorKind, check_options, kind_of, option_names, parse_options, spec_forms
from aod_core.runs.loop import LoopSettings
from aod_core.runs.setup import RunConfig, check_settings

_RUN, _LOOP, _WEIGHTS, _JUDGE = RunConfig(), LoopSettings(), RewardWeights(), JudgeSettings()

#: The app's run settings (Models & settings page) and their defaults, all read from the engine's
#: dataclasses (RunConfig, LoopSettings, RewardWeights, JudgeSettings): one source for every default.
SETTINGS_DEFAULTS: dict[str, Any] = {
    "generator": _RUN.generator,
    "judge": _RUN.judge,
    "optimizer": _RUN.optimizer,
    "device": "auto",
    "iterations": _LOOP.iterations,
    "batch": _LOOP.batch,
    "target": _LOOP.target,
    "proposals": _LOOP.proposals,
    "repairs": _LOOP.repairs,
    "confirm": _LOOP.confirm,
    "probe": _LOOP.probe,
    "seed": _LOOP.seed,
    "w_tsr": _WEIGHTS.tsr,
    "w_judge": _WEIGHTS.judge,
    "w_novelty": _WEIGHTS.novelty,
    "w_diversity": _WEIGHTS.diversity,
    "train_steps": None,
    "scaffold": _RUN.scaffold,
    "gen_options": "",
    "gen_fields": {},
    "string_modes": {},
    "judge_mode": _JUDGE.mode,
    "accept_share": _JUDGE.accept_share,
    "near_copy": _JUDGE.near_copy,
    "near_numbers": _JUDGE.near_numbers,
    "veto": _JUDGE.veto,
    "dependencies": {},  # DependencySettings as a dict, from the Design page's Dependencies tab
    "compile": _RUN.compile,
    "compiler": _RUN.compiler,
    "trust_remote_code": False,  # an hf: folder's own Python runs only when the Models page box is ticked
}


def generator_options(settings: Mapping[str, Any], kind: GeneratorKind | None) -> dict[str, Any]:
    """The generator's own settings from the app's: the Models page's text box (which wins), its
    training steps, its widgets for this kind, the Design page's string modes and the trust box, each
    only where the kind takes it."""
    s = {**SETTINGS_DEFAULTS, **settings}
    takes = option_names(kind)
    opts = parse_options(str(s["gen_options"] or ""))
    if s["train_steps"] not in (None, "", 0) and "train_steps" in takes:
        opts["train_steps"] = int(s["train_steps"])
    for name, value in dict(s["gen_fields"] or {}).items():
        if name in takes:
            opts.setdefault(name, value)
    if s["string_modes"] and "string_modes" in takes:
        opts.setdefault("string_modes", dict(s["string_modes"]))
    if s["trust_remote_code"] and "trust_remote_code" in takes:
        opts["trust_remote_code"] = True
    return opts


def config_from_settings(
    settings: dict[str, Any], *, task: str = "", rubric: str | None = None, prompt: Prompt | None = None
) -> RunConfig:
    """A RunConfig from the app's settings (missing keys take the defaults); InputError if unusable."""
    s = {**SETTINGS_DEFAULTS, **{k: v for k, v in settings.items() if k in SETTINGS_DEFAULTS}}
    weights = RewardWeights(
        tsr=float(s["w_tsr"]),
        judge=float(s["w_judge"]),
        novelty=float(s["w_novelty"]),
        diversity=float(s["w_diversity"]),
    )
    loop = LoopSettings(
        iterations=int(s["iterations"]),
        batch=int(s["batch"]),
        target=None if s["target"] in (None, 0, "") else int(s["target"]),
        proposals=int(s["proposals"]),
        repairs=int(s["repairs"]),
        confirm=bool(s["confirm"]),
        probe=int(s["probe"]),
        seed=int(s["seed"]),
        weights=weights,
    )
    check_settings(loop)
    for key in ("generator", "judge", "optimizer"):
        if not str(s[key] or "").strip():
            forms = spec_forms() if key == "generator" else chat.SPEC_FORMS
            raise InputError(f"the {key} model is empty; use {forms}")
    gen_config = generator_options(s, kind_of(str(s["generator"])))
    check_options(str(s["generator"]), gen_config)
    for key in ("judge", "optimizer"):
        chat.load_chat_model(s[key].strip())  # a bad spec fails here (nothing is loaded yet)
    from aod_core.agents.compiler import should_compile

    should_compile(str(s["compile"] or "auto"), str(s["generator"] or ""))
    if str(s["compiler"] or "").strip().lower() not in ("", "none"):
        chat.load_chat_model(str(s["compiler"]).strip())
    judge = JudgeSettings(
        mode=str(s["judge_mode"]),
        accept_share=float(s["accept_share"]),
        near_copy=float(s["near_copy"]),
        near_numbers=float(s["near_numbers"]),
        veto=float(s["veto"]),
    )
    judge.check()
    dependencies = DependencySettings.from_dict(dict(s["dependencies"] or {}))
    return RunConfig(
        generator=s["generator"].strip(),
        judge=s["judge"].strip(),
        optimizer=s["optimizer"].strip(),
        task=task,
        rubric=rubric if rubric and rubric.strip() else DEFAULT_RUBRIC,
        prompt=(prompt or Prompt(text=task)).to_dict(),
        loop=loop,
        device=None if s["device"] in (None, "", "auto") else s["device"],
        scaffold=bool(s["scaffold"]),
        generator_config=gen_config,
        judge_settings=judge,
        compile=str(s["compile"] or "auto"),
        compiler=str(s["compiler"] or "").strip(),
        dependencies=dependencies,
    )
