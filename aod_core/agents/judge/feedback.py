"""The judge's batch feedback: what a prompt edit could fix, in code, most telling first.

Facts computed exactly over the batch (records that do not parse, recurring schema errors, broken
dependencies, duplicates, seed copies and near copies, reused keys, copying figures far from real
records', category shares that drift from the seeds, value pairs the seeds never
show) and the rejected records' plausibility findings grouped by what they share ("14/32 records:
body_mass_g above every seed with species = Adelie"). The LLM's own summary, in the LLM modes, is
asked for by the judge (``agent.py``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from aod_core.agents.judge.checks import Checks
from aod_core.agents.judge.verdicts import Verdict
from aod_core.eval.copying import REFERENCE_P, copying_lines
from aod_core.records import Candidate, canonical_json, leaves


def batch_facts(
    cands: Sequence[Candidate],
    checks: Sequence[Checks],
    seeds: Sequence[Any],
    *,
    limit: int = 8,
    keys: Sequence[str] = (),
) -> list[str]:
    """Observations a prompt edit could fix, most telling first, all computed exactly."""
    n = len(cands)
    facts: list[str] = []
    bad_parse = sum(not c.parses for c in checks)
    if bad_parse:
        facts.append(f"{bad_parse}/{n} records do not parse as JSON")
    errs = Counter(_fold(e.split(": ", 1)[0]) for c in checks for e in c.schema_errors)
    for path, k in errs.most_common(2):
        facts.append(f"{k} schema errors at {path}")
    broken = Counter(_dependency_pair(e) for c in checks for e in c.dependency_errors)
    for pair, k in broken.most_common(2):
        facts.append(f"{k}/{n} records: {pair} (the seeds fix one by the other)")
    d, s = sum(c.duplicate for c in checks), sum(c.seed_copy for c in checks)
    if d:
        facts.append(f"{d}/{n} records repeat another record")
    if s:
        facts.append(f"{s}/{n} records copy a seed exactly")
    near = sum(c.near_copy for c in checks)
    if near:
        facts.append(f"{near}/{n} records are near copies of a seed or an earlier record")
    reused = sum(c.key_reused for c in checks)
    if reused and keys:
        facts.append(f"{reused}/{n} records reuse a seed's {' or '.join(keys)}")
    ok = [c.record for c, ch in zip(cands, checks) if ch.parses and isinstance(c.record, dict)]
    if ok:
        facts += _category_drift(ok, seeds)
        facts += _unseen_combinations(ok, seeds)
    return facts[:limit]


def _dependency_pair(reason: str) -> str:
    """ "$.iso_num and $.country disagree" from a dependency reason (``checks.dependency_errors``)."""
    m = re.match(r"(\S+) = .* does not go with (\S+) = ", reason)
    return f"{m.group(1)} and {m.group(2)} disagree" if m else reason


def copying_facts(fig: dict[str, Any] | None) -> list[str]:
    """The batch's copying figures as facts, when they show copying (more than twice as many records
    close to a seed as real records would be, or a median distance under half the real one)."""
    if not fig:
        return []
    close, ratio = fig.get("closer_than_reference_p05"), fig.get("dcr_median_ratio")
    if (close is not None and close > 2 * REFERENCE_P / 100) or (ratio is not None and ratio < 0.5):
        return [line for line in copying_lines(fig) if "reuse" not in line]
    return []


def categoricals(seeds: Sequence[Any]) -> dict[str, Counter]:
    """Leaf paths (items folded to [*]) whose seed values are few distinct strings/booleans/nulls."""
    vals: dict[str, Counter] = {}
    for s in seeds:
        for path, v in leaves(s):
            if v is None or isinstance(v, (str, bool)):
                vals.setdefault(_fold(path), Counter())[canonical_json(v)] += 1
    return {p: c for p, c in vals.items() if 1 < len(c) <= 12}


def _fold(path: str) -> str:
    return re.sub(r"\[\d+\]", "[*]", path)


def _category_drift(records: list[dict], seeds: Sequence[Any]) -> list[str]:
    out = []
    for path, seed_counts in categoricals(seeds).items():
        got = Counter(canonical_json(v) for r in records for p, v in leaves(r) if _fold(p) == path)
        total_s, total_g = sum(seed_counts.values()), sum(got.values())
        if not total_g:
            continue
        for value, k in seed_counts.most_common():
            share_s, share_g = k / total_s, got.get(value, 0) / total_g
            if abs(share_s - share_g) >= 0.15:
                out.append(f"{path} = {value} is {share_g:.0%} of the batch but {share_s:.0%} of the seeds")
                break
    return out


def _unseen_combinations(records: list[dict], seeds: Sequence[Any]) -> list[str]:
    """Pairs of top-level categorical values that never occur together in the seeds."""
    cats = [p for p in categoricals(seeds) if p.count(".") == 1 and "[" not in p]
    seen = {
        (a, b, canonical_json(s.get(a[2:])), canonical_json(s.get(b[2:])))
        for s in seeds
        for i, a in enumerate(cats)
        for b in cats[i + 1 :]
    }
    bad: Counter = Counter()
    for r in records:
        for i, a in enumerate(cats):
            for b in cats[i + 1 :]:
                key = (a, b, canonical_json(r.get(a[2:])), canonical_json(r.get(b[2:])))
                if key not in seen:
                    bad[key] += 1
    return [
        f"{k} records pair {a} = {va} with {b} = {vb}, which never occurs in the seeds"
        for (a, b, va, vb), k in bad.most_common(2)
    ]


def finding_facts(verdicts: Sequence[Verdict | None], *, limit: int = 4) -> list[str]:
    """The rejected records' plausibility findings, grouped by what they share, most frequent first:
    '14/32 records: body_mass_g above every seed with species = Adelie (e.g. body_mass_g = 5900 ...)'."""
    n = len(verdicts)
    groups: Counter = Counter()
    example: dict[str, str] = {}
    for v in verdicts:
        if v is None or v.accept or not v.evidence:
            continue
        seen = set()
        for f in v.evidence.get("findings", [])[:3]:
            if f["key"] not in seen:
                seen.add(f["key"])
                groups[f["key"]] += 1
                example.setdefault(f["key"], f["text"])
    return [f"{k}/{n} records: {key} (e.g. {example[key]})" for key, k in groups.most_common(limit)]
