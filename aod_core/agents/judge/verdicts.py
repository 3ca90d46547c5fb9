"""What the judge decides: one record's verdict, a batch's judgement (verdicts, checks and the
feedback the optimizer reads), and a candidate with its verdict as stored in the run
(``candidates.jsonl``, see docs/RUN_FOLDER.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from aod_core.agents.judge.checks import Checks
from aod_core.records import Candidate


@dataclass
class Verdict:
    """One record's verdict, with who gave it and the plausibility evidence it rests on."""

    accept: bool
    score: float | None  # None when the judge gave no usable answer
    reasons: list[str]
    # "checks" (rejected by code), "plausibility", "llm", "combined" (LLM with evidence, or vetoed by
    # the plausibility model), or "failed" (no usable LLM answer)
    source: str
    evidence: dict[str, Any] | None = None  # the plausibility assessment (score, findings)


@dataclass
class Judgement:
    """One batch judged: the exact checks and the verdict of every candidate, and the feedback."""

    checks: list[Checks]
    verdicts: list[Verdict]
    facts: list[str]  # batch observations computed in code
    summary: str  # the LLM's batch feedback ("" if it gave none)
    summary_error: str | None = None
    llm_seconds: float = 0.0
    copying: dict[str, Any] | None = None  # the batch's copying figures (eval/copying.py), main batches only

    @property
    def feedback(self) -> str:
        """What the optimizer reads: code facts first, then the judge's words."""
        lines = [f"- {f}" for f in self.facts]
        if self.summary:
            lines.append(f"Judge: {self.summary}")
        return "\n".join(lines) if lines else "No problems found."

    def to_dict(self) -> dict[str, Any]:
        return {
            "facts": self.facts,
            "summary": self.summary,
            "summary_error": self.summary_error,
            "copying": self.copying,
        }


def verdict_row(c: Candidate, ch: Checks, v: Verdict) -> dict[str, Any]:
    """One candidate as stored in the run (candidates.jsonl)."""
    return {
        "text": c.text,
        "record": c.record if c.parsed else None,
        "decode_error": c.error,
        "checks": asdict(ch),
        "verdict": "accept" if v.accept else "reject",
        "score": v.score,
        "reasons": v.reasons,
        "judged_by": v.source,
        "evidence": v.evidence,
    }
