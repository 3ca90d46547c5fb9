"""The Agents-of-Diffusion loop: generate -> judge -> optimize, repeated, recorded in a RunStore.

One iteration:

1. **Generate** ``batch`` candidates with the current prompt (a human edit, if one is pending,
   replaces it at this boundary and is marked as human-authored).
2. **Judge** them: exact checks, LLM verdicts, batch feedback; compute the batch metrics and the
   reward (``reward.py``); accept the candidates that pass every test of task success and were not
   accepted before, up to the target count.
3. **Optimize**: the optimizer proposes up to ``repairs`` edits read off the judge's findings
   (``agents/repairs.py``) and ``proposals`` from its chat model; the incumbent and every valid
   proposal are evaluated on the *same* probe batch (same size, same sampling seed); the best
   proposal replaces the incumbent only if its probe reward is strictly higher, and (``confirm``)
   higher again on a second probe batch of another seed, sampled for the incumbent and it alone.
4. **Commit** the iteration to the store (metrics last) and emit events.

The loop never calls a UI. It reports through ``on_event`` (a callback, safe to point at a queue),
and is controlled from other threads through ``pause``/``resume``/``stop``/``set_prompt``, which
take effect at the next step or iteration boundary. Every random draw is derived from the run seed
and the iteration number, so a run with local models is reproducible and a resumed run continues
exactly where a killed one stopped.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from aod_core.agents.breaker import DEFAULT_MAX_FAILURES, AgentBreaker
from aod_core.agents.compiler import calibrate, needs_calibration
from aod_core.agents.judge import Judge, verdict_row
from aod_core.agents.optimizer import PromptOptimizer, Proposal, prompt_summary
from aod_core.agents.reward import RewardWeights, evaluate
from aod_core.canvas.prompt import Prompt
from aod_core.generators.base import Generator
from aod_core.records import canonical_json
from aod_core.runs.store import IterationLog, RunStore


@dataclass
class LoopSettings:
    iterations: int = 5
    batch: int = 32
    target: int | None = None  # stop once this many records are accepted
    proposals: int = 2  # K candidate prompts per iteration from the optimizer's chat model
    # At most this many more, read off the judge's findings (agents/repairs.py: lower or raise the
    # temperature, keep the most flagged number in the seeds' usual range); 0 = none.
    repairs: int = 2
    # A probe's winner replaces the incumbent only if it beats it again on a second probe batch of
    # another seed (the best of several on one batch is partly the luckiest).
    confirm: bool = True
    # Probe batch size for comparing prompts: big enough that a proposal wins on more than noise (the
    # plausibility judge scores 32 records in a fraction of a second).
    probe: int = 32
    seed: int = 0
    weights: RewardWeights = field(default_factory=RewardWeights)
    # False: the optimizer sees the reward history only, never the judge's words (the aod_scalar
    # ablation, which isolates what verbal feedback adds over a scalar signal).
    verbal_feedback: bool = True
    # The circuit breaker (breaker.py): stop after this many consecutive unusable agent answers.
    max_agent_failures: int = DEFAULT_MAX_FAILURES


@dataclass
class Event:
    kind: str  # run_started, iteration_started, step, batch_generated, verdicts, feedback,
    #            judge_step, proposals, prompt_chosen, metrics, accepted, paused, resumed, stopped, finished, failed
    iteration: int
    data: dict[str, Any] = field(default_factory=dict)
    time: float = field(default_factory=time.time)


SCALAR_ONLY = "(no feedback: improve the reward shown in the history)"


class Stopped(Exception):
    """Raised inside the loop when a stop was requested; the iteration in flight is dropped."""


class AoDLoop:
    def __init__(
        self,
        store: RunStore,
        generator: Generator,
        judge: Judge,
        optimizer: PromptOptimizer,
        settings: LoopSettings,
        *,
        initial_prompt: Prompt | None = None,
        on_event: Callable[[Event], None] | None = None,
        breaker: AgentBreaker | None = None,
    ):
        self.store, self.gen, self.judge, self.opt, self.s = store, generator, judge, optimizer, settings
        self.breaker = breaker  # counts the agents' failed answers (runner.open_loop wraps them)
        self.on_event = on_event or (lambda e: None)
        self._pause = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._human: Prompt | None = None
        done = store.metrics()
        self.start_iteration = len(done)
        self.accepted_keys = {canonical_json(r) for r in store.accepted()}
        chosen = [p for p in store.prompts() if p.get("role") == "next"]
        self.incumbent = Prompt.from_dict(chosen[-1]["prompt"]) if chosen else (initial_prompt or Prompt())
        self.incumbent_author = chosen[-1].get("author", "initial") if chosen else "initial"
        self.history = [
            (prompt_summary(Prompt.from_dict(p["prompt"])), p["reward"])
            for p in store.prompts()
            if p.get("role") == "used"
        ]
        self._logged_compiled = {_compiled_key(p) for p in store.prompts() if p.get("role") == "compiled"}

    # -- control (any thread) -------------------------------------------------------------------

    def pause(self) -> None:
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop.set()
        self._pause.clear()

    def set_prompt(self, prompt: Prompt) -> None:
        """A human-authored prompt for the next iteration (checked now, applied at the boundary)."""
        self.gen.check_prompt(prompt)
        with self._lock:
            self._human = prompt

    @property
    def paused(self) -> bool:
        return self._pause.is_set()

    def _checkpoint(self, iteration: int) -> None:
        if self._pause.is_set():
            self.store.set_status("paused", iteration=iteration)
            self.on_event(Event("paused", iteration))
            while self._pause.is_set() and not self._stop.is_set():
                time.sleep(0.05)
            if not self._stop.is_set():
                self.store.set_status("running", iteration=iteration)
                self.on_event(Event("resumed", iteration))
        if self._stop.is_set():
            raise Stopped

    # -- running --------------------------------------------------------------------------------

    def run(self) -> str:
        """Run until the iteration budget or the target; returns the final status."""
        self.store.set_status("running", iteration=self.start_iteration)
        self.on_event(Event("run_started", self.start_iteration, {"resumed": self.start_iteration > 0}))
        try:
            for it in range(self.start_iteration, self.s.iterations):
                if self.s.target is not None and len(self.accepted_keys) >= self.s.target:
                    break
                self._checkpoint(it)
                self._iteration(it)
        except Stopped:
            self.store.set_status("stopped", iteration=len(self.store.metrics()))
            self.on_event(Event("stopped", len(self.store.metrics())))
            return "stopped"
        except Exception as e:  # recorded honestly, then re-raised for the caller
            from aod_core.errors import InputError

            error = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
            info = {"agents": self.breaker.describe()} if self.breaker is not None else {}
            try:
                self.store.set_status("failed", error=error, iteration=len(self.store.metrics()), **info)
            except InputError:  # StoreWriteError: the disk that failed the commit may fail this too
                pass
            self.on_event(Event("failed", len(self.store.metrics()), {"error": error}))
            raise
        self.store.set_status("finished", iteration=len(self.store.metrics()), accepted=len(self.accepted_keys))
        self.on_event(Event("finished", len(self.store.metrics()), {"accepted": len(self.accepted_keys)}))
        return "finished"

    def _seed(self, it: int, salt: int) -> int:
        return (self.s.seed * 1_000_003 + it * 7919 + salt) % (2**31)

    def _sample(self, prompt: Prompt, n: int, seed: int, it: int, phase: str):
        def step(info) -> None:
            self.on_event(Event("step", it, {"phase": phase, "done": info.total - info.masked, "total": info.total}))

        return self.gen.sample(prompt, n, seed=seed, on_step=step)

    def _calibrated(self, prompt: Prompt, it: int) -> Prompt:
        """The prompt with its compiled shares ("mostly X") measured on this generator (a bias is
        raised until the sampled share reaches the target); unchanged when there are none."""
        if not needs_calibration(prompt, getattr(self.gen, "spec", "")):
            return prompt
        return calibrate(
            prompt,
            lambda q, n, seed: self._sample(q, n, seed, it, "calibrate"),
            spec=getattr(self.gen, "spec", ""),
            seed=self._seed(it, 3),
        )

    def _log_compiled(self, log: IterationLog, prompt: Prompt, author: str) -> None:
        """A ``compiled`` row in the history the first time a compiled text is used: which edits
        the compiler wrote from whose text, and what it could not map."""
        if not prompt.compiled:
            return
        row = {"role": "compiled", "author": "compiler", "for": author, **prompt.compiled}
        key = _compiled_key(row)
        if key not in self._logged_compiled:
            self._logged_compiled.add(key)
            log.prompts.append(row)

    def _judging(self, it: int, phase: str) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            self.on_event(Event("judge_step", it, {"phase": phase, "done": done, "total": total}))

        return report

    def _probe_reward(self, prompt: Prompt, seed: int, it: int, times: dict[str, float]) -> float:
        """The reward of one probe batch of ``prompt``; its sampling and judging seconds go to ``times``."""
        self._checkpoint(it)
        t0 = time.perf_counter()
        pc = self._sample(prompt, self.s.probe, seed, it, "probe")
        t1 = time.perf_counter()
        pj = self.judge.judge(pc, prior=self.accepted_keys, summarise=False, on_progress=self._judging(it, "probe"))
        times["gen"] += t1 - t0
        times["judge"] += time.perf_counter() - t1
        return evaluate(pc, pj, self.judge.seeds, self.s.weights)["reward"]

    def _confirmed(
        self, incumbent: Prompt, winner: Prompt, it: int, log: IterationLog, times: dict[str, float]
    ) -> bool:
        """Whether the probe's winner beats the incumbent again on a fresh probe batch (another seed).
        The best of several proposals on one batch is partly the luckiest one; a batch the choice did
        not see tells a real gain from that luck. Always True with ``confirm`` off."""
        if not self.s.confirm:
            return True
        seed = self._seed(it, 4)
        rewards = []
        for role, cand in (("incumbent_confirm", incumbent), ("proposal_confirm", winner)):
            r = self._probe_reward(cand, seed, it, times)
            rewards.append(r)
            log.prompts.append({"role": role, "prompt": cand.to_dict(), "reward": r, "probe_seed": seed})
        return rewards[1] > rewards[0]

    def _iteration(self, it: int) -> None:
        s, log = self.s, IterationLog(it)
        with self._lock:
            human, self._human = self._human, None
        if human is not None:
            self.incumbent, self.incumbent_author = human, "human"
        t0 = time.perf_counter()
        self.incumbent = self._calibrated(self.incumbent, it)
        prompt, author = self.incumbent, self.incumbent_author
        self.on_event(Event("iteration_started", it, {"prompt": prompt.to_dict(), "author": author}))
        self._log_compiled(log, prompt, author)

        cands = self._sample(prompt, s.batch, self._seed(it, 0), it, "generate")
        t_gen = time.perf_counter() - t0
        self.on_event(Event("batch_generated", it, {"texts": [c.text for c in cands]}))
        self._checkpoint(it)

        t0 = time.perf_counter()
        judgement = self.judge.judge(cands, prior=self.accepted_keys, on_progress=self._judging(it, "main"))
        t_judge = time.perf_counter() - t0
        m = evaluate(cands, judgement, self.judge.seeds, s.weights)
        success = m.pop("_success")
        rows = [
            dict(verdict_row(c, ch, v), index=i, phase="main")
            for i, (c, ch, v) in enumerate(zip(cands, judgement.checks, judgement.verdicts))
        ]
        self.on_event(Event("verdicts", it, {"rows": rows}))
        self.on_event(Event("feedback", it, {"feedback": judgement.feedback, **judgement.to_dict()}))
        room = None if s.target is None else max(0, s.target - len(self.accepted_keys))
        new = []
        for c, ok in zip(cands, success):
            key = canonical_json(c.record) if c.parsed else None
            if ok and key not in self.accepted_keys and (room is None or len(new) < room):
                new.append(c.record)
                self.accepted_keys.add(key)
        for row, ok in zip(rows, success):
            row["accepted"] = bool(ok) and row["record"] in new
        log.candidates += rows
        log.feedback.append({"feedback": judgement.feedback, **judgement.to_dict()})
        log.prompts.append({"role": "used", "prompt": prompt.to_dict(), "author": author, "reward": m["reward"]})
        self.history.append((prompt_summary(prompt), m["reward"]))

        t_opt = t_probe_gen = t_probe_judge = 0.0
        last = it == s.iterations - 1 or (s.target is not None and len(self.accepted_keys) >= s.target)
        nxt, nxt_author = prompt, author
        if not last and (s.proposals > 0 or s.repairs > 0):
            self._checkpoint(it)
            t0 = time.perf_counter()
            feedback = judgement.feedback if s.verbal_feedback else SCALAR_ONLY
            proposals = self.opt.propose(
                prompt,
                feedback,
                self.history,
                s.proposals,
                check=self.gen.check_prompt,
                seed=self._seed(it, 1),
                judgement=judgement if s.verbal_feedback else None,
                seeds=self.judge.seeds,
                repairs=s.repairs,
            )
            t_opt = time.perf_counter() - t0
            t0 = time.perf_counter()
            for p in proposals:
                if p.prompt is not None:
                    p.prompt = self._calibrated(p.prompt, it)
            t_probe_gen += time.perf_counter() - t0
            self.on_event(Event("proposals", it, {"proposals": [_proposal_row(p) for p in proposals]}))
            probe_seed = self._seed(it, 2)
            times = {"gen": 0.0, "judge": 0.0}
            scored: list[tuple[float, Prompt | None, Proposal | None]] = []
            for cand_prompt, prop in [(prompt, None)] + [(p.prompt, p) for p in proposals if p.prompt is not None]:
                scored.append((self._probe_reward(cand_prompt, probe_seed, it, times), cand_prompt, prop))
            incumbent_reward = scored[0][0]
            best = max(scored, key=lambda x: x[0])
            for r, cp, prop in scored:
                row = {
                    "role": "incumbent_probe" if prop is None else "proposal",
                    "prompt": cp.to_dict(),
                    "reward": r,
                    "probe_seed": probe_seed,
                }
                if prop is not None:
                    row.update(_proposal_row(prop))
                log.prompts.append(row)
            for prop in proposals:
                if prop.prompt is None:
                    log.prompts.append({"role": "proposal", "prompt": None, "reward": None, **_proposal_row(prop)})
            confirmed = None  # no proposal beat the incumbent on the probe: nothing to confirm
            if best[2] is not None and best[0] > incumbent_reward:
                confirmed = self._confirmed(prompt, best[1], it, log, times)
                if confirmed:
                    nxt, nxt_author = best[1], "optimizer"
            t_probe_gen += times["gen"]
            t_probe_judge += times["judge"]
            self.on_event(
                Event(
                    "prompt_chosen",
                    it,
                    {
                        "prompt": nxt.to_dict(),
                        "author": nxt_author,
                        "changed": nxt is not prompt,
                        "incumbent_reward": incumbent_reward,
                        "best_reward": best[0],
                        "confirmed": confirmed,
                    },
                )
            )
        log.prompts.append({"role": "next", "prompt": nxt.to_dict(), "author": nxt_author})
        log.accepted = new
        log.metrics = m
        m.update(
            {
                "accepted_new": len(new),
                "generate_s": round(t_gen + t_probe_gen, 3),
                "judge_s": round(t_judge + t_probe_judge, 3),
                "optimize_s": round(t_opt, 3),
                "prompt_author": author,
            }
        )
        self._checkpoint(it)  # a stop here still drops the whole iteration: nothing is half-written
        self.store.commit(log)
        self.incumbent, self.incumbent_author = nxt, nxt_author
        self.on_event(Event("metrics", it, dict(m, iteration=it)))
        self.on_event(Event("accepted", it, {"records": new, "total": len(self.accepted_keys)}))


def _proposal_row(p: Proposal) -> dict[str, Any]:
    return {"edit": p.edit, "error": p.error, "rationale": p.rationale, "source": p.source}


def _compiled_key(row: dict[str, Any]) -> str:
    import json

    return json.dumps([row.get("text"), row.get("edits")], sort_keys=True, ensure_ascii=False, default=str)
