"""DiffLM's model pieces (Zhou et al., "DiffLM: controllable synthetic data generation via diffusion
language models"): a VAE whose decoder is a frozen causal LM steered by soft prompts, and a
diffusion model over its latent space.

* ``RecordEncoder``: a small transformer trained from scratch over the record's text, tokenised with
  the decoder's own tokenizer; it reads the decoder's frozen token embeddings (so it starts with the
  decoder's lexical knowledge and adds no dependency or download) and returns (mu, log sigma^2).
* ``SoftPrompt``: the paper's latent injector, an MLP from z to k soft-prompt embeddings placed
  before the record's tokens (``inputs_embeds``). The decoder's weights never change.
* ``BetaSchedule``: the paper's decreasing beta (0.1 -> 0.001), lowered each time the
  reconstruction loss stops improving.
* ``LatentDenoiser``: a small MLP trained by denoising score matching on the seeds' latents with the
  linear noise schedule sigma(t) = t (EDM preconditioning, Karras et al. 2022, as the paper cites);
  sampled with Heun's second-order solver of the probability-flow ODE.
* ``decode``: ancestral sampling from the decoder given soft prompts, optionally constrained to the
  record's JSON Schema by an xgrammar token mask (as ``chat/local.py`` does for the agents).

Records are serialised as compact JSON (no spaces) with keys in the schema's property order: the
exact text the grammar allows, so training and constrained decoding see the same token stream.
The reconstruction loss weighs *value* tokens fully and fixed structure (braces, keys, quotes)
by ``structure_weight``: with grammar-constrained decoding the structure is never sampled, so
spending the soft prompt's capacity on it would be wasted.
"""
from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

log = logging.getLogger(__name__)

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0  # EDM's range for unit-variance data
P_MEAN, P_STD = -1.2, 1.2  # log-normal training distribution of sigma (EDM)
SIGMA_DATA = 1.0  # latents are standardised per dimension before diffusion
RHO = 7.0  # EDM step spacing


# -- records as decoder text ---------------------------------------------------------------------

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


def tokenize_records(records: Sequence[Any], tokenizer: Any, schema: dict | None, *, eos_id: int,
                     structure_weight: float, max_tokens: int) -> RecordBatch:
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


# -- the frozen decoder --------------------------------------------------------------------------

class FrozenDecoder:
    """A causal LM + tokenizer, frozen, with the three entry points DiffLM needs: token embeddings,
    final hidden states from ``inputs_embeds``, and the output head on selected positions."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "decoder") -> None:
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        self.name = name
        self.embed = model.get_input_embeddings()
        self.head = model.get_output_embeddings()
        try:
            self.base = model.get_decoder()
        except (AttributeError, NotImplementedError):
            self.base = None
        self.d_model = int(self.embed.embedding_dim)
        first = next(model.parameters())
        self.device, self.dtype = first.device, first.dtype
        self.vocab_width = int(getattr(self.head, "out_features", None) or model.config.vocab_size)
        self.stop_ids = _stop_ids(model, tokenizer)
        if not self.stop_ids:
            raise ValueError("the decoder's tokenizer has no end-of-sequence token")
        self.eos_id = self.stop_ids[0]
        self.max_positions = getattr(model.config, "max_position_embeddings", None)

    def fingerprint(self) -> str:
        """Identifies the weights (architecture + a checksum of the token embeddings) for cache keys."""
        cfg = self.model.config.to_dict()
        cfg = {k: v for k, v in cfg.items() if k not in ("_name_or_path", "transformers_version", "dtype", "torch_dtype")}
        w = self.embed.weight.detach().double()
        blob = json.dumps({"config": cfg, "sum": round(float(w.sum()), 6), "abs": round(float(w.abs().sum()), 4),
                           "vocab": len(self.tokenizer)}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def token_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        return self.embed(ids.to(self.device))

    def hidden(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Final hidden states; no attention mask: padding is always on the right of a causal model."""
        if self.base is not None:
            return self.base(inputs_embeds=inputs_embeds, use_cache=False).last_hidden_state
        raise RuntimeError("decoder has no base model")

    def logits_at(self, inputs_embeds: torch.Tensor, select: torch.Tensor) -> torch.Tensor:
        """Logits (float32) of the positions where ``select`` [B, T] is True: the output head runs
        only there, which saves most of its cost (49k-wide vocabulary)."""
        if self.base is None:
            return self.model(inputs_embeds=inputs_embeds, use_cache=False).logits[select].float()
        return self.head(self.hidden(inputs_embeds)[select]).float()


def _stop_ids(model: Any, tok: Any) -> list[int]:
    ids: list[int] = []
    gen_cfg = getattr(model, "generation_config", None)
    for source in (tok.eos_token_id, getattr(gen_cfg, "eos_token_id", None)):
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


# -- VAE -----------------------------------------------------------------------------------------

class RecordEncoder(nn.Module):
    """Transformer over the decoder's (frozen) token embeddings -> (mu, logvar) from a [CLS] slot."""

    def __init__(self, d_in: int, d_model: int, n_layers: int, n_heads: int, latent_dim: int, max_len: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d_model)
        self.pos = nn.Embedding(max_len + 1, d_model)
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.body = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, 2 * latent_dim)
        self.max_len = max_len

    def forward(self, tok_emb: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, length, _ = tok_emb.shape
        length = min(length, self.max_len)
        x = self.proj(tok_emb[:, :length].float())
        x = torch.cat([self.cls.expand(b, -1, -1), x], 1) + self.pos(torch.arange(length + 1, device=x.device))
        pad = torch.arange(length + 1, device=x.device)[None, :] > lengths.to(x.device)[:, None]  # slot 0 = CLS
        h = self.norm(self.body(x, src_key_padding_mask=pad)[:, 0])
        mu, logvar = self.head(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 6.0)


class SoftPrompt(nn.Module):
    """z -> k soft-prompt embeddings in the decoder's input space (the paper's latent injector).

    The last layer's bias starts at real token embeddings (a short text such as "Palmer penguin as
    JSON:"), so the untrained prompt already reads as text to the decoder; the z-dependent part starts
    small and grows as the reconstruction loss asks for it."""

    def __init__(self, latent_dim: int, hidden: int, k: int, d_model: int, init: torch.Tensor | None = None):
        super().__init__()
        self.k, self.d_model = k, d_model
        self.net = nn.Sequential(nn.Linear(latent_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, k * d_model))
        last = self.net[-1]
        with torch.no_grad():
            scale = float(init.float().std()) if init is not None else 0.02
            nn.init.normal_(last.weight, std=scale / math.sqrt(hidden))
            last.bias.copy_(init.reshape(-1).float() if init is not None else torch.zeros(k * d_model))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], self.k, self.d_model)


class BetaSchedule:
    """The paper's decreasing beta: start at ``beta_max`` (strong pull towards N(0, I)); each time the
    reconstruction loss has not improved by ``tol`` (relative) for ``patience`` updates, multiply beta
    by ``factor``, never below ``beta_min``. One update per window of training steps."""

    def __init__(self, beta_max: float = 0.1, beta_min: float = 0.001, factor: float = 0.3,
                 patience: int = 1, tol: float = 0.01) -> None:
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


def reconstruction_loss(decoder: FrozenDecoder, soft: torch.Tensor, ids: torch.Tensor,
                        weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
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


def train_vae(decoder: FrozenDecoder, encoder: RecordEncoder, soft: SoftPrompt, data: RecordBatch, *,
              steps: int, batch_size: int, lr: float, schedule: BetaSchedule, window: int, val_fraction: float,
              eval_every: int, stop_patience: int, seed: int,
              on_step: Callable[[int, int, dict[str, float]], None] | None = None) -> VAEReport:
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
    return VAEReport(steps=step, stopped_early=stopped, best_step=best_step, final_beta=schedule.beta,
                     beta_decays=schedule.decays, recon_first=round(recons[0], 4),
                     recon_last=round(sum(recons[-window:]) / len(recons[-window:]), 4),
                     val_recon_best=round(best_val, 4) if n_val else None, kl_last=round(kl_v, 3),
                     history=history)


@torch.no_grad()
def evaluate_recon(decoder: FrozenDecoder, encoder: RecordEncoder, soft: SoftPrompt, data: RecordBatch,
                   idx: torch.Tensor, batch_size: int) -> float:
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
def encode_means(decoder: FrozenDecoder, encoder: RecordEncoder, data: RecordBatch, batch_size: int = 32) -> torch.Tensor:
    """mu of every record: the latents the diffusion model learns (as in TabSyn and DiffLM)."""
    encoder.eval()
    out = []
    for s in range(0, data.ids.shape[0], batch_size):
        length = int(data.lengths[s : s + batch_size].max())
        ids = data.ids[s : s + batch_size, :length]
        mu, _ = encoder(decoder.token_embeddings(ids), data.lengths[s : s + batch_size])
        out.append(mu.float().cpu())
    return torch.cat(out)


# -- latent diffusion ------------------------------------------------------------------------------

class LatentDenoiser(nn.Module):
    """D(z; sigma) with EDM preconditioning around an MLP F; trained on standardised latents."""

    def __init__(self, dim: int, hidden: int = 256, layers: int = 3, time_dim: int = 64):
        super().__init__()
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(),
                                                  nn.Linear(hidden, hidden)) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, dim))

    def _time_features(self, c_noise: torch.Tensor) -> torch.Tensor:
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=c_noise.device) / half)
        ang = c_noise[:, None] * freqs[None, :] * 100.0
        return torch.cat([ang.sin(), ang.cos()], -1)

    def forward(self, z: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        sigma = sigma.reshape(-1, 1)
        c_skip = SIGMA_DATA**2 / (sigma**2 + SIGMA_DATA**2)
        c_out = sigma * SIGMA_DATA / (sigma**2 + SIGMA_DATA**2).sqrt()
        c_in = 1.0 / (sigma**2 + SIGMA_DATA**2).sqrt()
        c_noise = sigma.log().flatten() / 4.0
        h = self.inp(c_in * z) + self.time(self._time_features(c_noise))
        for block in self.blocks:
            h = h + block(h)
        return c_skip * z + c_out * self.out(h)


def train_latent_diffusion(net: LatentDenoiser, latents: torch.Tensor, *, steps: int, lr: float, batch_size: int,
                           seed: int, on_step: Callable[[int, int, float], None] | None = None) -> list[float]:
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


@torch.no_grad()
def sample_latents(net: LatentDenoiser, n: int, dim: int, *, steps: int = 50, seed: int = 0) -> torch.Tensor:
    """n standardised latents: Heun's method on dz/dsigma = (z - D(z; sigma)) / sigma from SIGMA_MAX
    to SIGMA_MIN (Karras spacing, rho = 7), then one last Euler step to sigma = 0."""
    dev = next(net.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    i = torch.arange(steps, dtype=torch.float64)
    sig = (SIGMA_MAX ** (1 / RHO) + i / max(1, steps - 1) * (SIGMA_MIN ** (1 / RHO) - SIGMA_MAX ** (1 / RHO))) ** RHO
    sig = torch.cat([sig, torch.zeros(1, dtype=torch.float64)]).float().tolist()
    z = (torch.randn(n, dim, generator=gen) * sig[0]).to(dev)
    for s_cur, s_next in zip(sig[:-1], sig[1:]):
        d_cur = (z - net(z, torch.full((n,), s_cur, device=dev))) / s_cur
        z_next = z + (s_next - s_cur) * d_cur
        if s_next > 0:
            d_next = (z_next - net(z_next, torch.full((n,), s_next, device=dev))) / s_next
            z_next = z + (s_next - s_cur) * 0.5 * (d_cur + d_next)
        z = z_next
    return z.cpu()


# -- decoding ------------------------------------------------------------------------------------

def compile_grammar(decoder: FrozenDecoder, json_schema: dict) -> Any:
    """The schema as an xgrammar token mask for this decoder, compact separators; None (with a
    warning) when xgrammar is missing or cannot handle the schema."""
    try:
        import xgrammar as xgr

        info = xgr.TokenizerInfo.from_huggingface(decoder.tokenizer, vocab_size=decoder.vocab_width,
                                                  stop_token_ids=decoder.stop_ids)
        compiler = xgr.GrammarCompiler(info, max_threads=2)
        return compiler.compile_json_schema(json_schema, any_whitespace=False, separators=(",", ":"))
    except ImportError:
        log.warning("xgrammar is not installed: DiffLM decodes without a grammar (validation still applies)")
    except Exception as e:  # a schema feature xgrammar does not support
        log.warning("cannot constrain DiffLM decoding to this schema (%s); validating only", e)
    return None


@torch.no_grad()
def decode(decoder: FrozenDecoder, soft: torch.Tensor, *, grammar: Any, temperature: float, max_new_tokens: int,
           generator: torch.Generator, on_token: Callable[[int, int], None] | None = None) -> list[tuple[str, bool]]:
    """Sample one record per soft prompt [B, k, d]: (text, finished) per row. ``finished`` is False
    when the row hit ``max_new_tokens`` before its end token. Sampling draws from the CPU
    ``generator``, so the same seed gives the same records on any device."""
    b = soft.shape[0]
    model = decoder.model
    matchers, bitmask = None, None
    if grammar is not None:
        import xgrammar as xgr

        matchers = [xgr.GrammarMatcher(grammar) for _ in range(b)]
        bitmask = xgr.allocate_token_bitmask(b, decoder.vocab_width)
    out = model(inputs_embeds=soft.to(decoder.dtype), use_cache=True)
    past = out.past_key_values
    logits = out.logits[:, -1, :].float()
    tokens: list[list[int]] = [[] for _ in range(b)]
    done = [False] * b
    finished = [False] * b
    stops = set(decoder.stop_ids)
    for step in range(max_new_tokens):
        logits = logits.cpu()
        if matchers is not None:
            import xgrammar as xgr

            for i, m in enumerate(matchers):
                if not done[i]:
                    m.fill_next_token_bitmask(bitmask, i)
            xgr.apply_token_bitmask_inplace(logits, bitmask)
            logits[torch.tensor(done)] = 0.0  # finished rows keep a stale mask; their draw is discarded
        if temperature > 0:
            # Inverse-CDF draw, one uniform per row: exact, and several times faster than
            # torch.multinomial over a 49k vocabulary on a CPU.
            cdf = torch.softmax(logits / temperature, -1).cumsum(-1)
            u = torch.rand(b, 1, generator=generator) * cdf[:, -1:]
            nxt = torch.searchsorted(cdf, u).squeeze(1).clamp_max(logits.shape[1] - 1)
        else:
            nxt = logits.argmax(-1)
        for i in range(b):
            if done[i]:
                nxt[i] = decoder.eos_id
                continue
            t = int(nxt[i])
            if matchers is not None:
                matchers[i].accept_token(t)
            if t in stops or (matchers is not None and matchers[i].is_terminated()):
                done[i] = finished[i] = True
            else:
                tokens[i].append(t)
        if on_token:
            on_token(step + 1, b - sum(done))
        if all(done):
            break
        out = model(input_ids=nxt[:, None].to(decoder.device), past_key_values=past, use_cache=True)
        past = out.past_key_values
        logits = out.logits[:, -1, :].float()
    return [(decoder.tokenizer.decode(t, skip_special_tokens=True), f) for t, f in zip(tokens, finished)]


def prefix_embeddings(decoder: FrozenDecoder, text: str, k: int) -> torch.Tensor:
    """k real token embeddings spelling ``text`` (its last k tokens, the text repeated when shorter):
    the soft prompt's starting point."""
    ids = list(decoder.tokenizer(text, add_special_tokens=False)["input_ids"]) or [decoder.eos_id]
    ids = (ids * math.ceil(k / len(ids)))[-k:]
    with torch.no_grad():
        return decoder.token_embeddings(torch.tensor(ids)).float().cpu()


def standardise(latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    mean = latents.mean(0)
    std = latents.std(0).clamp_min(1e-4) if len(latents) > 1 else torch.ones_like(mean)
    return (latents - mean) / std, mean, std


def seconds_since(t0: float) -> float:
    return round(time.perf_counter() - t0, 2)
