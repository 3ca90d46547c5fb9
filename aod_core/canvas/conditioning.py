"""Conditioning: the order in which a record's fields are decided, and the facts kept while they are.

A masked diffusion model fills every position conditioned on the ones already committed; what it
writes for a field depends on what was decided before it. So the sampler decides a record in this
order, and the constraint (``constraints.CanvasConstraint``) holds it there:

1. **Steered fields first.** The fields a prompt edit governs (a bias, a range, a forbidden choice,
   whoever wrote it: the user, the instruction compiler or the optimizer) are committed before any
   other position of the record; every other field is then denoised knowing them. "Mostly African
   countries" then gives African countries, not the label Africa on a country written before it.
   Pins are committed from the start, so they condition everything too.
2. **Keys next** (``data/dependencies.py``): the fields of a key such as ``(country, year)``, before
   magnitudes and text, so numbers are drawn for the record's own country and year. The last position
   of a key never completes a seed's key (those tokens are taken out), and it is committed on its own
   step, so two positions committed together cannot complete one by accident. A key's written values
   are decided first (digits left to right) and its choices last, since a choice can always take
   another value where a last digit may have no other way to stay in range. A new record therefore
   never describes what a seed describes.
3. **Dependencies kept exact.** A dependent field waits until its parent is decided; once it is, the
   dependent is written from the seeds' map (``iso_num`` from ``country``), token for token. When the
   dependent was decided first (it is steered or pinned), its determinant is restricted to the values
   that map to it. A determinant the seeds do not know leaves its dependents to the model.

Each restriction gives way rather than leave a position with nothing it may take (a prompt that
contradicts the seeds' map, say): the record is then sampled as before and the judge's exact checks
report what it breaks. Waits give way the same way, so the sampler never stalls.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import torch

from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import ABSENT, MASK, Slot
from aod_core.data.dependencies import Dependencies

_ITEM = re.compile(r"\[\d+\]")  # an array item in a slot's path: dependencies hold outside arrays
STEERED = 1000.0  # added to the commit order of steered positions (whose own scores are below 10)
KEYED = 500.0  # ... and of a key's positions


def field_slots(scaffold: Scaffold, path: str) -> list[Slot]:
    """The slots that hold one field outside arrays: its value or choice slot, and a vocabulary's
    choice between a seen and a new value (``$.country|new``)."""
    return [s for s in scaffold.slots if s.path == path or s.path.startswith(path + "|")]


def _positions(slots: list[Slot]) -> list[int]:
    return [p for s in slots for p in s.positions]


def steered_slots(scaffold: Scaffold, prompt: Prompt) -> list[Slot]:
    """The slots a prompt's biases, ranges and forbidden choices govern (with a vocabulary's
    seen-or-new choice, which decides first whether the steered choice applies)."""
    out: dict[int, Slot] = {}
    paths = list(prompt.bias) + list(prompt.ranges)
    for path, _ in prompt.forbid.items():
        if any(s.kind == "choice" for s in scaffold.slots_for(path)):
            paths.append(path)
    by_start = {s.start: s for s in scaffold.slots}
    for path in paths:
        for s in scaffold.slots_for(path):
            out[s.start] = s
            if s.new_variant is not None:
                out[s.new_variant] = by_start[s.new_variant]
    return list(out.values())


def implied_forbids(scaffold: Scaffold, prompt: Prompt, deps: Dependencies | None) -> dict[str, list]:
    """Determinant values the prompt rules out through their dependents: with a pinned, forbidden
    or ranged dependent, every known determinant value the seeds map outside it (a pinned
    ``continent`` of Africa forbids every country the seeds place elsewhere). For generators that
    cannot restrict a determinant while sampling (``hf:``), these become forbids."""
    out: dict[str, list] = {}
    if not deps:
        return out
    for d in deps.fds:
        if not field_slots(scaffold, d.determinant) or not field_slots(scaffold, d.dependent):
            continue
        bad = [json.loads(k) for k, v in d.mapping.items() if not _allowed(prompt, d.dependent, v)]
        if bad:
            out.setdefault(d.determinant, []).extend(b for b in bad if b not in out.get(d.determinant, []))
    return out


def _allowed(prompt: Prompt, path: str, value) -> bool:
    if path in prompt.pins and prompt.pins[path] != value:
        return False
    if value in prompt.forbid.get(path, []):
        return False
    rng = prompt.ranges.get(path)
    if rng and (isinstance(value, (int, float)) and not isinstance(value, bool)) and not rng[0] <= value <= rng[1]:
        return False
    return True


@dataclass
class _Force:
    """Dependent positions ``pb`` written from the determinant's positions ``pa`` (seeds' map)."""

    pa: torch.Tensor  # [A]
    pb: torch.Tensor  # [Bp]
    keys: torch.Tensor  # [M, A] the determinant's token tuples in the seeds
    values: torch.Tensor  # [M, Bp] the dependent's tuple for each


@dataclass
class _Reverse:
    """A determinant's choice position restricted to the choices whose dependent matches ``pb``'s."""

    choice: int
    pb: torch.Tensor  # [Bp]
    keys: torch.Tensor  # [M, Bp] the dependent's token tuples in the seeds
    allow: torch.Tensor  # [M, V] determinant tokens that go with each


@dataclass
class _Key:
    positions: torch.Tensor  # [P] every position of the key's fields
    seeds: torch.Tensor  # [S, P] the seeds' token tuples


class Conditioning:
    """The decision order and the exact facts of one prompt on one scaffold (module docstring)."""

    def __init__(
        self, scaffold: Scaffold, prompt: Prompt, dependencies: Dependencies | None, seed_tokens: torch.Tensor | None
    ):
        L, V = scaffold.length, len(scaffold.vocab)
        self.length, self.vocab_size = L, V
        self.steered = torch.zeros(L, dtype=torch.bool)
        for s in steered_slots(scaffold, prompt):
            self.steered[s.start : s.start + s.width] = True
        self.boost = torch.zeros(L, dtype=torch.float64)
        self.forces: list[_Force] = []
        self.reverses: list[_Reverse] = []
        self.waits: list[tuple[torch.Tensor, torch.Tensor]] = []  # (child positions, parent positions)
        self.keys: list[_Key] = []
        if dependencies and seed_tokens is not None and len(seed_tokens):
            self._dependencies(scaffold, dependencies, seed_tokens.long().cpu())
        self.boost[self.steered] = STEERED

    @property
    def active(self) -> bool:
        return bool(self.steered.any()) or bool(self.forces or self.reverses or self.waits or self.keys)

    def _dependencies(self, scaffold: Scaffold, deps: Dependencies, seeds: torch.Tensor) -> None:
        where = {f: _positions(field_slots(scaffold, f)) for f in deps.fields}
        where = {
            f: p for f, p in where.items() if p and not any(_ITEM.search(s.path) for s in field_slots(scaffold, f))
        }
        for d in deps.fds:
            pa, pb = where.get(d.determinant), where.get(d.dependent)
            if not pa or not pb:
                continue
            ta, tb = seeds[:, pa], seeds[:, pb]
            keys, first = _unique_rows(ta)
            self.forces.append(_Force(torch.tensor(pa), torch.tensor(pb), keys, tb[first]))
            choices = [s for s in field_slots(scaffold, d.determinant) if s.kind == "choice" and s.role == "enum"]
            if len(choices) == 1:
                c = choices[0]
                bkeys, _ = _unique_rows(tb)
                allow = torch.zeros(len(bkeys), self.vocab_size, dtype=torch.bool)
                seen = seeds[:, c.start]
                allow[:, [t for t in c.tokens if not bool((seen == t).any())]] = True  # choices no seed has
                for i, row in enumerate(bkeys):
                    allow[i, seen[(tb == row).all(1)]] = True
                self.reverses.append(_Reverse(c.start, torch.tensor(pb), bkeys, allow))
        for child, parent in deps.parents.items():
            pc, pp = where.get(child), where.get(parent)
            if pc and pp and not bool(self.steered[pc].any()):
                self.waits.append((torch.tensor(pc), torch.tensor(pp)))
        for key in deps.keys:
            if all(where.get(f) for f in key):
                pk = [p for f in key for p in where[f]]
                self.keys.append(_Key(torch.tensor(pk), _unique_rows(seeds[:, pk])[0]))
                for f in key:
                    self._key_order(field_slots(scaffold, f))

    def _key_order(self, slots: list[Slot]) -> None:
        """A key's written values first, digit by digit from the left, its choices last: a choice's
        last decision can always avoid a seed's key (another country), a value's last digit may have
        no other way to stay in range."""
        for s in slots:
            if s.kind == "choice":
                self.boost[s.start] = max(float(self.boost[s.start]), KEYED)
            else:
                order = KEYED + 2 * s.width - 2 * torch.arange(s.width, dtype=torch.float64)
                self.boost[s.start : s.start + s.width] = torch.maximum(self.boost[s.start : s.start + s.width], order)

    def to(self, device: torch.device) -> Conditioning:
        self.steered, self.boost = self.steered.to(device), self.boost.to(device)
        for f in self.forces:
            f.pa, f.pb, f.keys, f.values = f.pa.to(device), f.pb.to(device), f.keys.to(device), f.values.to(device)
        for r in self.reverses:
            r.pb, r.keys, r.allow = r.pb.to(device), r.keys.to(device), r.allow.to(device)
        self.waits = [(c.to(device), p.to(device)) for c, p in self.waits]
        for k in self.keys:
            k.positions, k.seeds = k.positions.to(device), k.seeds.to(device)
        return self

    # -- the sampler's questions ---------------------------------------------------------------------

    def ready(self, x: torch.Tensor, ready: torch.Tensor) -> torch.Tensor:
        """``ready`` [B, L] narrowed to what may be decided now: steered positions before the rest of
        their row, a dependent after its parent; a row left with nothing keeps its plain ``ready``."""
        out = ready
        masked = x == MASK
        if bool(self.steered.any()):
            pending = (masked & ready & self.steered).any(1, keepdim=True)
            out = out & (self.steered | ~pending)
        for child, parent in self.waits:
            blocked = masked[:, parent].any(1, keepdim=True)
            if bool(blocked.any()):
                out = out.clone() if out is ready else out
                out[:, child] &= ~blocked
        stuck = ~out.any(1) & ready.any(1)
        if bool(stuck.any()):
            out = torch.where(stuck.unsqueeze(1), ready, out)
        return out

    def restrict(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``allowed`` [B, L, V] with the dependencies' forced tokens and the keys' excluded ones."""
        masked = x == MASK
        for f in self.forces:
            self._force(x, masked, allowed, f)
        for r in self.reverses:
            self._reverse(x, masked, allowed, r)
        for k in self.keys:
            self._novel(x, masked, allowed, k)
        return allowed

    def hold(self, x: torch.Tensor, select: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
        """``select`` with one position held back wherever it would complete a key with two or more
        positions at once (so the last one is chosen knowing the others, under ``restrict``)."""
        for k in self.keys:
            pos = k.positions
            open_ = x[:, pos] == MASK
            sel = select[:, pos] & open_
            closing = (open_ & ~sel).sum(1) == 0
            rows = (closing & (sel.sum(1) >= 2)).nonzero().squeeze(1)
            if len(rows):
                o = order[rows][:, pos].masked_fill(~sel[rows], float("inf"))
                select = select.clone()
                select[rows, pos[o.argmin(1)]] = False
        return select

    # -- the three restrictions ----------------------------------------------------------------------

    @staticmethod
    def _narrow(allowed: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, keep: torch.Tensor) -> None:
        """``allowed[rows, cols] &= keep`` where that leaves some token, per (row, position)."""
        cur = allowed[rows[:, None], cols]  # [R, P, V]
        new = cur & keep
        ok = new.any(-1, keepdim=True)
        allowed[rows[:, None], cols] = torch.where(ok, new, cur)

    def _force(self, x: torch.Tensor, masked: torch.Tensor, allowed: torch.Tensor, f: _Force) -> None:
        todo = ~masked[:, f.pa].any(1) & masked[:, f.pb].any(1)
        rows = todo.nonzero().squeeze(1)
        if not len(rows):
            return
        hit = (x[rows][:, f.pa].unsqueeze(1) == f.keys.unsqueeze(0)).all(-1)  # [R, M]
        known = hit.any(1)
        rows, idx = rows[known], hit[known].float().argmax(1)
        if not len(rows):
            return
        want = f.values[idx]  # [R, Bp]
        keep = torch.nn.functional.one_hot(want, self.vocab_size).bool()  # [R, Bp, V]
        keep |= (want == ABSENT).unsqueeze(-1)  # a gated-off position: the gate decides it
        self._narrow(allowed, rows, f.pb, keep)

    def _reverse(self, x: torch.Tensor, masked: torch.Tensor, allowed: torch.Tensor, r: _Reverse) -> None:
        todo = ~masked[:, r.pb].any(1) & masked[:, r.choice]
        rows = todo.nonzero().squeeze(1)
        if not len(rows):
            return
        hit = (x[rows][:, r.pb].unsqueeze(1) == r.keys.unsqueeze(0)).all(-1)
        known = hit.any(1)
        rows, idx = rows[known], hit[known].float().argmax(1)
        if len(rows):
            self._narrow(allowed, rows, torch.tensor([r.choice], device=x.device), r.allow[idx].unsqueeze(1))

    def _novel(self, x: torch.Tensor, masked: torch.Tensor, allowed: torch.Tensor, k: _Key) -> None:
        open_ = masked[:, k.positions]  # [B, P]
        rows = (open_.sum(1) == 1).nonzero().squeeze(1)
        if not len(rows):
            return
        cur, gap = x[rows][:, k.positions], open_[rows]  # [R, P]
        same = ((k.seeds.unsqueeze(0) == cur.unsqueeze(1)) | gap.unsqueeze(1)).all(-1)  # [R, S]
        col = gap.float().argmax(1)  # the open position's index in the key
        toks = k.seeds.t()[col]  # [R, S]: each seed's token there
        taken = torch.zeros(len(rows), self.vocab_size, device=x.device)
        taken.scatter_add_(1, toks, same.to(taken.dtype))
        keep = (taken == 0).unsqueeze(1)  # [R, 1, V]
        cols = k.positions[col].unsqueeze(1)  # [R, 1]
        cur_allowed = allowed[rows.unsqueeze(1), cols]
        new = cur_allowed & keep
        ok = new.any(-1, keepdim=True)
        allowed[rows.unsqueeze(1), cols] = torch.where(ok, new, cur_allowed)


def _unique_rows(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The distinct rows of ``t`` and the index of each one's first occurrence."""
    uniq, inverse = torch.unique(t, dim=0, return_inverse=True)
    first = torch.full((len(uniq),), len(t), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(t)), reduce="amin")
    return uniq, first
