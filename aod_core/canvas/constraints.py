"""Constraints that keep a partially denoised canvas completable to a schema-valid record.

The sampler asks three things each step (see ``sampler.Constraint``):

* ``allowed(x)``: which tokens each masked position may take *given everything committed so far*.
  For a value slot that is exact: a forward pass over the slot's DFA gives the states reachable
  before a position, a backward pass the states from which the rest of the slot can still be
  completed; a token is allowed when it links the two. Masked positions count as "any symbol".
* ``ready(x)``: positions whose gate (array length, optional-property presence) is decided.
* ``commit(x, ...)``: apply the sampler's proposals. Two proposals in the same slot may each be
  allowed and still clash, so proposals are applied slot-wise in confidence order, re-checking
  after each round; the first proposal of every slot is always valid, so every step commits.

All of it is prompt-dependent: pins are pre-committed tokens, forbidden values are removed from a
choice or subtracted from a slot's language, ranges narrow a number slot's language, and choice
biases shift logits. The order fields are decided in, and the seeds' dependencies and keys kept
while they are, is ``conditioning.py``'s: steered fields first, then keys, dependents after the
field that fixes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from aod_core.canvas.automaton import SlotDFA, build_slot_dfa, compile_fsm
from aod_core.canvas.conditioning import Conditioning
from aod_core.canvas.prompt import Prompt
from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import ABSENT, END, MASK, NULL, Slot, canonical
from aod_core.data.dependencies import Dependencies
from aod_core.errors import InputError


def static_allowed(scaffold: Scaffold, *, with_absent: bool) -> torch.Tensor:
    """[L, V] tokens each canvas position can ever hold (ABSENT only where a gate may switch it off)."""
    vocab = scaffold.vocab
    m = torch.zeros(scaffold.length, len(vocab), dtype=torch.bool)
    chars = list(vocab.char_ids.values())
    for s in scaffold.slots:
        if s.kind == "choice":
            m[s.start, s.tokens] = True
        else:
            m[s.start : s.start + s.width, chars] = True
            if s.symbols:  # word pieces anywhere in a piece slot; a bin mark only first
                m[s.start : s.start + (1 if s.bins else s.width), list(s.symbols)] = True
            m[s.start : s.start + s.width, END] = True
            if s.nullable:
                m[s.start, NULL] = True
        if with_absent and s.gate is not None:
            m[s.start : s.start + s.width, ABSENT] = True
    return m


@dataclass(frozen=True)
class _LanguageSpec:
    """What decides a value slot's DFA; equal languages share one compiled table."""

    regex: str
    extra: tuple[str, ...]
    forbid: tuple[str, ...]
    nullable: bool


_TRIPLE_CHUNK = 4096  # (row, slot, state) triples walked at once in _slot_allowed (bounds memory)


class CanvasConstraint:
    """The scaffold plus one prompt's edits, as tensors the sampler can query each step."""

    def __init__(
        self,
        scaffold: Scaffold,
        prompt: Prompt | None = None,
        device: str | torch.device = "cpu",
        *,
        text_left_to_right: bool = False,
        dependencies: Dependencies | None = None,
        seed_tokens: torch.Tensor | None = None,
    ):
        self.scaffold = scaffold
        self.prompt = prompt or Prompt()
        self.device = torch.device(device)
        vocab = scaffold.vocab
        L, V = scaffold.length, len(vocab)
        self.static = static_allowed(scaffold, with_absent=False)
        self.bias = torch.zeros(L, V)
        self.pins: dict[int, list[int]] = {}  # start position -> tokens
        langs = {s.start: _LanguageSpec(s.regex, s.extra, (), s.nullable) for s in scaffold.slots if s.kind == "value"}
        self._apply_prompt(langs)

        # Gates: a position is switched off when its controller holds a token outside gate_ok.
        self.gate_pos = torch.full((L,), -1, dtype=torch.long)
        self.gate_ok = torch.ones(L, V, dtype=torch.bool)
        for s in scaffold.slots:
            if s.gate is not None:
                self.gate_pos[s.start : s.start + s.width] = s.gate
                ok = torch.zeros(V, dtype=torch.bool)
                ok[list(s.gate_tokens)] = True
                self.gate_ok[s.start : s.start + s.width] = ok
        self.gated = self.gate_pos >= 0
        self.depth = _gate_depth(scaffold)
        # Coarse to fine: when the canvas has number bins, the sampler commits choices and bin marks
        # before digits and word pieces (within a block), so categories and magnitudes are planned
        # together first. With ``text_left_to_right``, a free-text slot's pieces after the first are
        # committed in order, one offset after another (each piece is chosen knowing the one before
        # it). ``priority`` is added to the sampler's commit order (whose own scores lie in [0, 1]).
        # Steered fields, then keys, before everything else, and dependencies kept exact
        # (``conditioning.py``): the classes are added on top of that order.
        self.priority: torch.Tensor | None = None
        self.conditioning = Conditioning(scaffold, self.prompt, dependencies, seed_tokens)
        texts = [s for s in scaffold.slots if s.pieces is not None and s.width > 1] if text_left_to_right else []
        if texts or any(s.bins for s in scaffold.slots) or self.conditioning.active:
            self.priority = torch.zeros(L, dtype=torch.float64)
            for s in scaffold.slots:
                if s.kind == "choice" or s.bins:
                    self.priority[s.start] = 2.0
            for s in texts:
                self.priority[s.start + 1 : s.start + s.width] = -torch.arange(1, s.width, dtype=torch.float64)
            self.priority += self.conditioning.boost

        # Value slots stacked into padded DFA tensors [K, S, V]; positions [K, W] (L = padding).
        values = [s for s in scaffold.slots if s.kind == "value"]
        self.value_slots = values
        self.slot_of = torch.full((L,), -1, dtype=torch.long)
        if values:
            dfas = [_dfa(langs[s.start], scaffold) for s in values]
            K, S, W = len(values), max(d.n_states for d in dfas), max(s.width for s in values)
            table = np.empty((K, S, V), dtype=np.int64)
            accept = np.zeros((K, S), dtype=bool)
            holds = self.static.numpy()
            for k, (d, s) in enumerate(zip(dfas, values)):
                table[k, :, :] = d.dead
                table[k, : d.n_states] = d.table
                # A symbol the slot can never hold (a word piece of another field that spells a
                # valid continuation, say "80" in a year) leads nowhere: otherwise the backward pass
                # would count on it, allow an END that only it could precede, and leave a position
                # with nothing it may take (a sampler that never finishes).
                table[k, :, ~holds[s.start : s.start + s.width].any(0)] = d.dead
                accept[k, : d.n_states] = d.accept
            self.T = torch.from_numpy(table)
            self.accept = torch.from_numpy(accept)
            self.start = torch.tensor([d.start for d in dfas])
            reach = torch.zeros(K, S, S)
            reach.scatter_(2, self.T, 1.0)
            self.reach = reach
            self.pos = torch.full((K, W), L, dtype=torch.long)
            for k, s in enumerate(values):
                self.pos[k, : s.width] = torch.arange(s.start, s.start + s.width)
                self.slot_of[s.start : s.start + s.width] = k
            first = self._slot_allowed(torch.full((1, L), MASK, dtype=torch.long), torch.arange(len(values)))[0, :, 0]
            for k, s in enumerate(values):
                if not bool(first[k].any()):
                    raise InputError(f"no value is left for {s.path} after the prompt's forbids and ranges")
        self._check_pins()
        self._to(self.device)

    # -- prompt edits ----------------------------------------------------------------------------

    def _apply_prompt(self, langs: dict[int, _LanguageSpec]) -> None:
        sc, vocab, p = self.scaffold, self.scaffold.vocab, self.prompt
        for path, values in p.forbid.items():
            for s in sc.slots_for(path):
                if s.kind == "choice":
                    for v in values:
                        tok = vocab.choice_ids.get((s.key, canonical(v)))
                        if tok is None:
                            raise InputError(
                                f"forbid {path}: {canonical(v)} is not one of {[canonical(c) for c in s.choices]}"
                            )
                        self.static[s.start, tok] = False
                    if not self.static[s.start].any():
                        raise InputError(f"forbid {path}: every choice is forbidden")
                else:
                    lang = langs[s.start]
                    spelled = []
                    for v in values:
                        if v is not None:
                            text = s.spell_checked(v, "forbid")  # refuses a value the field cannot hold
                            spelled.append(s.bin_of(v) + text if s.bins else text)
                    spelled = tuple(spelled)
                    langs[s.start] = _LanguageSpec(
                        lang.regex,
                        lang.extra,
                        tuple(sorted(set(lang.forbid + spelled))),
                        lang.nullable and None not in values,
                    )
        for path, (lo, hi) in p.ranges.items():
            for s in sc.slots_for(path):
                if s.vtype not in ("integer", "number"):
                    raise InputError(
                        f"range {path}: only number and integer fields take a range, this one is {s.vtype or s.role}"
                    )
                new_lo = lo if s.lo is None else max(lo, s.lo)
                new_hi = hi if s.hi is None else min(hi, s.hi)
                if new_lo > new_hi:
                    raise InputError(f"range {path}: [{lo}, {hi}] does not meet the field's range [{s.lo}, {s.hi}]")
                lang = langs[s.start]
                try:
                    regex = s.range_regex(new_lo, new_hi)
                except ValueError as e:
                    raise InputError(f"range {path}: {e}") from None
                langs[s.start] = _LanguageSpec(lang.regex, lang.extra + (regex,), lang.forbid, lang.nullable)
        for path, table in p.bias.items():
            hits = sc.slots_for(path)
            if any(s.kind == "choice" for s in hits):  # a vocabulary's written-value slot takes no bias
                hits = [s for s in hits if s.kind == "choice"]
            for s in hits:
                if s.kind != "choice":
                    raise InputError(f"bias {path}: only enum and boolean fields take a bias")
                for value_text, b in table.items():
                    tok = vocab.choice_ids.get((s.key, _canonical_text(value_text)))
                    if tok is None:
                        raise InputError(f"bias {path}: {value_text} is not one of {[canonical(c) for c in s.choices]}")
                    self.bias[s.start, tok] = float(b)
        for path, value in p.pins.items():
            for s in sc.slots_for(path):
                if s.new_variant is not None:  # a vocabulary that also writes new values
                    known = (s.key, canonical(value)) in vocab.choice_ids
                    variant = next(v for v in sc.slots if v.start == s.new_variant)
                    self.pins[variant.start] = [variant.tokens[variant.choices.index(0 if known else 1)]]
                    if not known:
                        continue
                self.pins[s.start] = self._pin_tokens(s, value, path)

    def _pin_tokens(self, s: Slot, value, path: str) -> list[int]:
        vocab = self.scaffold.vocab
        if s.kind == "choice":
            tok = vocab.choice_ids.get((s.key, canonical(value)))
            if tok is None:
                raise InputError(f"pin {path}: {canonical(value)} is not one of {[canonical(c) for c in s.choices]}")
            return [tok]
        if value is None:
            return [NULL] + [END] * (s.width - 1)
        text = s.spell_checked(value, "pin")
        missing = sorted({ch for ch in text if ch not in vocab.char_ids})
        toks = self.scaffold.value_tokens(s, value)
        if len(toks) > s.width or missing:
            why = (
                f"longer than the field's {s.width} symbols"
                if len(toks) > s.width
                else f"uses characters the seeds never use: {missing}"
            )
            raise InputError(f"pin {path}: {text!r} is {why}")
        return toks + [END] * (s.width - len(toks))

    def _check_pins(self) -> None:
        for start, toks in self.pins.items():
            k = int(self.slot_of[start])
            ok = self.static[start, toks[0]] if k < 0 else _accepts(self, k, toks)
            if not ok:
                slot = next(s for s in self.scaffold.slots if s.start == start)
                raise InputError(
                    f"pin {slot.path}: the value breaks the field's constraints or the prompt's forbids/ranges"
                )

    def _to(self, device: torch.device) -> None:
        for name in ("static", "bias", "gate_pos", "gate_ok", "gated", "slot_of"):
            setattr(self, name, getattr(self, name).to(device))
        if self.priority is not None:
            self.priority = self.priority.to(device)
        self.conditioning.to(device)
        if self.value_slots:
            for name in ("T", "accept", "start", "reach", "pos"):
                setattr(self, name, getattr(self, name).to(device))

    # -- the sampler's interface -----------------------------------------------------------------

    def initial_canvas(self, n: int) -> torch.Tensor:
        """[n, L] all masked but the pins, with gates already decided by pins propagated."""
        x = torch.full((n, self.scaffold.length), MASK, dtype=torch.long, device=self.device)
        for start, toks in self.pins.items():
            x[:, start : start + len(toks)] = torch.tensor(toks, device=self.device)
        return self.propagate(x)

    def propagate(self, x: torch.Tensor) -> torch.Tensor:
        """Fill with ABSENT every position whose controller switched it off (nested gates too)."""
        if not bool(self.gated.any()):
            return x
        idx = self.gate_pos.clamp(min=0)
        for _ in range(self.depth):
            ctrl = x[:, idx]  # [B, L]
            off = self.gated & (ctrl != MASK) & ~self.gate_ok[torch.arange(x.shape[1], device=x.device), ctrl]
            if not bool(off.any()):
                break
            x = torch.where(off, torch.full_like(x, ABSENT), x)
        return x

    def ready(self, x: torch.Tensor) -> torch.Tensor:
        masked = x == MASK
        if bool(self.gated.any()):
            ctrl = x[:, self.gate_pos.clamp(min=0)]
            masked = masked & (~self.gated | (ctrl != MASK))
        return self.conditioning.ready(x, masked) if self.conditioning.active else masked

    def allowed(self, x: torch.Tensor) -> torch.Tensor:
        """[B, L, V] bool: tokens each masked position may take now."""
        B, L = x.shape
        out = self.static.unsqueeze(0).expand(B, L, -1).clone()
        if self.value_slots:
            dyn = self._slot_allowed(x)  # [B, K, W, V]
            flat = self.pos.reshape(-1)
            real = flat < L
            out[:, flat[real]] &= dyn.reshape(B, -1, dyn.shape[-1])[:, real]
        return self.conditioning.restrict(x, out) if self.conditioning.active else out

    def commit(self, x: torch.Tensor, select: torch.Tensor, x0: torch.Tensor, conf: torch.Tensor) -> torch.Tensor:
        """Apply the proposals ``x0`` at ``select`` so every slot stays completable; then gates."""
        if self.conditioning.keys:
            select = self.conditioning.hold(x, select, conf)
        x = x.clone()
        choice_sel = select & (self.slot_of < 0)
        x = torch.where(choice_sel, x0, x)
        if self.value_slots:
            B, L = x.shape
            pad = torch.zeros(B, 1, dtype=torch.bool, device=x.device)
            sel = torch.cat([select, pad], 1)[:, self.pos]  # [B, K, W]
            c = torch.cat([conf, pad.float()], 1)[:, self.pos].masked_fill(~sel, -float("inf"))
            order = c.argsort(dim=2, descending=True)
            rounds = int(sel.sum(2).max()) if sel.any() else 0
            for r in range(rounds):
                j = order[:, :, r]  # [B, K] the r-th most confident proposal of each slot
                take = sel.gather(2, j.unsqueeze(2)).squeeze(2)
                if r > 0:  # a later proposal must still fit what the earlier rounds committed
                    allowed = self._slot_allowed(x, take.any(0).nonzero().squeeze(1))  # [B, K, W, V]
                    p = self.pos[torch.arange(self.pos.shape[0], device=x.device), j]  # [B, K]
                    tok = x0.gather(1, p.clamp(max=L - 1))
                    fits = allowed.gather(2, j[:, :, None, None].expand(-1, -1, 1, allowed.shape[-1])).squeeze(2)
                    take &= fits.gather(2, tok.unsqueeze(2)).squeeze(2)
                p = self.pos[torch.arange(self.pos.shape[0], device=x.device), j]
                rows, ks = take.nonzero(as_tuple=True)
                cols = p[rows, ks]
                x[rows, cols] = x0[rows, cols]
        return self.propagate(x)

    # -- DFA forward/backward ---------------------------------------------------------------------

    def _slot_allowed(self, x: torch.Tensor, only: torch.Tensor | None = None) -> torch.Tensor:
        """[B, K, W, V] bool: per value slot and offset, tokens that keep the slot completable.

        Computed for the slots in ``only`` (default: those with a masked position in some row);
        the others are all False (they have nothing left to allow)."""
        B = x.shape[0]
        K_all, S, V = self.T.shape
        W = self.pos.shape[1]
        out = torch.zeros(B, K_all, W, V, dtype=torch.bool, device=x.device)
        xe = torch.cat([x, torch.full((B, 1), END, dtype=x.dtype, device=x.device)], 1)
        if only is None:
            only = (xe[:, self.pos] == MASK).any(2).any(0).nonzero().squeeze(1)
        if len(only) == 0:
            return out
        T, reach, pos = self.T[only], self.reach[only], self.pos[only]
        K = len(only)
        sym = xe[:, pos]  # [B, K, W]
        masked = sym == MASK
        karange = torch.arange(K, device=x.device)
        T_kvs = T.transpose(1, 2)  # [K, V, S]
        fwd = [torch.zeros(B, K, S, device=x.device)]
        fwd[0][:, karange, self.start[only]] = 1.0
        nexts = []
        for j in range(W):
            tsel = T_kvs[karange.unsqueeze(0), sym[:, :, j].clamp(max=V - 1)]  # [B, K, S]: next state per state
            nexts.append(tsel)
            f = fwd[-1]
            fixed = torch.zeros_like(f).scatter_add_(2, tsel, f)
            wild = torch.einsum("bks,kst->bkt", f, reach)
            fwd.append((torch.where(masked[:, :, j, None], wild, fixed) > 0).float())
        bwd = [None] * (W + 1)
        bwd[W] = self.accept[only].float().unsqueeze(0).expand(B, K, S)
        for j in range(W - 1, -1, -1):
            b = bwd[j + 1]
            fixed = b.gather(2, nexts[j])
            wild = torch.einsum("kst,bkt->bks", reach, b)
            bwd[j] = (torch.where(masked[:, :, j, None], wild, fixed) > 0).float()
        for j in range(W):
            # A token v is allowed at (row b, slot k, offset j) when some state s reachable before j
            # steps on v to a state from which the slot can still be finished. Only the live
            # (row, slot, state) triples of positions still masked are walked: the forward sets are
            # sparse, and a dense [B, K, S, V] product costs seconds per step on long canvases.
            live = fwd[j] * masked[:, :, j, None]
            b_i, k_i, s_i = live.nonzero(as_tuple=True)
            if len(b_i) == 0:
                continue
            acc = torch.zeros(B * K, V, device=x.device)
            for c0 in range(0, len(b_i), _TRIPLE_CHUNK):
                b, k, st = b_i[c0 : c0 + _TRIPLE_CHUNK], k_i[c0 : c0 + _TRIPLE_CHUNK], s_i[c0 : c0 + _TRIPLE_CHUNK]
                ok = bwd[j + 1][b[:, None], k[:, None], T[k, st]]  # [N, V]: can finish after v
                acc.index_add_(0, b * K + k, ok)
            out[:, only, j] = acc.view(B, K, V) > 0
        return out


def _accepts(c: CanvasConstraint, k: int, toks: list[int]) -> bool:
    s = int(c.start[k])
    for t in toks:
        s = int(c.T[k, s, t])
    return bool(c.accept[k, s])


def _canonical_text(value_text: str) -> str:
    """Bias keys are JSON texts ("\\"Dream\\"", "true", "null"); bare strings are taken as strings."""
    import json

    try:
        return canonical(json.loads(value_text))
    except (ValueError, TypeError):
        return canonical(value_text)


def _gate_depth(scaffold: Scaffold) -> int:
    by_start = {s.start: s for s in scaffold.slots}
    depth = 0
    for s in scaffold.slots:
        d, g = 0, s.gate
        while g is not None:
            d, g = d + 1, by_start[g].gate
        depth = max(depth, d)
    return max(depth, 1)


@lru_cache(maxsize=256)
def _compiled(lang: _LanguageSpec, chars: tuple[tuple[str, int], ...], vocab_size: int) -> SlotDFA:
    fsm = compile_fsm(lang.regex, lang.extra, lang.forbid)
    return build_slot_dfa(fsm, dict(chars), vocab_size, end_id=END, null_id=NULL if lang.nullable else None)


def _dfa(lang: _LanguageSpec, scaffold: Scaffold) -> SlotDFA:
    vocab = scaffold.vocab
    return _compiled(lang, tuple(sorted(vocab.symbol_ids.items())), len(vocab))
