"""DiffLM's networks (Zhou et al., "DiffLM: controllable synthetic data generation via diffusion
language models"): a VAE whose decoder is a frozen causal LM steered by soft prompts, and a
diffusion model over its latent space. Architecture only: training is ``train.py``, sampling and
decoding ``decode.py``, the generator that ties them together ``generator.py``.

* ``FrozenDecoder``: the causal LM and its tokenizer, frozen, with the entry points DiffLM needs
  (token embeddings, hidden states from ``inputs_embeds``, the output head on chosen positions) and
  a fingerprint of its weights for cache keys.
* ``RecordEncoder``: a small transformer trained from scratch over the record's text, tokenised with
  the decoder's own tokenizer; it reads the decoder's frozen token embeddings (so it starts with the
  decoder's lexical knowledge and adds no dependency or download) and returns (mu, log sigma^2).
* ``SoftPrompt``: the paper's latent injector, an MLP from z to k soft-prompt embeddings placed
  before the record's tokens (``inputs_embeds``), starting at real token embeddings
  (``prefix_embeddings``). The decoder's weights never change.
* ``LatentDenoiser``: a small MLP D(z; sigma) with EDM preconditioning (Karras et al. 2022, as the
  paper cites) over latents standardised per dimension (``SIGMA_DATA`` = 1).
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import torch
from torch import nn

SIGMA_DATA = 1.0  # latents are standardised per dimension before diffusion


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
        cfg = {
            k: v for k, v in cfg.items() if k not in ("_name_or_path", "transformers_version", "dtype", "torch_dtype")
        }
        w = self.embed.weight.detach().double()
        blob = json.dumps(
            {
                "config": cfg,
                "sum": round(float(w.sum()), 6),
                "abs": round(float(w.abs().sum()), 4),
                "vocab": len(self.tokenizer),
            },
            sort_keys=True,
            default=str,
        )
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


class RecordEncoder(nn.Module):
    """Transformer over the decoder's (frozen) token embeddings -> (mu, logvar) from a [CLS] slot."""

    def __init__(self, d_in: int, d_model: int, n_layers: int, n_heads: int, latent_dim: int, max_len: int):
        super().__init__()
        self.proj = nn.Linear(d_in, d_model)
        self.pos = nn.Embedding(max_len + 1, d_model)
        self.cls = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, 4 * d_model, dropout=0.0, batch_first=True, norm_first=True, activation="gelu"
        )
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
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, k * d_model),
        )
        last = self.net[-1]
        with torch.no_grad():
            scale = float(init.float().std()) if init is not None else 0.02
            nn.init.normal_(last.weight, std=scale / math.sqrt(hidden))
            last.bias.copy_(init.reshape(-1).float() if init is not None else torch.zeros(k * d_model))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], self.k, self.d_model)


class LatentDenoiser(nn.Module):
    """D(z; sigma) with EDM preconditioning around an MLP F; trained on standardised latents."""

    def __init__(self, dim: int, hidden: int = 256, layers: int = 3, time_dim: int = 64):
        super().__init__()
        self.time_dim = time_dim
        self.time = nn.Sequential(nn.Linear(time_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.SiLU(), nn.Linear(hidden, hidden))
            for _ in range(layers)
        )
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


def prefix_embeddings(decoder: FrozenDecoder, text: str, k: int) -> torch.Tensor:
    """k real token embeddings spelling ``text`` (its last k tokens, the text repeated when shorter):
    the soft prompt's starting point."""
    ids = list(decoder.tokenizer(text, add_special_tokens=False)["input_ids"]) or [decoder.eos_id]
    ids = (ids * math.ceil(k / len(ids)))[-k:]
    with torch.no_grad():
        return decoder.token_embeddings(torch.tensor(ids)).float().cpu()
