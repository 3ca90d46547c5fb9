"""Training DiffLM: the seeds as decoder text, the beta-VAE, and the latent diffusion model.

Records are serialised as compact JSON (no spaces) with keys in the schema's property order: the
exact text the grammar allows, so training and constrained decoding see the same token stream.
The reconstruction loss weighs *value* tokens fully and fixed structure (braces, keys, quotes)
by ``structure_weight``: with grammar-constrained decoding the structure is never sampled, so
spending the soft prompt's capacity on it would be wasted.

* ``train_vae``: only the encoder and the soft-prompt MLP train; beta follows ``BetaSchedule``, the
  paper's decreasing beta (0.1 -> 0.001), lowered each time the reconstruction loss stops
  improving; early stopping on held-out seeds.
* ``train_latent_diffusion``: denoising score matching on the seeds' latents (the encoder means,
  ``encode_means``, standardised) with EDM's log-normal distribution of sigma.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch.nn import functional as F

from aod_core.generators.difflm.model import SIGMA_DATA, FrozenDecoder, LatentDenoiser, RecordEncoder, SoftPrompt

P_MEAN, P_STD = -1.2, 1.2  # log-normal training distribution of sigma (EDM)


def _child(node: Any, key: str | None) -> Any:
    if not isinstance(node, dict):
        return None
    if key is None:
        items = node.get("items")
        return items if isinstance(items, dict) else None
    props = node.get("properties")
    return props.get(key) if isinstance(props, dict) else None


def serialize_record(record: Any, schema: dict | None = None) -> tuple[str, list[tuple[int, int]]]:
    """Compact JSON of ``record`` (keys in the schema's property order, then the rest as given) and
    the character spans of its *choices*: leaf values, optional keys and array separators."""
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0

    def emit(text: str, choice: bool = False) -> None:
        nonlocal pos
        if choice:
            spans.append((pos, pos + len(text)))
        parts.append(text)
        pos += len(text)

    def walk(value: Any, node: Any) -> None:
        if isinstance(value, dict):
            props = list((node or {}).get("properties") or {}) if isinstance(node, dict) else []
            required = set((node or {}).get("required") or []) if isinstance(node, dict) else set()
            keys = [k for k in props if k in value] + [k for k in value if k not in props]
            emit("{")
            for i, k in enumerate(keys):
                if i:
                    emit(",", choice=k not in required)
                emit(json.dumps(k, ensure_ascii=False) + ":", choice=k not in required)
                walk(value[k], _child(node, k))
            emit("}", choice=any(k not in required for k in props))
        elif isinstance(value, list):
            emit("[", choice=True)
            for i, item in enumerate(value):
                if i:
                    emit(",", choice=True)
                walk(item, _child(node, None))
            emit("]", choice=True)
        else:
            emit(json.dumps(value, ensure_ascii=False), choice=True)

    walk(record, schema)
    return "".join(parts), spans


@dataclass
class RecordBatch:
    """Seeds as decoder token ids (right-padded), with per-token loss weights and lengths."""

    ids: torch.Tensor  # [N, L] long
    weights: torch.Tensor  # [N, L] float: 1 for choices, structure_weight for fixed text, 0 padding
    lengths: torch.Tensor  # [N] long, including the end-of-record token
    texts: list[str]


def tokenize_records(
    records: Sequence[Any],
    tokenizer: Any,
    schema: dict | None,
    *,
    eos_id: int,
    structure_weight: float,
    max_tokens: int,
) -> RecordBatch:
    """Each record's serialised text as token ids + an end token; longer records are cut at
    ``max_tokens`` (the cut ones lose their end token, so they still teach their prefix)."""
    rows, weights, texts = [], [], []
    for r in records:
        text, spans = serialize_record(r, schema)
        texts.append(text)
        try:
            enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
            offsets = enc["offset_mapping"]
        except (NotImplementedError, ValueError, TypeError, KeyError):  # a slow tokenizer: weigh all tokens
            enc, offsets = tokenizer(text, add_special_tokens=False), None
        ids = list(enc["input_ids"])
        if offsets is None:
            w = [1.0] * len(ids)
        else:
            w = [1.0 if any(a < e and s < b for s, e in spans) else structure_weight for a, b in offsets]
        ids, w = ids + [eos_id], w + [structure_weight]  # the grammar forces the end after the last brace
        rows.append(ids[:max_tokens])
        weights.append(w[:max_tokens])
    length = max(len(r) for r in rows)
    ids_t = torch.full((len(rows), length), eos_id, dtype=torch.long)
    w_t = torch.zeros(len(rows), length)
    for i, (r, w) in enumerate(zip(rows, weights)):
        ids_t[i, : len(r)] = torch.tensor(r)
        w_t[i, : len(w)] = torch.tensor(w)
    return RecordBatch(ids_t, w_t, torch.tensor([len(r) for r in rows]), texts)


class BetaSchedule:
    """The paper's decreasing beta: start at ``beta_max`` (strong pull towards N(0, I)); each time the
    reconstruction loss has not improved by ``tol`` (relative) for ``patience`` updates, multiply beta
    by ``factor``, never below ``beta_min``. One update per window of training steps."""

    def __init__(
        self, beta_max: float = 0.1, beta_min: float = 0.001, factor: float = 0.3, patience: int = 1, tol: float = 0.01
    ) -> None:
        if not 0 < beta_min <= beta_max:
            raise ValueError(f"need 0 < beta_min <= beta_max, got {beta_min}, {beta_max}")
        if not 0 < factor < 1:
            raise ValueError(f"beta factor must be in (0, 1), got {factor}")
        self.beta_max, self.beta_min, self.factor = beta_max, beta_min, factor
        self.patience, self.tol = max(1, patience), tol
        self.beta = beta_max
        self.best = math.inf
        self.bad = 0
        self.decays = 0

    @property
    def at_min(self) -> bool:
        return self.beta <= self.beta_min

    def update(self, recon: float) -> float:
        if recon < self.best * (1 - self.tol):
            self.best, self.bad = recon, 0
        else:
            self.bad += 1
            if self.bad >= self.patience and not self.at_min:
                self.beta = max(self.beta_min, self.beta * self.factor)
                self.bad = 0
                self.decays += 1
        return self.beta


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z|x) || N(0, I)) summed over latent dimensions, mean over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()


def reconstruction_loss(
    decoder: FrozenDecoder, soft: torch.Tensor, ids: torch.Tensor, weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """-log p(x | z) of each record given its soft prompt: the weighted token cross-entropy summed
    over the record (nats per record), as the ELBO's reconstruction term is one record's likelihood.

    Returns (mean over the batch, per record). Per record, not per token, on purpose: it is what
    beta is relative to in the paper's ELBO, and a per-token mean would make the same beta ~30x
    stronger on a 70-token record and collapse the posterior. The hidden state at the last soft
    token predicts the first record token."""
    k = soft.shape[1]
    ids, weights = ids.to(decoder.device), weights.to(decoder.device)
    x = torch.cat([soft.to(decoder.dtype), decoder.token_embeddings(ids)], 1)
    b, length = ids.shape
    select = torch.zeros(b, k + length, dtype=torch.bool, device=decoder.device)
    select[:, k - 1 : k - 1 + length] = weights > 0
    logits = decoder.logits_at(x, select)
    ce = F.cross_entropy(logits, ids[weights > 0], reduction="none")
    per_tok = torch.zeros_like(weights)
    per_tok[weights > 0] = ce * weights[weights > 0]
    per_record = per_tok.sum(1)
    return per_record.mean(), per_record


@dataclass
class VAEReport:
    steps: int
    stopped_early: bool
    best_step: int
    final_beta: float
    beta_decays: int
    recon_first: float
    recon_last: float
    val_recon_best: float | None
    kl_last: float
    history: list[dict[str, float]] = field(default_factory=list)


def train_vae(
    decoder: FrozenDecoder,
    encoder: RecordEncoder,
    soft: SoftPrompt,
    data: RecordBatch,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    schedule: BetaSchedule,
    window: int,
    val_fraction: float,
    eval_every: int,
    stop_patience: int,
    seed: int,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
) -> VAEReport:
    """The beta-VAE: only ``encoder`` and ``soft`` train. Beta follows ``schedule`` (one update per
    ``window`` steps on the window's mean reconstruction loss). Early stopping: once beta has reached
    its minimum, training stops when the validation reconstruction (held-out seeds, z = mu) has not
    improved for ``stop_patience`` evaluations; the best validation state is kept. Without enough
    seeds for a validation split the last state is kept."""
    gen = torch.Generator().manual_seed(seed)
    n = data.ids.shape[0]
    perm = torch.randperm(n, generator=gen)
    n_val = int(round(n * val_fraction)) if n >= 20 else 0
    val_idx, train_idx = perm[:n_val], perm[n_val:]
    params = [p for m in (encoder, soft) for p in m.parameters()]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    warmup = max(1, min(10, steps // 10))
    best_val, best_state, best_step, bad_evals = math.inf, None, 0, 0
    recons, history = [], []
    kl_v = 0.0
    order: list[int] = []
    stopped = False
    step = 0
    for step in range(1, steps + 1):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, step / warmup)
        if len(order) < batch_size:
            order += train_idx[torch.randperm(len(train_idx), generator=gen)].tolist()
        idx, order = order[:batch_size], order[batch_size:]
        length = int(data.lengths[idx].max())
        ids, w = data.ids[idx, :length], data.weights[idx, :length]
        encoder.train()
        soft.train()
        with torch.no_grad():
            emb = decoder.token_embeddings(ids)
        mu, logvar = encoder(emb, data.lengths[idx])
        eps = torch.randn(mu.shape, generator=gen).to(mu.device)
        z = mu + (0.5 * logvar).exp() * eps
        recon, _ = reconstruction_loss(decoder, soft(z), ids, w)
        kl = kl_divergence(mu, logvar)
        loss = recon + schedule.beta * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        recons.append(recon.item())
        kl_v = kl.item()
        if step % window == 0:
            schedule.update(sum(recons[-window:]) / window)
        row = {"step": step, "recon": round(recons[-1], 4), "kl": round(kl_v, 3), "beta": schedule.beta}
        if n_val and (step % eval_every == 0 or step == steps):
            val = evaluate_recon(decoder, encoder, soft, data, val_idx, batch_size)
            row["val_recon"] = round(val, 4)
            if val < best_val - 1e-4:
                best_val, best_step, bad_evals = val, step, 0
                best_state = (copy.deepcopy(encoder.state_dict()), copy.deepcopy(soft.state_dict()))
            elif schedule.at_min:
                bad_evals += 1
                stopped = bad_evals >= stop_patience
        history.append(row)
        if on_step:
            on_step(step, steps, row)
        if stopped:
            break
    if best_state is not None:
        encoder.load_state_dict(best_state[0])
        soft.load_state_dict(best_state[1])
    else:
        best_step = step
    encoder.eval()
    soft.eval()
    return VAEReport(
        steps=step,
        stopped_early=stopped,
        best_step=best_step,
        final_beta=schedule.beta,
        beta_decays=schedule.decays,
        recon_first=round(recons[0], 4),
        recon_last=round(sum(recons[-window:]) / len(recons[-window:]), 4),
        val_recon_best=round(best_val, 4) if n_val else None,
        kl_last=round(kl_v, 3),
        history=history,
    )


@torch.no_grad()
def evaluate_recon(
    decoder: FrozenDecoder,
    encoder: RecordEncoder,
    soft: SoftPrompt,
    data: RecordBatch,
    idx: torch.Tensor,
    batch_size: int,
) -> float:
    """Mean reconstruction loss (nats per record) with z = mu (no sampling noise)."""
    encoder.eval()
    soft.eval()
    total = 0.0
    for s in range(0, len(idx), batch_size):
        part = idx[s : s + batch_size]
        length = int(data.lengths[part].max())
        ids, w = data.ids[part, :length], data.weights[part, :length]
        mu, _ = encoder(decoder.token_embeddings(ids), data.lengths[part])
        _, per = reconstruction_loss(decoder, soft(mu), ids, w)
        total += float(per.sum())
    return total / max(1, len(idx))


@torch.no_grad()
def encode_means(
    decoder: FrozenDecoder, encoder: RecordEncoder, data: RecordBatch, batch_size: int = 32
) -> torch.Tensor:
    """mu of every record: the latents the diffusion model learns (as in TabSyn and DiffLM)."""
    encoder.eval()
    out = []
    for s in range(0, data.ids.shape[0], batch_size):
        length = int(data.lengths[s : s + batch_size].max())
        ids = data.ids[s : s + batch_size, :length]
        mu, _ = encoder(decoder.token_embeddings(ids), data.lengths[s : s + batch_size])
        out.append(mu.float().cpu())
    return torch.cat(out)


def train_latent_diffusion(
    net: LatentDenoiser,
    latents: torch.Tensor,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    on_step: Callable[[int, int, float], None] | None = None,
) -> list[float]:
    """Denoising score matching (EDM loss): z_t = z_0 + sigma * eps, sigma log-normal; the loss
    lambda(sigma) ||D(z_t; sigma) - z_0||^2 equals a weighted ||eps_theta(z_t, sigma) - eps||^2 with
    eps_theta = (z_t - D) / sigma, the paper's Eq. 7."""
    gen = torch.Generator().manual_seed(seed)
    dev = next(net.parameters()).device
    data = latents.to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=lr * 0.05)
    net.train()
    losses = []
    for step in range(1, steps + 1):
        idx = torch.randint(len(data), (batch_size,), generator=gen)
        z0 = data[idx.to(dev)]
        sigma = (torch.randn(batch_size, 1, generator=gen) * P_STD + P_MEAN).exp().to(dev)
        noise = torch.randn(z0.shape, generator=gen).to(dev) * sigma
        weight = (sigma**2 + SIGMA_DATA**2) / (sigma * SIGMA_DATA) ** 2
        loss = (weight * (net(z0 + noise, sigma) - z0) ** 2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_step and (step % 100 == 0 or step == steps):
            on_step(step, steps, sum(losses[-100:]) / len(losses[-100:]))
    net.eval()
    return losses


def standardise(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = latents.mean(0)
    std = latents.std(0).clamp_min(1e-4) if len(latents) > 1 else torch.ones_like(mean)
    return (latents - mean) / std, mean, std
