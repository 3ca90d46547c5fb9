"""The seeds' coarse conditional: a kernel estimate that keeps a record's plan consistent across fields.

A small denoiser fitted in a minute learns each field's marginal well but cross-field facts only
partly: on airports it puts a state's coordinates anywhere in the country (about six seeds per
state is too little for 900 steps), on cars weight and horsepower drift apart. This prior carries
those facts for the *coarse* tokens of a canvas, the ones that fix a record's plan: choice slots (an
enum, a vocabulary value, an array length, a key's presence), a number slot's bin mark, the digits
of a short integer, the year and month of a date. At each sampling step, for each row:

* every seed is weighted by how close its coarse tokens are to the ones the row has committed so
  far, ``w_s ∝ exp(-d_s / bandwidth)``; ``d_s`` sums, over committed coarse positions, 0 for the same
  token, 1 for another one, and for bin marks the distance in bins over ``BIN_SPAN`` (capped at 1), so
  a neighbouring bin is nearly a match;
* the prior of each coarse position still masked is the weighted share of seeds holding each token,
  mixed with ``MARGINAL`` of that position's marginal and floored at ``FLOOR`` (a value no seed
  shows stays possible, only unlikely);
* ``weight × log prior`` is added to the denoiser's logits there (a product of experts). The model
  still decides; the prior moves it towards what the seeds say given the rest of the plan.

With nothing committed the prior is the seeds' marginal; once the species is committed it is the
species' distribution of body-mass bins, and so on. Digits inside a bin and free text stay the
model's, so values are new: the prior never copies a seed's value, only its coarse shape.
Positions whose tokens the prompt biases (a compiled "mostly Torgersen") are left alone, so the
user's steering wins over the seeds' frequencies; pins are committed positions and condition it.
"""

from __future__ import annotations

import torch

from aod_core.canvas.scaffold import Scaffold
from aod_core.canvas.slots import END, MASK

BIN_SPAN = 1.0  # bins apart that count as a full mismatch
MARGINAL = 0.01  # share of the position's marginal mixed into every conditional
FLOOR = 1e-4  # the smallest prior probability of a token
SHORT_INTEGER = 4  # unbinned integer slots this wide or narrower are coarse digit by digit
DATE_COARSE = 7  # a date's coarse characters: YYYY-MM
FIRST_PIECE = True
SMOOTH = 2.0  # text bigrams: pseudo-counts of the field's unigram added to every context
MAX_SEEDS = 2000  # more seeds than this: a fixed random subset of them


def coarse_positions(scaffold: Scaffold) -> list[tuple[int, dict[int, int] | None]]:
    """(canvas position, bin ordinal of each bin-mark token or None) for every coarse position."""
    out: list[tuple[int, dict[int, int] | None]] = []
    ids = scaffold.vocab.piece_ids
    for s in scaffold.slots:
        if s.kind == "choice":
            out.append((s.start, None))
        elif s.bins:
            out.append((s.start, {ids[mark]: k for k, (_lo, _hi, mark) in enumerate(s.bins)}))
        elif s.vtype == "integer" and s.width <= SHORT_INTEGER:
            out.extend((p, None) for p in s.positions)
        elif s.pieces is not None and FIRST_PIECE:
            out.append((s.start, None))  # a text's first word piece (a car's make, a town's first word)
        elif s.vtype == "date":
            out.extend((p, None) for p in range(s.start, s.start + min(s.width, DATE_COARSE)))
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
        cols = coarse_positions(scaffold)
        self.positions = torch.tensor([p for p, _ in cols], dtype=torch.long)
        V = len(scaffold.vocab)
        self.V = V
        self.seeds = seed_tokens[:, self.positions].long()  # [S, K]
        K = len(cols)
        # bin ordinal per (coarse position, token); -1 where the token is not a bin mark
        self.ordinal = torch.full((K, V), -1.0)
        for j, (_p, bins) in enumerate(cols):
            for tok, k in (bins or {}).items():
                self.ordinal[j, tok] = float(k)
        self.seed_ord = self.ordinal.gather(1, self.seeds.T).T  # [S, K]
        # flat (position, token) index of every seed's coarse token, for a scatter instead of a one-hot
        self.flat = (torch.arange(K).unsqueeze(0) * V + self.seeds).reshape(-1)  # [S * K]
        S = len(self.seeds)
        self.marginal = torch.zeros(K * V).index_add_(0, self.flat, torch.full((S * K,), 1.0 / max(S, 1)))
        self.marginal = self.marginal.reshape(K, V)

    @property
    def active(self) -> bool:
        return self.weight > 0 and len(self.positions) > 0 and len(self.seeds) > 0

    def to(self, device: torch.device) -> SeedPrior:
        for name in ("positions", "seeds", "ordinal", "seed_ord", "flat", "marginal"):
            setattr(self, name, getattr(self, name).to(device))
        return self

    def distances(self, coarse: torch.Tensor) -> torch.Tensor:
        """[B, S]: each seed's distance to each row's committed coarse tokens ``coarse`` [B, K]."""
        committed = coarse != MASK  # [B, K]
        differ = (self.seeds.unsqueeze(0) != coarse.unsqueeze(1)).float()  # [B, S, K]
        row_ord = self.ordinal.gather(1, coarse.T.clamp(min=0)).T  # [B, K]
        both = (row_ord >= 0).unsqueeze(1) & (self.seed_ord >= 0).unsqueeze(0)
        apart = ((row_ord.unsqueeze(1) - self.seed_ord.unsqueeze(0)).abs() / BIN_SPAN).clamp(max=1.0)
        d = torch.where(both, apart, differ)
        return (d * committed.unsqueeze(1)).sum(-1)

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
        """``logits_fn`` with ``weight × log prior`` added at the coarse positions still masked,
        except those marked in ``skip`` [L] (positions the prompt biases)."""
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
    (which pieces end one)."""

    def __init__(self, scaffold: Scaffold, seed_tokens: torch.Tensor, *, weight: float = 1.0):
        self.weight = float(weight)
        V = len(scaffold.vocab)
        self.slots: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []  # (positions, left, right)
        for s in scaffold.slots:
            if s.pieces is None or s.width < 2:
                continue
            rows = seed_tokens[:, s.start : s.start + s.width].long()
            self.slots.append((torch.arange(s.start, s.start + s.width), *_bigrams(rows, V)))

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
        for pos, left, right in self.slots:
            cur = x[:, pos]  # [B, W]
            B, W = cur.shape
            start = torch.full((B, 1), V, dtype=cur.dtype, device=cur.device)  # index V: the text's start
            end = torch.full((B, 1), END, dtype=cur.dtype, device=cur.device)
            lhs = torch.cat([start, cur[:, :-1]], 1)
            rhs = torch.cat([cur[:, 1:], end], 1)
            open_ = cur == MASK
            add = left[lhs] * ((lhs != MASK) & open_).unsqueeze(-1) + right[rhs] * ((rhs != MASK) & open_).unsqueeze(-1)
            if not bool(add.any()):
                continue
            out = logits.clone() if out is None else out
            out[:, pos] += (self.weight * add).to(out.dtype)
        return logits if out is None else out


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
