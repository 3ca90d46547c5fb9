"""Registered metrics: each metric declared once with its name, direction, range, meaning and function.

A number is only useful with how to read it, so a metric is registered together with whether higher
or lower is better, its range and its definition (the SDMetrics / Data Designer practice), and the
function that computes it. A suite (``audit.METRICS``) is a registry: an ordered table of entries;
``evaluate`` runs one over a shared context and returns every value in the table's order.
docs/METRICS.md lists the audit's entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

DIRECTIONS = ("higher", "lower", "neutral")
# Families in the order a suite computes them: a later family may reuse what an earlier one computed,
# and notes about the computation come in this order, whatever the order of the table.
FAMILIES = ("counts", "validity", "novelty", "diversity", "fidelity", "distance")


@dataclass(frozen=True)
class MetricInfo:
    """One registered metric. ``direction`` is "higher", "lower" (better) or "neutral" (a reference
    value or a count); ``range`` is (low, high), high None when unbounded; ``compute(context)``
    returns the value, or None when it cannot be computed (the context's notes say why)."""

    name: str
    direction: str
    range: tuple[float, float | None]
    description: str
    family: str
    compute: Callable[[Any], float | int | None]


def metric(
    name: str,
    direction: str,
    lo: float,
    hi: float | None,
    family: str,
    description: str,
    compute: Callable[[Any], float | int | None],
) -> MetricInfo:
    if direction not in DIRECTIONS or family not in FAMILIES:
        raise ValueError(f"metric {name}: direction {direction!r} or family {family!r} is not known")
    return MetricInfo(name, direction, (lo, hi), description, family, compute)


def registry(*entries: MetricInfo) -> dict[str, MetricInfo]:
    """Name -> entry, in the given order; a name registered twice is an error."""
    out: dict[str, MetricInfo] = {}
    for e in entries:
        if e.name in out:
            raise ValueError(f"metric {e.name} is registered twice")
        out[e.name] = e
    return out


def evaluate(metrics: dict[str, MetricInfo], context: Any) -> dict[str, Any]:
    """Every metric's value over ``context``, computed family by family (``FAMILIES``; table order
    within a family) and returned in the table's order."""
    by_family = sorted(metrics.values(), key=lambda m: FAMILIES.index(m.family))
    values = {m.name: m.compute(context) for m in by_family}
    return {name: values[name] for name in metrics}
