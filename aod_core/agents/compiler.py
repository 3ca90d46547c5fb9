"""The instruction compiler: instruction text -> the scaffold edits it implies, for generators that
cannot read text.

The embedded DLM and DiffLM never see the prompt's words; without this step an instruction such as
"mostly Torgersen penguins" would change nothing. The compiler turns the words into edits of the
canvas every scaffold-level generator obeys (pins, forbids, ranges, enum biases, array lengths,
optional keys, temperature), in three stages:

1. **Resolve** (the ``resolver`` package): rules over the scaffold's lexicon (``wording.py``) map each
   clause whose words name a field or a value and a known wish; the rest is reported.
2. **Ask the chat model** about the clauses the rules could not map (when there is one): its
   answer is grammar-constrained like the optimizer's proposals (paths and values are enums from
   the scaffold, numbers only those written in the clause, and the words it relies on only words
   of the clause), and an answer is kept only when it is **grounded**: one of the words it cites
   names the field (or the value) it edits, by the lexicon or, where the offline sentence embedder
   is installed, by meaning (the cited words are closer to that field's name and description than
   to any other field's, and close enough). Anything else stays reported as unmapped.
3. **Fit to the generator** (``apply``): each edit is tried with the generator's own prompt
   check; an edit the generator refuses (DiffLM takes none, ``hf:`` takes no biases) is listed
   with the generator's reason instead of being dropped silently. Shares ("mostly X") are then
   **measured** (``calibrate``): the generator samples with the bias, and the bias is raised
   until the sampled share reaches the target.

The result, :class:`CompiledInstruction`, is stored in the prompt (``Prompt.compiled``) with its
source text and each edit's author, so the history shows which edits the compiler wrote.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from aod_core.agents.compiler_llm import Grounding, _edit_from_answer, llm_schema
from aod_core.agents.resolver import Edit, Pending, Resolver, Unmapped
from aod_core.agents.wording import Lexicon
from aod_core.canvas.prompt import Prompt, Sampling
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import canonical
from aod_core.chat.base import ChatModel
from aod_core.errors import InputError

CALIBRATION_N = 200  # records sampled per calibration round (100 read 75% where 200-record batches averaged 63%)
CALIBRATION_ROUNDS = 6
MAX_BIAS = 12.0  # a larger logit bias than this is a pin in all but name

COMPILE_MODES = ("auto", "on", "off")


def text_blind(spec: str) -> bool:
    """Whether a generator spec names a generator that cannot read instruction text (the embedded
    DLM, DiffLM): ``auto`` compiles the text for exactly these."""
    from aod_core.generators import kind_of  # the registry says which kinds read text

    kind = kind_of(spec or "embedded")
    return kind is not None and not kind.reads_text


def should_compile(mode: str, generator_spec: str) -> bool:
    """``on``: always; ``off``: never; ``auto``: when the generator cannot read the text (for ``hf:``
    and ``ar:`` the model reads it; compiling then is optional: ``on``)."""
    if mode not in COMPILE_MODES:
        raise InputError(f"compile mode must be one of {', '.join(COMPILE_MODES)}, got {mode!r}")
    return mode == "on" or (mode == "auto" and text_blind(generator_spec))


def compile_note(generator_spec: str, mode: str = "auto") -> str:
    """What the instruction text does for this generator, in one sentence for the pages and the CLI."""
    from aod_core.generators import kind_of

    spec = (generator_spec or "embedded").strip()
    kind = kind_of(spec)
    name = kind.name if kind is not None else ""
    if name == "difflm" and not should_compile(mode, spec):
        return "DiffLM reads no instruction text and compiling is off: the text changes nothing."
    if name == "difflm":
        return (
            "DiffLM reads no instruction text and takes no scaffold edits: of what the text compiles to, "
            "only a sampling temperature applies; every other edit is listed as not applied."
        )
    if text_blind(spec):
        if not should_compile(mode, spec):
            return "The embedded DLM does not read the instruction text and compiling is off: the text changes nothing."
        return (
            "The embedded DLM does not read text: the instruction is compiled into the scaffold edits below "
            "(pins, forbids, ranges, biases, temperature); phrases it cannot map are listed, never guessed."
        )
    if name == "ar":
        return "The ar: generator's chat model reads the instruction text itself; it takes no scaffold edits."
    if should_compile(mode, spec):
        return "This DLM reads the instruction text; its compiled scaffold edits are applied on top of it."
    return "This DLM reads the instruction text (to apply its compiled scaffold edits as well, set the compile mode to on)."


@dataclass
class CompiledInstruction:
    text: str
    edits: list[Edit] = field(default_factory=list)
    unmapped: list[Unmapped] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)  # {"edit": Edit dict, "reason"}
    model: str = "none"  # the chat model asked about what the rules left ("none": rules only)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "author": "compiler",
            "model": self.model,
            "seconds": round(self.seconds, 3),
            "edits": [e.to_dict() for e in self.edits],
            "unmapped": [u.to_dict() for u in self.unmapped],
            "refused": list(self.refused),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> CompiledInstruction | None:
        if not d:
            return None
        return cls(
            text=str(d.get("text", "")),
            edits=[Edit.from_dict(e) for e in d.get("edits") or []],
            unmapped=[Unmapped(str(u.get("phrase", "")), str(u.get("reason", ""))) for u in d.get("unmapped") or []],
            refused=list(d.get("refused") or []),
            model=str(d.get("model", "none")),
            seconds=float(d.get("seconds") or 0.0),
        )

    def messages(self) -> list[str]:
        """One line per thing the user should know: unmapped phrases and refused edits."""
        out = [f"{u.phrase!r}: {u.reason}" for u in self.unmapped]
        out += [f"{Edit.from_dict(r['edit']).describe()} not applied: {r['reason']}" for r in self.refused]
        return out


# ---- applying edits to a prompt -----------------------------------------------------------------


def _apply(p: Prompt, e: Edit) -> None:
    if e.op == "pin":
        e.replaced = {"had": e.path in p.pins, "value": p.pins.get(e.path)}
        p.pins[e.path] = e.value
    elif e.op == "forbid":
        have = p.forbid.get(e.path, [])
        e.replaced = {"had": e.value in have}
        if e.value not in have:
            p.forbid.setdefault(e.path, []).append(e.value)
    elif e.op == "range":
        old = p.ranges.get(e.path)
        e.replaced = {"had": old is not None, "value": old}
        lo, hi = float(e.lo), float(e.hi)
        if old is not None:  # two wishes on one field ("heavier", "below 5 kg") meet
            lo, hi = max(lo, float(old[0])), min(hi, float(old[1]))
            if lo > hi:
                raise InputError(f"range {e.path}: [{e.lo}, {e.hi}] does not meet the range already set {old}")
        p.ranges[e.path] = [lo, hi]
    elif e.op == "bias":
        table = p.bias.setdefault(e.path, {})
        key = canonical(e.value)
        e.replaced = {"had": key in table, "value": table.get(key)}
        table[key] = float(e.amount or 0.0)
    elif e.op == "temperature":
        e.replaced = {"had": True, "value": p.sampling.temperature}
        p.sampling = Sampling(**{**p.sampling.__dict__, "temperature": float(e.amount)})
    else:
        raise InputError(f"unknown compiled edit {e.op!r}")


def _undo(p: Prompt, e: Edit) -> None:
    r = e.replaced or {}
    if e.op == "pin":
        if r.get("had"):
            p.pins[e.path] = r.get("value")
        else:
            p.pins.pop(e.path, None)
    elif e.op == "forbid":
        if not r.get("had") and e.value in p.forbid.get(e.path, []):
            p.forbid[e.path].remove(e.value)
            if not p.forbid[e.path]:
                del p.forbid[e.path]
    elif e.op == "range":
        if r.get("had"):
            p.ranges[e.path] = list(r["value"])
        else:
            p.ranges.pop(e.path, None)
    elif e.op == "bias":
        table = p.bias.get(e.path, {})
        if r.get("had"):
            table[canonical(e.value)] = r.get("value")
        else:
            table.pop(canonical(e.value), None)
        if not table:
            p.bias.pop(e.path, None)
    elif e.op == "temperature" and r.get("had"):
        p.sampling = Sampling(**{**p.sampling.__dict__, "temperature": float(r["value"])})


def strip_compiled(prompt: Prompt) -> Prompt:
    """The prompt without the edits its compiled block added (what a human or the optimizer wrote
    stays); a new object."""
    p = copy.deepcopy(prompt)
    c = CompiledInstruction.from_dict(p.compiled)
    if c is not None:
        for e in reversed(c.edits):
            _undo(p, e)
    p.compiled = {}
    return p


def with_compiled(
    prompt: Prompt, compiled: CompiledInstruction, *, check: Callable[[Prompt], None] | None = None
) -> Prompt:
    """``prompt`` with its old compiled edits replaced by ``compiled``'s; ``check`` (a generator's
    ``check_prompt``) vets each edit, and the ones it refuses move to ``compiled.refused`` with its
    reason. A new object; ``compiled`` is updated in place."""
    base = strip_compiled(prompt)
    kept: list[Edit] = []
    refused: list[dict[str, Any]] = []
    for e in compiled.edits:
        trial = copy.deepcopy(base)
        try:
            for x in kept + [e]:
                _apply(trial, x)
            if check is not None:
                check(trial)
        except InputError as err:
            refused.append({"edit": e.to_dict(), "reason": str(err)})
            continue
        kept.append(e)
    out = copy.deepcopy(base)
    for e in kept:
        _apply(out, e)
    compiled.edits, compiled.refused = kept, refused
    out.compiled = compiled.to_dict()
    return out


# ---- measuring shares ----------------------------------------------------------------------------


def _logit(p: float) -> float:
    p = min(0.995, max(0.005, p))
    return math.log(p / (1 - p))


def _values_at(record: Any, key: str) -> list[Any]:
    from aod_core.agents.wording import _seed_values

    return _seed_values([record]).get(key, [])


def needs_calibration(prompt: Prompt, spec: str) -> bool:
    c = CompiledInstruction.from_dict(prompt.compiled)
    return c is not None and any(
        e.op == "bias" and e.share is not None and (e.measured is None or e.measured_with != spec) for e in c.edits
    )


def calibrate(
    prompt: Prompt,
    sample: Callable[[Prompt, int, int], Sequence[Any]],
    *,
    spec: str,
    n: int = CALIBRATION_N,
    seed: int = 0,
    rounds: int = CALIBRATION_ROUNDS,
) -> Prompt:
    """Measure each compiled share ("mostly X", "70% X") on samples and raise (or lower) its bias
    until the sampled share reaches the target; ``sample(prompt, n, seed)`` returns candidates with
    ``.parsed`` and ``.record``. The measured share and the generator spec are stored on the edit.
    Every round samples the same seed, so a change in share is the bias's doing, not noise."""
    c = CompiledInstruction.from_dict(prompt.compiled)
    if c is None:
        return prompt
    todo = [
        e for e in c.edits if e.op == "bias" and e.share is not None and (e.measured is None or e.measured_with != spec)
    ]
    if not todo:
        return prompt
    p = copy.deepcopy(prompt)
    history: dict[int, list[tuple[float, float]]] = {id(e): [] for e in todo}  # (bias, logit of the share)
    for r in range(rounds):
        records = [x.record for x in sample(p, n, seed) if getattr(x, "parsed", False)]
        done = True
        for e in todo:
            vals = [v for rec in records for v in _values_at(rec, e.path)]
            share = sum(canonical(v) == canonical(e.value) for v in vals) / len(vals) if vals else 0.0
            e.measured, e.measured_with = round(share, 3), spec
            ok = share >= e.share if e.direction >= 0 else share <= e.share
            if ok or r == rounds - 1:
                continue
            done = False
            h = history[id(e)]
            h.append((e.amount or 0.0, _logit(share)))
            goal = _logit(min(0.98, e.share + 0.04) if e.direction >= 0 else max(0.02, e.share - 0.04))
            # The share answers the bias less than one for one (fields decided earlier already set
            # the odds): the slope is measured once two biases have been tried (secant), assumed 0.5 before.
            slope = 0.5
            if len(h) >= 2 and abs(h[-1][0] - h[-2][0]) > 1e-6:
                slope = min(1.5, max(0.1, (h[-1][1] - h[-2][1]) / (h[-1][0] - h[-2][0])))
            step = (goal - h[-1][1]) / slope
            step = max(0.5, min(6.0, step)) if e.direction >= 0 else min(-0.5, max(-6.0, step))
            e.amount = round(max(-MAX_BIAS, min(MAX_BIAS, (e.amount or 0.0) + step)), 3)
            p.bias.setdefault(e.path, {})[canonical(e.value)] = e.amount
        if done:
            break
    for e in todo:
        ok = e.measured >= e.share if e.direction >= 0 else e.measured <= e.share
        e.why = e.why.split(" — ")[0] + (
            f" — measured {e.measured:.0%} with bias {e.amount:+.2f}"
            if ok
            else f" — reached only {e.measured:.0%} (bias {e.amount:+.2f})"
        )
    p.compiled = c.to_dict()
    return p


# ---- the agent step ------------------------------------------------------------------------------


class InstructionCompiler:
    """Compiles instruction text for one scaffold (schema + seeds); ``chat`` (optional) is asked
    about the clauses the rules leave."""

    def __init__(
        self,
        scaffold: Scaffold,
        schema: dict,
        seeds: list[Any],
        chat: ChatModel | None = None,
        *,
        max_tokens: int = 64,
        seed: int = 0,
        semantic_grounding: bool = True,
    ):
        self.lexicon = Lexicon.build(scaffold, schema, seeds)
        self.resolver = Resolver(self.lexicon)
        self.chat = chat
        self.max_tokens = max_tokens
        self.seed = seed
        self.grounding = Grounding(self.lexicon, semantic=semantic_grounding)

    def compile(self, text: str) -> CompiledInstruction:
        t0 = time.perf_counter()
        res = self.resolver.resolve(text or "")
        out = CompiledInstruction(
            text=text or "",
            edits=list(res.edits),
            unmapped=list(res.unmapped),
            model=getattr(self.chat, "spec", "none") if self.chat is not None else "none",
        )
        if res.pending and self.chat is not None:
            self._ask(res.pending, out)
        else:
            out.unmapped += [Unmapped(p.phrase, p.reason) for p in res.pending]
        out.seconds = time.perf_counter() - t0
        return out

    def _ask(self, pending: list[Pending], out: CompiledInstruction) -> None:
        fields = "\n".join(
            f"- {f.key}: {f.kind}"
            + (f" ({', '.join(map(str, f.choices[:8]))})" if f.choices else "")
            + (f", unit {f.unit}" if f.unit else "")
            for f in self.lexicon.fields
        )
        system = (
            "You map a wish about generated JSON records to one edit of one field. Fields:\n"
            + fields
            + "\nops: pin (always this value), forbid (never), mostly (most records), fewer, above_median, "
            "below_median, at_least / at_most / equal (a number written in the wish), forbid_null, "
            "more_varied, more_typical. Cite the words of the wish that name the field. "
            'If no field fits, answer {"op": "none"}.'
        )
        convs = [
            [{"role": "system", "content": system}, {"role": "user", "content": f"Wish: {p.phrase}"}] for p in pending
        ]
        spec = getattr(self.chat, "spec", "chat")
        replies = []
        for p, conv in zip(pending, convs):  # one grammar per clause (its words and numbers)
            replies += self.chat.complete_many(
                [conv],
                json_schema=llm_schema(self.lexicon, p),
                max_tokens=self.max_tokens,
                temperature=0.0,
                seed=self.seed,
            )
        for p, reply in zip(pending, replies):
            if not reply.ok:
                out.unmapped.append(
                    Unmapped(p.phrase, f"{p.reason} (the chat model gave no usable answer: {reply.error})")
                )
                continue
            a = reply.data
            if a.get("op") == "none":
                out.unmapped.append(Unmapped(p.phrase, p.reason))
                continue
            edit = _edit_from_answer(self.lexicon, p, a, spec)
            why_not = (
                "the chat model's answer is not an edit"
                if edit is None
                else self.grounding.check(edit, list(a.get("words") or []))
            )
            if why_not:
                out.unmapped.append(Unmapped(p.phrase, f"{p.reason}; {why_not}"))
                continue
            out.edits.append(edit)

    def apply(
        self, prompt: Prompt, text: str | None = None, *, check: Callable[[Prompt], None] | None = None
    ) -> Prompt:
        """``prompt`` with ``text`` (default: its own) compiled into it; see :func:`with_compiled`."""
        return with_compiled(prompt, self.compile(prompt.text if text is None else text), check=check)


def compiler_for(
    scaffold: Scaffold | None, schema: dict, seeds: list[Any], chat: ChatModel | None = None, **kw: Any
) -> InstructionCompiler:
    """A compiler on the generator's scaffold when it has one, else on the schema's plain scaffold."""
    return InstructionCompiler(scaffold or Scaffold.build(schema, seeds), schema, seeds, chat, **kw)
