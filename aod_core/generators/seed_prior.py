"""The seeds' priors while sampling: what the seeds say about a record's plan and its words.

A small denoiser fitted in a minute learns each field's marginal well but cross-field facts only
partly: on airports it put a state's coordinates anywhere in the country (about six seeds per state
is too few for 900 steps), on cars weight and horsepower drifted apart. Two counts from the seeds are
added to its logits at every sampling step (a product of experts; the model still decides):

``SeedPrior``, for the *coarse* positions, the ones that fix a record's plan: choice slots (an enum,
a vocabulary value, an array length, a key's presence), a number slot's bin mark, the digits of a
short integer, the year and month of a date, the first word piece of a free text. For each row:

* for each still-masked coarse position k, every seed is weighted by the row's committed coarse
  tokens it does not share, each mismatch at position j counting ``relevance[k, j]``:
  ``w_s ∝ exp(-Σ_j relevance[k, j] · mismatch_j)`` (softmax over seeds, so the nearest seeds dominate
  and the weights are defined however unusual the plan). The relevance is fitted on the seeds by
  leave-one-out likelihood (``fit_relevance``): a state weighs on its coordinates, a year on little;
  one shared bandwidth instead either copies the nearest seed's whole plan or loses the facts;
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

from collections.abc import Sequence

import torch

from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import ABSENT, END, MASK

MARGINAL = 0.01  # share of the position's marginal mixed into every conditional
FLOOR = 1e-4  # the smallest prior probability of a token
SHORT_INTEGER = 4  # unbinned integer slots this wide or narrower are coarse digit by digit
DATE_COARSE = 7  # a date's coarse characters: YYYY-MM
SMOOTH = 2.0  # text bigrams: pseudo-counts of the field's unigram added to every context
MAX_SEEDS = 2000  # more seeds than this: a fixed random subset of them (distinct text values: the first)
COPY_PENALTY = 3.0  # nats an END costs where it would complete a seed's text value exactly


def coarse_positions(scaffold: Scaffold, seed_tokens: torch.Tensor | None = None) -> list[int]:
    """The canvas positions of every coarse token, in canvas order. An integer slot is short when
    it is at most ``SHORT_INTEGER`` wide, or when no seed writes more than that many digits in it
    (a year in a slot an open schema range made wider)."""
    out: list[int] = []
    for s in scaffold.slots:
        if s.kind == "choice" or s.bins or s.pieces is not None:
            out.append(s.start)  # the choice, the bin mark, a text's first piece (a car's make)
        elif s.vtype == "integer" and (s.width <= SHORT_INTEGER or _written(seed_tokens, s) <= SHORT_INTEGER):
            out.extend(s.positions)
        elif s.vtype == "date":
            out.extend(range(s.start, s.start + min(s.width, DATE_COARSE)))
    return out


def _written(seed_tokens: torch.Tensor | None, slot) -> int:
    """The most symbols any seed writes in a value slot (its width when there are no seeds)."""
    if seed_tokens is None or not len(seed_tokens):
        return slot.width
    rows = seed_tokens[:, slot.start : slot.start + slot.width]
    return int(((rows != END) & (rows != ABSENT)).sum(1).max())


CV_SEEDS = 600  # seeds the relevance is fitted on (a fixed random subset past it)
FIT_STEPS = 150  # Adam steps of the relevance fit (about a second on 2 cores at 300 seeds)
RIDGE = 1e-4  # L2 penalty on the relevance weights


ORDINAL = (0.5, 0.25)  # a seed's bin mass: its own bin, and each neighbouring bin (magnitudes are ordered)


def _similar(x: torch.Tensor, rank: torch.Tensor) -> torch.Tensor:
    """[K, S, T]: how much of seed t's mass at each coarse position lands on seed s's token there:
    1 for the same token; for a number's bins (``rank`` [K, S] their order, -1 elsewhere) ``ORDINAL``
    by how far apart the two bins are."""
    same = (x.t().unsqueeze(2) == x.t().unsqueeze(1)).float()
    ordered = (rank >= 0).unsqueeze(2)
    gap = (rank.unsqueeze(2) - rank.unsqueeze(1)).abs()
    near = torch.where(gap == 0, ORDINAL[0], torch.where(gap == 1, ORDINAL[1], 0.0))
    return torch.where(ordered, near, same)


def _loo_loglik(
    x: torch.Tensor, relevance: torch.Tensor, committed: torch.Tensor, similar: torch.Tensor
) -> torch.Tensor:
    """Mean log-likelihood of each seed's coarse token at each position given its ``committed`` [S, K]
    other coarse tokens, under the kernel of the *other* seeds with per-(position, position)
    ``relevance`` [K, K] (``similar``: ``_similar``'s mass of each seed on each other's token)."""
    S, K = x.shape
    differ = (x.unsqueeze(1) != x.unsqueeze(0)).float() * committed.unsqueeze(1)  # [S, T, K]
    dist = torch.einsum("stj,kj->skt", differ, relevance) + torch.eye(S).unsqueeze(1) * 1e9
    w = torch.softmax(-dist, dim=2)  # [S, K, T]
    p = (w * similar.permute(1, 0, 2)).sum(2)  # [S, K]
    p = (1 - MARGINAL) * p + MARGINAL * similar.mean(2).t()
    return p.clamp(min=FLOOR).log().mean()


def fit_relevance(
    seed_tokens: torch.Tensor,
    positions: torch.Tensor,
    apart: torch.Tensor | None = None,
    ranks: torch.Tensor | None = None,
) -> torch.Tensor:
    """[K, K]: how much a mismatch at coarse position j counts against a seed when predicting
    position k, fitted to the seeds by leave-one-out likelihood (each seed's tokens predicted by the
    other seeds from a random share of its other tokens, as the sampler decides them; ``apart``
    [K, K] marks pairs held at 0, a key's fields).

    One shared bandwidth (every mismatch alike) either makes the conditional a lookup of the one
    nearest seed, whose whole plan a record then copies (penguins: 69% of records closer to a seed
    than real new ones are), or forgets which fields go together (airports' coordinates leave their
    state). Fitted weights keep a state's pull on its coordinates strong and a year's on anything
    weak, so records follow the facts without copying a seed's plan."""
    x = seed_tokens[:, positions].long()
    if len(x) > CV_SEEDS:
        x = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:CV_SEEDS]]
    S, K = x.shape
    rank = (ranks.gather(1, x.t()) if ranks is not None else torch.full((K, S), -1)).float()  # [K, S]
    similar = _similar(x, rank)
    off = 1 - torch.eye(K)
    if apart is not None:
        off = off * (~apart).float()
    if S < 3 or K < 2:
        return off
    theta = torch.zeros(K, K, requires_grad=True)  # softplus(0) = 0.69: a bandwidth of 1.4 to start from
    opt = torch.optim.Adam([theta], lr=0.1)
    gen = torch.Generator().manual_seed(0)
    with torch.enable_grad():
        for _ in range(FIT_STEPS):
            # as while sampling: a random share of the record's other coarse tokens is decided
            committed = (torch.rand(S, K, generator=gen) < torch.rand(S, 1, generator=gen)).float()
            rel = torch.nn.functional.softplus(theta) * off
            loss = -_loo_loglik(x, rel, committed, similar) + RIDGE * (rel**2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
    rel = torch.nn.functional.softplus(theta.detach()) * off
    return torch.round(rel * 100) / 100  # two decimals: the same weights whatever the float noise


class SeedPrior:
    """The kernel conditional of coarse tokens, fitted on the seeds' encoded canvases."""

    def __init__(
        self,
        scaffold: Scaffold,
        seed_tokens: torch.Tensor,
        *,
        weight: float = 2.0,
        bandwidth: float = 0.0,
        keys: Sequence[Sequence[Sequence[int]]] = (),
    ):
        if bandwidth < 0:
            raise ValueError("bandwidth must be >= 0 (0: relevance fitted on the seeds)")
        if len(seed_tokens) > MAX_SEEDS:  # the cost is batch x seeds x positions per step
            pick = torch.randperm(len(seed_tokens), generator=torch.Generator().manual_seed(0))[:MAX_SEEDS]
            seed_tokens = seed_tokens[pick.sort().values]
        self.positions = torch.tensor(coarse_positions(scaffold, seed_tokens), dtype=torch.long)
        self.weight, self.bandwidth = float(weight), float(bandwidth)
        V = len(scaffold.vocab)
        self.V = V
        self.seeds = seed_tokens[:, self.positions].long()  # [S, K]
        K = len(self.positions)
        # flat (position, token) index of every seed's coarse token, for a scatter instead of a one-hot
        self.flat = (torch.arange(K).unsqueeze(0) * V + self.seeds).reshape(-1)  # [S * K]
        S = len(self.seeds)
        self.marginal = torch.zeros(K * V).index_add_(0, self.flat, torch.full((S * K,), 1.0 / max(S, 1)))
        self.marginal = self.marginal.reshape(K, V)
        # A key's fields (country, year): the seeds show each combination once, so one field's
        # seeds say nothing about the other's value but which combinations are taken: a key field's
        # tokens are weighed without the key's other fields (their relevance held at 0).
        col = {int(p): i for i, p in enumerate(self.positions)}
        apart = torch.zeros(K, K, dtype=torch.bool)
        for key in keys:
            cols = [[col[p] for p in field if p in col] for field in key]
            for i, mine in enumerate(cols):
                for j, theirs in enumerate(cols):
                    if i != j and mine and theirs:
                        apart[torch.tensor(mine).unsqueeze(1), torch.tensor(theirs).unsqueeze(0)] = True
        # Number bins are ordered: a seed's bin mass goes partly to the neighbouring bins
        # (``ORDINAL``), so a record lands near its like seeds' magnitudes, not on them.
        # ranks[k, token] = the bin's order at coarse position k (-1: not a bin there).
        self.ranks = torch.full((K, V), -1, dtype=torch.long)
        by_start = {s.start: s for s in scaffold.slots}
        for k, p in enumerate(self.positions.tolist()):
            slot = by_start.get(p)
            if slot is not None and slot.bins:
                self.ranks[k, list(slot.symbols)] = torch.arange(len(slot.symbols))
        self.smooth = self._smoothing(V)
        self._base: torch.Tensor | None = None
        if self.bandwidth > 0:
            self.relevance = (1 - torch.eye(K)) * (~apart).float() / self.bandwidth
        else:
            self.relevance = fit_relevance(seed_tokens, self.positions, apart, self.ranks) if K else torch.zeros(0, 0)

    def _smoothing(self, V: int) -> list[tuple[int, torch.Tensor]]:
        """Per binned coarse position: its bin tokens in order."""
        out = []
        for k in range(len(self.positions)):
            ranked = (self.ranks[k] >= 0).nonzero().squeeze(1)
            if len(ranked) > 1:
                out.append((k, ranked[self.ranks[k, ranked].argsort()]))
        return out

    def _smoothed(self, cond: torch.Tensor) -> torch.Tensor:
        """``cond`` [B, K, V] with each bin's mass shared with its neighbours (``ORDINAL``; at the
        ends the mass that would fall off stays in the bin)."""
        if not self.smooth:
            return cond
        out = cond.clone()
        for k, toks in self.smooth:
            c = cond[:, k, toks]
            left = torch.cat([c[:, :1], c[:, :-1]], 1)  # the bin to the left's mass (the first keeps its own)
            right = torch.cat([c[:, 1:], c[:, -1:]], 1)
            out[:, k, toks] = ORDINAL[0] * c + ORDINAL[1] * (left + right)
        return out

    @property
    def active(self) -> bool:
        return self.weight > 0 and len(self.positions) > 0 and len(self.seeds) > 0

    def to(self, device: torch.device) -> SeedPrior:
        for name in ("positions", "seeds", "flat", "marginal", "relevance", "ranks"):
            setattr(self, name, getattr(self, name).to(device))
        self.smooth = [(k, t.to(device)) for k, t in self.smooth]
        return self

    def distances(self, coarse: torch.Tensor) -> torch.Tensor:
        """[B, K, S]: for each row and coarse position, each seed's weighted count of the row's
        committed coarse tokens it lacks (the position's own relevance row)."""
        differ = ((self.seeds.unsqueeze(0) != coarse.unsqueeze(1)) & (coarse != MASK).unsqueeze(1)).float()  # [B, S, K]
        return torch.einsum("bsj,kj->bks", differ, self.relevance.to(differ.dtype))

    def log_prior(self, x: torch.Tensor) -> torch.Tensor:
        """[B, K, V]: the log prior of every token at every coarse position, given the canvas ``x`` [B, L]."""
        coarse = x[:, self.positions]
        w = torch.softmax(-self.distances(coarse), dim=2)  # [B, K, S]
        B, K = coarse.shape
        mass = w.permute(0, 2, 1).reshape(B, -1)  # [B, S * K], seed-major like ``flat``
        cond = torch.zeros(B, K * self.V, device=x.device).index_add_(1, self.flat, mass).reshape(B, K, self.V)
        p = (1 - MARGINAL) * self._smoothed(cond) + MARGINAL * self.marginal.unsqueeze(0)
        return p.clamp(min=FLOOR).log()

    def log_ratio(self, x: torch.Tensor) -> torch.Tensor:
        """[B, K, V]: log prior minus the log prior of a record with nothing committed (the
        marginal, bins shared with their neighbours): what the committed tokens add to what the
        model already knows of each position alone (zero while nothing is committed)."""
        if self._base is None or self._base.device != x.device:
            self._base = self.log_prior(torch.full((1, int(self.positions.max()) + 1), MASK, device=x.device))
        return self.log_prior(x) - self._base

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
