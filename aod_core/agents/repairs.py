"""Repairs: the prompt edits a batch's judgement points at directly, proposed beside the optimizer
model's own.

The judge's findings are structured (which rule, which fields, how many records), so some edits
follow from them without asking a model. A small chat model (the offline SmolLM2-135M) rarely
finds them: it writes edits the grammar allows but the feedback does not call for. Each repair is
a candidate like any other: the loop probes it on the same batch as the incumbent and keeps it
only if its reward is strictly higher (``loop.py``), so a repair that does not help costs one
probe and changes nothing. The repairs, in order:

* **typical sampling**: records were rejected as implausible (plausibility findings), at least as
  many as were duplicates or seed copies → the temperature lowered by ``STEP`` (not below
  ``LOWEST``): every value is drawn nearer the seeds' common ones.
* **varied sampling**: at least two records repeated a record or copied a seed, more than were
  implausible → the temperature raised by ``STEP`` (not above ``HIGHEST``).
* **usual range**: the number field most often flagged on its own ("unusually low", "in a sparse
  range": the ``range`` and ``density`` rules) gets a range over the seeds' central
  ``1 - 2 * TAIL`` share of values (clipped to the scaffold's bounds), when the prompt has none
  there yet.

Nothing here reads the feedback's words; the ``aod_scalar`` ablation (no verbal feedback) gets no
repairs either, because they are feedback in another form.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from aod_core.canvas.prompt import Prompt
from aod_core.records import render_path, walk

STEP = 0.2
LOWEST = 0.2
HIGHEST = 1.5
TAIL = 0.02  # the range repair keeps the seeds' values between these quantiles
SINGLE_NUMBER_KINDS = ("range", "density")
MAX_REPAIRS = 2  # one temperature repair and one range repair per iteration at most


@dataclass
class Repair:
    edit: dict[str, Any]  # an optimizer edit (``optimizer.apply_edit``)
    rationale: str


def number_bounds(scaffold: Any) -> dict[str, tuple[float | None, float | None, bool]]:
    """Number slot path -> (schema lo, schema hi, integer?) from the scaffold."""
    out: dict[str, tuple[float | None, float | None, bool]] = {}
    for sl in getattr(scaffold, "slots", None) or []:
        if sl.kind == "value" and sl.vtype in ("integer", "number"):
            out.setdefault(sl.key, (sl.lo, sl.hi, sl.vtype == "integer"))
    return out


def usual_range(seeds: Sequence[Any], path: str, lo: float | None, hi: float | None, integer: bool):
    """The seeds' central values of a (folded) number path, [q(TAIL), q(1-TAIL)], or None."""
    vals = [
        float(v)
        for s in seeds
        for p, v in walk(s)
        if render_path(p, items="*", quote=True) == path and isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    if len(vals) < 10:
        return None
    a, b = (float(x) for x in np.quantile(vals, [TAIL, 1 - TAIL]))
    if integer:
        a, b = float(math.floor(a)), float(math.ceil(b))
    else:
        a, b = round(a, 6), round(b, 6)
    if lo is not None:
        a = max(a, float(lo))
    if hi is not None:
        b = min(b, float(hi))
    return (a, b) if a < b else None


def repairs(prompt: Prompt, judgement: Any, seeds: Sequence[Any], scaffold: Any, *, limit: int = 2) -> list[Repair]:
    """At most ``limit`` repairs for this batch's judgement, most telling first (see the module doc)."""
    if limit <= 0 or judgement is None:
        return []
    checks, verdicts = judgement.checks, judgement.verdicts
    n = len(verdicts)
    repeats = sum(1 for c in checks if c.duplicate or c.seed_copy or c.near_copy)
    implausible = 0
    flagged: Counter = Counter()
    example: dict[str, str] = {}
    numbers = number_bounds(scaffold)
    for c, v in zip(checks, verdicts):
        if not c.passed or v is None or v.accept or not v.evidence:
            continue
        findings = v.evidence.get("findings") or []
        if not findings:
            continue
        implausible += 1
        for path in {f["fields"][0] for f in findings if f.get("kind") in SINGLE_NUMBER_KINDS and f.get("fields")}:
            if path in numbers:
                flagged[path] += 1
                example.setdefault(path, next(f["key"] for f in findings if f["fields"][:1] == [path]))
    out: list[Repair] = []
    t = float(prompt.sampling.temperature)
    if implausible and implausible >= repeats and t - STEP >= LOWEST - 1e-9:
        out.append(
            Repair(
                {"op": "temperature", "amount": round(t - STEP, 2)},
                f"{implausible}/{n} records were rejected as implausible: sample more typical values "
                f"(temperature {t:g} -> {round(t - STEP, 2):g})",
            )
        )
    elif repeats >= 2 and repeats > implausible and t + STEP <= HIGHEST + 1e-9:
        out.append(
            Repair(
                {"op": "temperature", "amount": round(t + STEP, 2)},
                f"{repeats}/{n} records repeat a record or copy a seed: sample more varied values "
                f"(temperature {t:g} -> {round(t + STEP, 2):g})",
            )
        )
    for path, k in flagged.most_common():
        if path in prompt.ranges:
            continue
        span = usual_range(seeds, path, *numbers[path])
        if span is None:
            continue
        share = round(100 * (1 - 2 * TAIL))
        out.append(
            Repair(
                {"op": "range", "path": path, "lo": span[0], "hi": span[1]},
                f"{k}/{n} records: {example[path]}: keep {path} within the seeds' central {share}% "
                f"({span[0]:g}-{span[1]:g})",
            )
        )
        break
    return out[:limit]
