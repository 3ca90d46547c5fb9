"""The seeds' priors while sampling: what the seeds say about a record's plan and its words.

A small denoiser fitted in a minute learns each field's marginal well but cross-field facts only
partly: on airports it put a state's coordinates anywhere in the country (about six seeds per state
is too few for 900 steps), on cars weight and horsepower drifted apart. Two counts from the seeds are
added to its logits at every sampling step (a product of experts; the model still decides):

``SeedPrior``, for the *coarse* positions, the ones that fix a record's plan: choice slots (an enum,
a vocabulary value, an array length, a key's presence), a number slot's bin mark, the digits of a
short integer, the year and month of a date, the first word piece of a free text. For each row:

* every seed is weighted by how many of the row's committed coarse tokens it does not share,
  ``w_s ∝ exp(-mismatches_s / bandwidth)`` (softmax over seeds, so the nearest seeds dominate and the
  weights are defined however unusual the plan);
* each still-masked coarse position gets the weighted share of seeds holding each token (mixed with
  ``MARGINAL`` of the position's marginal, floored at ``FLOOR``), divided by that token's share over
  all seeds: what the committed tokens *add* to what the model already knows of the position alone.
  ``weight × log`` of that ratio is added to the logits (zero while nothing is committed).

So once a state is committed its coordinates' bins follow that state's seeds, a species pulls its
body-mass bins, a group's size its number of birds. Digits inside a bin and the rest of a text stay
the model's, so values are new: the prior never copies a seed's value, only its coarse shape.
Positions whose tokens the prompt biases (a compiled "mostly Torgersen") are left alone, so the
user's steering wins over the seeds' frequencies; pins are committed positions and condition it.

``TextPrior``: each free-text field's word-piece bigrams in both directions (see the class).
"""

from __future__ import annotations

import torch

from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import END, MASK

MARGINAL = 0.01  # share of the position's marginal mixed into every conditional
FLOOR = 1e-4  # the smallest prior probability of a token
SHORT_INTEGER = 4  # unbinned integer slots this wide or narrower are coarse digit by digit
DATE_COARSE = 7  # a date's coarse characters: YYYY-MM
SMOOTH = 2.0  # text bigrams: pseudo-counts of the field's unigram added to every context
MAX_SEEDS = 2000  # more seeds than this: a fixed random subset of them (distinct text values: the first)
COPY_PENALTY = 3.0  # nats an END costs where it would complete a seed's text value exactly


def coarse_positions(scaffold: Scaffold) -> list[int]:
    """The canvas positions of every coarse token, in canvas order."""
    out: list[int] = []
    for s in scaffold.slots:
        if s.kind == "choice" or s.bins or s.pieces is not None:
            out.append(s.start)  # the choice, the bin mark, a text's first piece (a car's make)
        elif s.vtype == "integer" and s.width <= SHORT_INTEGER:
            out.extend(s.positions)
        elif s.vtype == "date":
            out.extend(range(s.start, s.start + min(s.width, DATE_COARSE)))
    return out


class SeedPrior:
    """The kernel conditional of coarse tokens, fitted on the seeds' encoded canvases."""

    def __init__(self, scaffold: Scaffold, seed_tokens: torch.Tensor, *, weight: float = 2.0, bandwidth: float = 0.25):
        if bandwidth <= 0:
            raise ValueError("bandwidth must be > 0")
        if len(seed_tokens) > MAX_SEEDS:  # the cost is batch x seeds x positions per step
            pick = torch.randperm(len(seed_tokens), generator=torch.Generator().manual_seed(0))[:MAX_SEEDS]
            seed_tokens = seed_tokens[pick.sort().values]
        self.weight, self.bandwidth = float(weight), float(bandwidth)
        self.positions = torch.tensor(coarse_positions(scaffold), dtype=torch.long)
        V = len(scaffold.vocab)
        self.V = V
        self.seeds = seed_tokens[:, self.positions].long()  # [S, K]
        K = len(self.positions)
        # flat (position, token) index of every seed's coarse token, for a scatter instead of a one-hot
        self.flat = (torch.arange(K).unsqueeze(0) * V + self.seeds).reshape(-1)  # [S * K]
        S = len(self.seeds)
        self.marginal = torch.zeros(K * V).index_add_(0, self.flat, torch.full((S * K,), 1.0 / max(S, 1)))
        self.marginal = self.marginal.reshape(K, V)

    @property
    def active(self) -> bool:
        return self.weight > 0 and len(self.positions) > 0 and len(self.seeds) > 0

    def to(self, device: torch.device) -> SeedPrior:
        for name in ("positions", "seeds", "flat", "marginal"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def distances(self, coarse: torch.Tensor) -> torch.Tensor:
        """[B, S]: how many of each row's committed coarse tokens ``coarse`` [B, K] each seed lacks."""
        committed = (coarse != MASK).unsqueeze(1)  # [B, 1, K]
        return ((self.seeds.unsqueeze(0) != coarse.unsqueeze(1)) & committed).sum(-1).float()

    def log_prior(self, x: torch.Tensor) -> torch.Tensor:
        """[B, K, V]: the log prior of every token at every coarse position, given the canvas ``x`` [B, L]."""
        coarse = x[:, self.positions]
        w = torch.softmax(-self.distances(coarse) / self.bandwidth, dim=1)  # [B, S]
        B, K = coarse.shape
        mass = w.unsqueeze(2).expand(B, w.shape[1], K).reshape(B, -1)  # [B, S * K]
        cond = torch.zeros(B, K * self.V, device=x.device).index_add_(1, self.flat, mass).reshape(B, K, self.V)
        p = (1 - MARGINAL) * cond + MARGINAL * self.marginal.unsqueeze(0)
        return p.clamp(min=FLOOR).log()

    def log_ratio(self, x: torch.Tensor) -> torch.Tensor:
        """[B, K, V]: log prior minus log marginal: what the committed tokens add to what the model
        already knows of each position alone (zero while nothing is committed)."""
        return self.log_prior(x) - self.marginal.clamp(min=FLOOR).log().unsqueeze(0)

    def wrap(self, logits_fn, skip: torch.Tensor | None = None, text: TextPrior | None = None):
        """``logits_fn`` with ``weight × log_ratio`` added at the coarse positions still masked, except
        those marked in ``skip`` [L] (positions the prompt biases), and ``text``'s bigram terms."""
        keep = torch.ones(len(self.positions), dtype=torch.bool, device=self.positions.device)
        if skip is not None:
            keep &= ~skip.to(self.positions.device)[self.positions]
        cols = self.positions[keep]
        coarse = self.active and len(cols) > 0
        text = text if text is not None and text.active else None
        if not coarse and text is None:
            return logits_fn

        def fn(x: torch.Tensor) -> torch.Tensor:
            logits = logits_fn(x)
            open_ = x[:, cols] == MASK  # [B, K']
            if coarse and bool(open_.any()):
                add = self.log_ratio(x)[:, keep] * self.weight  # [B, K', V]
                logits = logits.clone()
                logits[:, cols] += (add * open_.unsqueeze(-1)).to(logits.dtype)
            if text is not None:
                logits = text.add_to(logits, x)
            return logits

        return fn


class TextPrior:
    """The seeds' word-piece bigrams of each free-text slot, in both directions: a masked piece
    whose left (or right) neighbour is committed gets ``weight × (log P(piece | neighbour) - log
    P(piece))`` added, from the seeds' texts of that field (add-``SMOOTH`` counts backed off to the
    field's unigram). The denoiser learns which pieces a field uses; these counts make the pieces it
    puts next to each other the ones the seeds put together, so words come out whole. The start of
    the text is a neighbour too (which pieces begin a value), and so is the END that closes it
    (which pieces end one). Bigrams of whole-word pieces also chain back into the seeds' own values,
    so an END that would complete a seed's value exactly (every piece before it committed and equal
    to that seed's) costs ``weight × COPY_PENALTY`` nats: new values are preferred, not forbidden."""

    def __init__(self, scaffold: Scaffold, seed_tokens: torch.Tensor, *, weight: float = 1.0):
        self.weight = float(weight)
        V = len(scaffold.vocab)
        # (positions, left, right, the seeds' distinct values, where each value's END is)
        self.slots: list[tuple[torch.Tensor, ...]] = []
        for s in scaffold.slots:
            if s.pieces is None or s.width < 2:
                continue
            rows = seed_tokens[:, s.start : s.start + s.width].long()
            values = torch.unique(rows, dim=0)[:MAX_SEEDS]
            ends = values == END
            ends[:, 1:] &= values[:, :-1] != END  # the END that closes the value, not the padding after it
            self.slots.append((torch.arange(s.start, s.start + s.width), *_bigrams(rows, V), values, ends))

    @property
    def active(self) -> bool:
        return self.weight > 0 and bool(self.slots)

    def to(self, device: torch.device) -> TextPrior:
        self.slots = [tuple(t.to(device) for t in slot) for slot in self.slots]
        return self

    def add_to(self, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``logits`` [B, L, V] with each slot's bigram terms added where a neighbour is committed."""
        out = None
        V = logits.shape[-1]
        for pos, left, right, values, ends in self.slots:
            cur = x[:, pos]  # [B, W]
            B, W = cur.shape
            start = torch.full((B, 1), V, dtype=cur.dtype, device=cur.device)  # index V: the text's start
            end = torch.full((B, 1), END, dtype=cur.dtype, device=cur.device)
            lhs = torch.cat([start, cur[:, :-1]], 1)
            rhs = torch.cat([cur[:, 1:], end], 1)
            open_ = cur == MASK
            add = left[lhs] * ((lhs != MASK) & open_).unsqueeze(-1) + right[rhs] * ((rhs != MASK) & open_).unsqueeze(-1)
            copy = self._completes_a_seed(cur, values, ends) & open_
            if bool(copy.any()):
                add[..., END] -= COPY_PENALTY * copy
            if not bool(add.any()):
                continue
            out = logits.clone() if out is None else out
            out[:, pos] += (self.weight * add).to(out.dtype)
        return logits if out is None else out

    @staticmethod
    def _completes_a_seed(cur: torch.Tensor, values: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """[B, W] bool: an END at this position would make the row's text exactly a seed's value."""
        B, W = cur.shape
        # mismatches before each position, per (row, seed value): 0 means the prefix is that value's
        differ = (cur.unsqueeze(1) != values.unsqueeze(0)).to(torch.int32)  # [B, S, W]
        before = torch.cat([torch.zeros(B, len(values), 1, dtype=torch.int32, device=cur.device), differ[:, :, :-1]], 2)
        return ((before.cumsum(2) == 0) & ends.unsqueeze(0)).any(1)


def _bigrams(rows: torch.Tensor, V: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[V + 1, V] log ratios log P(b | a on the left) - log P(b) (row V: the text's start) and
    [V, V] log P(b | c on the right) - log P(b), from a slot's seed tokens ``rows`` [S, W]."""
    S, W = rows.shape
    start = torch.full((S, 1), V, dtype=rows.dtype)
    ended = torch.cat([torch.zeros(S, 1, dtype=torch.bool), rows[:, :-1] == END], 1)  # padding after the END
    a = torch.cat([start, rows[:, :-1]], 1)[~ended]
    b = rows[~ended]
    uni = torch.bincount(b, minlength=V).double() + 0.01
    uni = uni / uni.sum()
    pair = torch.zeros(V + 1, V, dtype=torch.float64).index_put_((a, b), torch.ones(len(a), dtype=torch.float64), True)
    left = ((pair + SMOOTH * uni) / (pair.sum(1, keepdim=True) + SMOOTH)).log() - uni.log()
    # right neighbours: the piece after b (END closes the text)
    nxt = torch.cat([rows[:, 1:], torch.full((S, 1), END, dtype=rows.dtype)], 1)[~ended & (rows != END)]
    cur = rows[~ended & (rows != END)]
    rpair = torch.zeros(V, V, dtype=torch.float64).index_put_(
        (nxt, cur), torch.ones(len(cur), dtype=torch.float64), True
    )
    right = ((rpair + SMOOTH * uni) / (rpair.sum(1, keepdim=True) + SMOOTH)).log() - uni.log()
    left[END] = 0.0  # after an END only END may follow (the constraint's rule, not a fact of the seeds)
    right[:, END] = 0.0  # whether the text ends here is judged from its left neighbour
    return left.float(), right.float()
