"""PromptOptimizer: turns the judge's feedback and the reward history into candidate prompt edits.

The agent proposes one edit per candidate, as grammar-constrained JSON with one branch per
operation, whose paths and values are enumerations built from the scaffold and the current prompt,
so even a small model can only name real fields, real values and edits that apply. An edit that still does not fit (a value the field cannot hold, a range outside the
schema) is recorded as a failed proposal, never repaired into something else. The loop tries every
valid proposal on the same probe batch as the incumbent and keeps the best (see ``loop.py``).
Beside the model's proposals come the *repairs*: edits read off the judge's findings in code
(``repairs.py``), vetted and probed the same way.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Sequence

from aod_core.agents.repairs import repairs as find_repairs
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import canonical
from aod_core.chat.base import ChatModel
from aod_core.errors import InputError

OPS = {
    "temperature": "set sampling temperature to `amount` (0.1-2.0; lower = safer, higher = more varied)",
    "bias": "make choice `value` of enum field `path` more (amount > 0) or less (amount < 0) likely",
    "forbid": "never generate `value` in field `path`",
    "allow": "allow `value` in field `path` again (undo a forbid)",
    "range": "keep numeric field `path` within [lo, hi]",
    "unrange": "remove the range on numeric field `path`",
    "text": "replace the instruction text with `value`",
}


# A rationale is shown beside its edit; the cap keeps a small model from spending most of a
# proposal's tokens on it (SmolLM2-135M wrote 150-200 characters of filler when allowed 200).
RATIONALE_CHARS = 120


@dataclass
class Proposal:
    edit: dict[str, Any] | None
    prompt: Prompt | None  # None when the edit was unusable
    error: str | None = None
    rationale: str = ""
    source: str = "model"  # "model": the optimizer's chat model; "repair": read off the findings (repairs.py)


def _branch(
    op: str,
    path: str = "",
    *,
    value: dict | None = None,
    amount: dict | None = None,
    lo: dict | None = None,
    hi: dict | None = None,
) -> dict[str, Any]:
    """One operation's answer shape: every answer has the same seven keys, constrained per op."""
    num = {"type": "number", "minimum": -1e6, "maximum": 1e6}
    return {
        "type": "object",
        "properties": {
            "rationale": {"type": "string", "maxLength": RATIONALE_CHARS},
            "op": {"const": op},
            "path": {"const": path},
            "value": value or {"type": "string", "maxLength": 80},
            "amount": amount or num,
            "lo": lo or num,
            "hi": hi or num,
        },
        "required": ["rationale", "op", "path", "value", "amount", "lo", "hi"],
        "additionalProperties": False,
    }


def proposal_schema(scaffold: Scaffold | None, prompt: Prompt | None = None) -> dict[str, Any]:
    """The JSON Schema of one proposal: one branch per operation that makes sense right now, with
    paths and values taken from the scaffold and the current prompt (forbid only values still
    allowed, keeping at least two; allow only forbidden ones; range only numeric fields). A small
    model can then only write edits that apply; the grammar enforces it token by token."""
    prompt = prompt or Prompt()
    branches = [
        _branch("temperature", amount={"type": "number", "minimum": 0.1, "maximum": 2.0}),
        _branch("text", value={"type": "string", "minLength": 1, "maxLength": 200}),
    ]
    enums: dict[str, list[Any]] = {}
    numbers: dict[str, tuple[float | None, float | None]] = {}
    for sl in scaffold.slots if scaffold else []:
        if sl.role == "enum" and len(sl.choices) > 1:
            enums.setdefault(sl.key, list(sl.choices))
        elif sl.kind == "value" and sl.vtype in ("integer", "number"):
            numbers.setdefault(sl.key, (sl.lo, sl.hi))
    for path, choices in sorted(enums.items()):
        texts = [_text(c) for c in choices]
        forbidden = [_text(v) for v in prompt.forbid.get(path, [])]
        allowed = [t for t in texts if t not in forbidden]
        branches.append(
            _branch("bias", path, value={"enum": texts}, amount={"type": "number", "minimum": -5, "maximum": 5})
        )
        if len(allowed) > 2:
            branches.append(_branch("forbid", path, value={"enum": allowed}))
        if forbidden:
            branches.append(_branch("allow", path, value={"enum": forbidden}))
    for path, (lo, hi) in sorted(numbers.items()):
        bound = {
            "type": "number",
            **({"minimum": lo} if lo is not None else {}),
            **({"maximum": hi} if hi is not None else {}),
        }
        branches.append(_branch("range", path, lo=bound, hi=bound))
        if path in prompt.ranges:
            branches.append(_branch("unrange", path))
    return {"anyOf": branches}


def _text(value: Any) -> str:
    """How a value is written in an edit: strings as they are, anything else as JSON (``_value`` reads it back)."""
    return value if isinstance(value, str) else canonical(value)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def apply_edit(prompt: Prompt, edit: dict[str, Any]) -> Prompt:
    """The prompt with one edit applied (a new object); InputError when the edit makes no sense."""
    p = copy.deepcopy(prompt)
    op, path, value = edit["op"], edit.get("path", ""), edit.get("value", "")
    if op not in ("temperature", "text") and not path:
        raise InputError(f"edit {op} needs a field path")
    if op == "temperature":
        p.sampling = Sampling(**{**p.sampling.__dict__, "temperature": min(2.0, max(0.1, float(edit["amount"])))})
    elif op == "bias":
        table = p.bias.setdefault(path, {})
        key = canonical(_value(value))
        table[key] = max(-5.0, min(5.0, table.get(key, 0.0) + float(edit["amount"])))
    elif op == "forbid":
        if _value(value) in p.forbid.get(path, []):
            raise InputError(f"{value} is already forbidden in {path}")
        p.forbid.setdefault(path, []).append(_value(value))
    elif op == "allow":
        if _value(value) not in p.forbid.get(path, []):
            raise InputError(f"{value} is not forbidden in {path}")
        p.forbid[path].remove(_value(value))
        if not p.forbid[path]:
            del p.forbid[path]
    elif op == "range":
        lo, hi = float(edit["lo"]), float(edit["hi"])
        if lo > hi:
            raise InputError(f"range [{lo}, {hi}] is empty")
        p.ranges[path] = [lo, hi]
    elif op == "unrange":
        if p.ranges.pop(path, None) is None:
            raise InputError(f"{path} has no range")
    elif op == "text":
        if not value.strip() or value.strip() == p.text.strip():
            raise InputError("the new text is empty or unchanged")
        p.text = value.strip()
    else:
        raise InputError(f"unknown edit op {op!r}")
    return p


def prompt_summary(prompt: Prompt) -> str:
    """The prompt's non-default parts as compact JSON (what the optimizer and the history show)."""
    d = prompt.to_dict()
    s = {k: v for k, v in d["sampling"].items() if v != getattr(Sampling(), k)}
    out = {k: v for k, v in d.items() if k not in ("sampling", "compiled") and v}
    if s:
        out["sampling"] = s
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


@dataclass
class PromptOptimizer:
    chat: ChatModel
    scaffold: Scaffold | None
    task: str = ""
    max_tokens: int = 160
    temperature: float = 0.8  # proposals should differ from each other
    seed: int = 0
    # For a generator that cannot read text: a ``text`` proposal is compiled into scaffold edits
    # before it is probed (``compiler.InstructionCompiler``); one that maps to no edit the generator
    # takes is recorded as a failed proposal instead of being probed as a dead edit.
    compiler: Any = None

    def propose(
        self,
        prompt: Prompt,
        feedback: str,
        history: Sequence[tuple[str, float]],
        k: int,
        *,
        check=None,
        seed: int = 0,
        judgement: Any = None,
        seeds: Sequence[Any] = (),
        repairs: int = 0,
    ) -> list[Proposal]:
        """At most ``repairs`` edits read off ``judgement``'s findings (``repairs.py``), then ``k``
        from the chat model; ``check(prompt)`` (the generator's) vets each edited prompt."""
        out: list[Proposal] = []
        seen: set[str] = set()
        for r in find_repairs(prompt, judgement, seeds, self.scaffold, limit=repairs):
            out.append(self._vetted(prompt, r.edit, r.rationale, "repair", check, seen))
        return out + self._model_proposals(prompt, feedback, history, k, check=check, seed=seed, seen=seen)

    def _model_proposals(self, prompt, feedback, history, k, *, check, seed, seen) -> list[Proposal]:
        if k <= 0:
            return []
        ops = "\n".join(f"- {name}: {what}" for name, what in OPS.items())
        hist = "\n".join(f"- reward {r:.3f}: {s}" for s, r in history[-5:]) or "- (none yet)"
        system = (
            "You improve the prompt of a generator of synthetic JSON records. Propose ONE edit that "
            "fixes the most important problem in the feedback.\nOperations:\n" + ops + "\n"
            "How they act: a lower temperature makes every value more typical (fewer implausible records, "
            "less variety); bias shifts how often an enum value appears; forbid removes a value entirely, "
            "so use it only for a value the feedback says is wrong, not for one the seeds often use; a range "
            "keeps a number inside [lo, hi] in every record."
        )
        user = (
            (f"Dataset: {self.task}\n" if self.task else "")
            + f"Current prompt: {prompt_summary(prompt)}\nFeedback:\n{feedback}\nHistory (prompt, reward):\n{hist}\n"
            'Answer with JSON: {"rationale", "op", "path", "value", "amount", "lo", "hi"}.'
        )
        conv = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        schema = proposal_schema(self.scaffold, prompt)
        replies = self.chat.complete_many(
            [conv] * k, json_schema=schema, max_tokens=self.max_tokens, temperature=self.temperature, seed=seed
        )
        out = []
        for reply in replies:
            if not reply.ok:
                out.append(Proposal(None, None, f"optimizer gave no usable answer: {reply.error}"))
                continue
            edit = {k2: v for k2, v in reply.data.items() if k2 != "rationale"}
            out.append(self._vetted(prompt, edit, reply.data.get("rationale", ""), "model", check, seen))
        return out

    def _vetted(self, prompt: Prompt, edit: dict, rationale: str, source: str, check, seen: set[str]) -> Proposal:
        """The proposal of one edit: applied, compiled (text edits), checked by the generator, and
        refused when it makes a prompt already proposed this iteration."""
        try:
            new = apply_edit(prompt, edit)
            if edit.get("op") == "text" and self.compiler is not None:
                new = self._compiled(new, check)
            if check is not None:
                check(new)
        except (InputError, ValueError, TypeError, KeyError) as e:
            return Proposal(edit, None, str(e), rationale, source)
        key = new.to_json()
        if key == prompt.to_json():
            return Proposal(edit, None, "the edit leaves the prompt unchanged", rationale, source)
        if key in seen:
            return Proposal(edit, None, "same as an earlier proposal", rationale, source)
        seen.add(key)
        return Proposal(edit, new, None, rationale, source)

    def _compiled(self, prompt: Prompt, check) -> Prompt:
        from aod_core.agents.compiler import CompiledInstruction

        new = self.compiler.apply(prompt, check=check)
        c = CompiledInstruction.from_dict(new.compiled)
        if not c.edits:
            why = "; ".join(c.messages()) or "nothing in it names a field or a value"
            raise InputError(f"the text maps to no edit this generator takes ({why})")
        return new
