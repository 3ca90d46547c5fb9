"""What the resolver returns: the scaffold edits it found, and what it could not map and why.

An :class:`Edit` is also what the compiler stores in ``Prompt.compiled`` (with its author, and what
it replaced), so the history and the app show the same objects the resolver made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aod_core.canvas.slots import canonical


@dataclass
class Edit:
    """One scaffold edit the compiler writes, as stored in ``Prompt.compiled``."""

    op: str  # pin | forbid | range | bias | temperature
    path: str = ""
    value: Any = None
    lo: float | None = None
    hi: float | None = None
    amount: float | None = None  # bias logit, or the temperature
    share: float | None = None  # bias: the share of ``value`` it is calibrated to reach
    direction: int = 0  # bias: +1 reach at least ``share``, -1 at most
    measured: float | None = None  # bias: the share measured on samples with this bias
    measured_with: str | None = None  # the generator spec it was measured with
    phrase: str = ""  # the clause it came from
    why: str = ""
    source: str = "resolver"  # resolver, or the chat model's spec
    author: str = "compiler"  # compiler, or human when edited by hand
    replaced: Any = None  # what the edit replaced in the prompt (restored when the edit is removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: v for k, v in self.__dict__.items() if v is not None and v != "" and not (k == "direction" and v == 0)
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Edit:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})

    def describe(self) -> str:
        p = self.path[2:] if self.path.startswith("$.") else self.path
        if self.op == "pin":
            return f"pin {p} = {canonical(self.value)}"
        if self.op == "forbid":
            return f"forbid {p} = {canonical(self.value)}"
        if self.op == "range":
            return f"range {p} in [{num_text(self.lo)}, {num_text(self.hi)}]"
        if self.op == "bias":
            goal = "" if self.share is None else f" (target {'≥' if self.direction >= 0 else '≤'} {self.share:.0%})"
            got = "" if self.measured is None else f", measured {self.measured:.0%}"
            return f"bias {p} = {canonical(self.value)} by {self.amount:+.2f}{goal}{got}"
        if self.op == "temperature":
            return f"temperature {self.amount}"
        return f"{self.op} {p}"

    def key(self) -> tuple:
        return (
            self.op,
            self.path,
            canonical(self.value),
            self.lo,
            self.hi,
            self.amount if self.op == "temperature" else None,
        )


def num_text(x: float | None) -> str:
    """A number as an edit's description writes it: whole numbers without decimals, None as ``?``."""
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else str(x)


@dataclass
class Unmapped:
    phrase: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"phrase": self.phrase, "reason": self.reason}


@dataclass
class Pending:
    """A clause the rules left (words that name nothing they know): the chat model may map it."""

    phrase: str
    words: list[str]  # its content words (what an LLM edit must cite)
    numbers: list[float]
    reason: str  # what is reported if the chat model cannot map it either
    candidates: list[str] = field(default_factory=list)  # field keys an ambiguity left open


@dataclass
class Resolution:
    edits: list[Edit] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    pending: list[Pending] = field(default_factory=list)
