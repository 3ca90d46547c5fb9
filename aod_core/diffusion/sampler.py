"""Masked-diffusion sampling over any ``logits(canvas) -> [batch, len, vocab]`` callable.

LLaDA's procedure, generalised to canvases whose masked positions are interleaved with fixed
tokens (a schema scaffold): at each step one forward pass predicts every masked position; a
proposal is drawn per position (Gumbel-max in float64 at the given temperature); then either the
k most confident proposals are committed (``low_confidence``), k random ones (``random``), or,
Fast-dLLM style, every proposal whose confidence reaches ``threshold`` (at least one per row).
Committed tokens are never re-masked. Masked positions are split by canvas index into
``num_blocks`` blocks decoded left to right; k spreads a block's remaining masks over its
remaining steps. An optional constraint restricts tokens, orders commits and fills gated positions.

The pieces of one step that do not depend on the canvas's layout (the proposal, classifier-free
guidance, the commit order and the choice of commits) are functions here, shared with the ``hf:``
generator's token-level loop (``generators/hf.py``), so both loops decide the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Protocol

import torch

from aod_core.canvas.prompt import Sampling

LogitsFn = Callable[[torch.Tensor], torch.Tensor]


class Constraint(Protocol):
    """What the sampler needs from a structure constraint (see ``constraints.CanvasConstraint``)."""

    bias: torch.Tensor | None  # [L, V] added to logits, or None
    # optionally ``priority``: [L] added to the commit order (higher first), or None

    def allowed(self, x: torch.Tensor) -> torch.Tensor: ...  # [B, L, V] bool

    def ready(self, x: torch.Tensor) -> torch.Tensor: ...  # [B, L] bool, masked and committable now

    def commit(self, x: torch.Tensor, select: torch.Tensor, x0: torch.Tensor, conf: torch.Tensor) -> torch.Tensor: ...


@dataclass
class StepInfo:
    step: int  # forward passes so far
    block: int
    num_blocks: int
    masked: int  # masked positions left over the batch
    total: int  # masked positions at the start


def add_gumbel_noise(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    """Scores whose argmax is a sample at ``temperature`` (Gumbel-max).

    LLaDA writes this as exp(logits) / (-log u)^T; the same argmax in log space,
    logits - T·log(-log u), cannot overflow or underflow. Float64 because low-precision Gumbel
    noise visibly degrades sample quality (LLaDA's observation).
    """
    if temperature == 0:
        return logits
    logits = logits.to(torch.float64)
    u = torch.rand(logits.shape, dtype=torch.float64, generator=generator, device="cpu").to(logits.device)
    return logits - temperature * torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))


def propose(
    logits: torch.Tensor, temperature: float, generator: torch.Generator | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """One proposal per position (Gumbel-max at ``temperature``) and the model's confidence in it,
    its softmax probability (``logits`` already restricted to what each position may take)."""
    x0 = add_gumbel_noise(logits, temperature, generator).argmax(-1)
    conf = torch.softmax(logits, -1).gather(-1, x0.unsqueeze(-1)).squeeze(-1)
    return x0, conf


def guided_logits(logits_fn: LogitsFn, x: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``logits_fn`` runs once over ``x`` and its unconditional copy
    ``uncond`` (prompt positions masked) stacked on the batch dimension, and the two halves combine as
    uncond + (scale + 1) * (cond - uncond)."""
    cond, un = logits_fn(torch.cat([x, uncond], 0)).chunk(2, 0)
    return un + (scale + 1) * (cond - un)


def commit_order(conf: torch.Tensor, remasking: str, generator: torch.Generator | None) -> torch.Tensor:
    """Scores that order the commits (higher first): the confidence (``low_confidence``) or, for
    ``random``, one float64 uniform per proposal drawn from the CPU ``generator``."""
    if remasking == "low_confidence":
        return conf
    return torch.rand(conf.shape, dtype=torch.float64, generator=generator, device="cpu").to(conf.device)


def select_commits(
    eligible: torch.Tensor,
    conf: torch.Tensor,
    order: torch.Tensor,
    *,
    threshold: float | None,
    k: torch.Tensor | int | None = None,
    stable: bool = False,
) -> torch.Tensor:
    """[B, L] bool: the proposals to commit this step, among the ``eligible`` [B, L] ones.

    With a ``threshold``, every proposal whose confidence ``conf`` reaches it, plus each row's first
    eligible proposal in commit ``order`` (so every row with an eligible position commits); without
    one, each row's ``k`` first eligible proposals in commit order (``k``: an int, or one per row).
    Ties in ``order`` go to the lower index in threshold mode; in top-k mode ``stable`` breaks them
    by index too, otherwise torch's default sort decides (what the canvas sampler has always used;
    the ``hf:`` loop has always broken them by index)."""
    B, L = eligible.shape
    order = order.masked_fill(~eligible, -math.inf)
    if threshold is not None:
        rows = torch.arange(B, device=eligible.device)
        select = eligible & (conf >= threshold)
        best = order.argmax(1)
        select[rows, best] |= eligible[rows, best]  # at least one per row
        return select
    if k is None:
        raise ValueError("select_commits needs a threshold or k")
    ranked = order.argsort(dim=1, descending=True, stable=True) if stable else order.argsort(1, descending=True)
    rank = torch.empty_like(ranked)
    rank.scatter_(1, ranked, torch.arange(L, device=eligible.device).expand(B, L))
    return eligible & (rank < (k.unsqueeze(1) if isinstance(k, torch.Tensor) else k))


def _blocks(columns: torch.Tensor, num_blocks: int) -> list[torch.Tensor]:
    n = len(columns)
    num_blocks = max(1, min(num_blocks, n))
    edges = [round(i * n / num_blocks) for i in range(num_blocks + 1)]
    return [columns[edges[i] : edges[i + 1]] for i in range(num_blocks)]


# Without a step count, one step per masked position (one forward pass each), but no more steps
# than keep steps x canvas length under this many tokens: a long canvas (a big schema) then commits
# several positions per step instead of running for minutes. Short canvases are unaffected.
DEFAULT_STEP_TOKENS = 32768
MIN_DEFAULT_STEPS = 16


def default_steps(masked: int, length: int) -> int:
    """Steps ``generate`` takes when the settings name none."""
    return max(1, min(masked, max(MIN_DEFAULT_STEPS, DEFAULT_STEP_TOKENS // max(length, 1))))


@torch.no_grad()
def generate(
    logits_fn: LogitsFn,
    canvas: torch.Tensor,
    *,
    mask_id: int,
    settings: Sampling | None = None,
    constraint: Constraint | None = None,
    prompt_mask: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
) -> torch.Tensor:
    """Fill every ``mask_id`` position of ``canvas`` [B, L]; fixed tokens are never changed.

    ``prompt_mask`` [L] marks prompt positions masked out for the unconditional pass of
    classifier-free guidance (used only when ``settings.cfg_scale > 0``).
    """
    s = settings or Sampling()
    x = canvas.clone()
    L = x.shape[1]
    masked0 = x == mask_id
    total = int(masked0.sum())
    columns = masked0.any(0).nonzero().squeeze(1)
    blocks = _blocks(columns, s.num_blocks) if len(columns) else []
    steps = s.steps or default_steps(int(masked0.sum(1).max()), L)
    per_block = [max(1, steps * len(b) // max(1, len(columns))) for b in blocks]
    never = None
    step = 0
    for bi, cols in enumerate(blocks):
        in_block = torch.zeros(L, dtype=torch.bool, device=x.device)
        in_block[cols] = True
        done_steps = 0
        while True:
            todo = (x == mask_id) & in_block
            if not bool(todo.any()):
                break
            logits = _logits(logits_fn, x, s.cfg_scale, prompt_mask, mask_id).to(torch.float64)
            if never is None:  # the mask token is never a proposal
                never = torch.zeros(logits.shape[-1], dtype=torch.bool, device=x.device)
                never[mask_id] = True
            logits = logits.masked_fill(never, -math.inf)  # out of place: the caller's tensor stays as it was
            if constraint is not None:
                if constraint.bias is not None:
                    logits = logits + constraint.bias.to(logits)
                logits = logits.masked_fill(~constraint.allowed(x), -math.inf)
            # The model's confidence in each proposal; the threshold always compares against it.
            # The commit order is that confidence (low_confidence) or a random one (random).
            x0, prob = propose(logits, s.temperature, generator)
            order_score = commit_order(prob, s.remasking, generator)
            priority = getattr(constraint, "priority", None)
            if priority is not None:  # e.g. coarse choices before fine digits (constraints.py)
                order_score = order_score + priority.to(order_score)
            eligible = todo & (constraint.ready(x) if constraint is not None else True)
            if not bool(eligible.any()):
                raise RuntimeError("sampler stalled: masked positions remain but none may be committed")
            order_score = order_score.masked_fill(~eligible, -math.inf)
            k = None
            if s.threshold is None:
                left = max(1, per_block[bi] - done_steps)
                k = torch.ceil(todo.sum(1).double() / left).long()  # [B]
            select = select_commits(eligible, prob, order_score, threshold=s.threshold, k=k)
            before = x
            if constraint is not None:
                x = constraint.commit(x, select, x0, order_score)
            else:
                x = torch.where(select, x0, x)
            if torch.equal(x, before):  # every step commits at least one position per row, or never ends
                raise RuntimeError(
                    "sampler stalled: a step committed nothing (a masked position has no token it may take); this is a bug in the constraint, please report it"
                )
            done_steps += 1
            step += 1
            if on_step is not None:
                on_step(StepInfo(step, bi, len(blocks), int((x == mask_id).sum()), total))
    assert not bool((x == mask_id).any()), "every mask is filled at the end"
    return x


def _logits(
    fn: LogitsFn, x: torch.Tensor, cfg_scale: float, prompt_mask: torch.Tensor | None, mask_id: int
) -> torch.Tensor:
    if cfg_scale <= 0 or prompt_mask is None or not bool(prompt_mask.any()):
        return fn(x)
    un = x.clone()
    un[:, prompt_mask] = mask_id
    return guided_logits(fn, x, un, cfg_scale)
