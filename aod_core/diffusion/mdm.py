"""A LLaDA-architecture masked diffusion LM in plain PyTorch, loadable by transformers.

LLaDA is a Llama-style transformer (RMSNorm, rotary positions, SwiGLU, no biases) with the causal
mask removed. This file is that architecture, small and readable, for two jobs:

* building **random-weight models of any shape** for tests and speed benchmarks: decoding speed
  depends on shapes, not on weight values, so an 8B-shaped random model times like LLaDA-8B;
* **prefix/suffix KV reuse** (Fast-dLLM's dual cache): ``prefill`` runs the whole canvas once and
  keeps every layer's keys and values; ``forward_window`` then recomputes only a window of positions
  (the block being decoded) against the cached keys and values of everything else. LLaDA's own
  remote code has no such entry point, so the HF generator uses it only when a model has it.

It registers as model type ``aod-mdm`` with ``AutoConfig``/``AutoModelForMaskedLM``, so a folder
saved with ``save_pretrained`` loads through the same ``hf:<folder>`` path as any other model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from transformers import AutoConfig, AutoModelForMaskedLM, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput


class MDMConfig(PreTrainedConfig):
    model_type = "aod-mdm"

    def __init__(
        self,
        vocab_size: int = 1024,
        hidden_size: int = 64,
        intermediate_size: int = 176,
        num_hidden_layers: int = 2,
        num_attention_heads: int = 4,
        num_key_value_heads: int | None = None,
        rope_theta: float = 500000.0,
        rms_norm_eps: float = 1e-5,
        max_position_embeddings: int = 4096,
        mask_token_id: int | None = None,
        initializer_range: float = 0.02,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.intermediate_size = intermediate_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.num_key_value_heads = num_key_value_heads or num_attention_heads
        self.rope_theta = rope_theta
        self.rms_norm_eps = rms_norm_eps
        self.max_position_embeddings = max_position_embeddings
        self.mask_token_id = mask_token_id
        self.initializer_range = initializer_range
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(**kwargs)

    @classmethod
    def llada_8b(cls, **overrides) -> MDMConfig:
        """The shapes of LLaDA-8B-Instruct (32 layers, d=4096, 32 heads, SwiGLU 12288, vocab 126464)."""
        shape = dict(
            vocab_size=126464,
            hidden_size=4096,
            intermediate_size=12288,
            num_hidden_layers=32,
            num_attention_heads=32,
            rope_theta=500000.0,
            mask_token_id=126336,
        )
        return cls(**{**shape, **overrides})


@dataclass
class KVCache:
    """Keys and values of every layer for a whole canvas: ``k[i]``, ``v[i]`` are [B, H_kv, L, Dh]."""

    k: list[torch.Tensor]
    v: list[torch.Tensor]


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class _Attention(nn.Module):
    def __init__(self, c: MDMConfig):
        super().__init__()
        self.h, self.h_kv = c.num_attention_heads, c.num_key_value_heads
        self.dh = c.hidden_size // c.num_attention_heads
        self.q = nn.Linear(c.hidden_size, self.h * self.dh, bias=False)
        self.k = nn.Linear(c.hidden_size, self.h_kv * self.dh, bias=False)
        self.v = nn.Linear(c.hidden_size, self.h_kv * self.dh, bias=False)
        self.o = nn.Linear(self.h * self.dh, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache: tuple[torch.Tensor, torch.Tensor] | None, window: slice | None):
        B, T, _ = x.shape
        q = self.q(x).view(B, T, self.h, self.dh).transpose(1, 2)
        k = self.k(x).view(B, T, self.h_kv, self.dh).transpose(1, 2)
        v = self.v(x).view(B, T, self.h_kv, self.dh).transpose(1, 2)
        q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        if cache is not None and window is not None:
            # Everything outside the window keeps the keys/values it had at prefill time
            # (Fast-dLLM's approximation: a committed prefix and a still-masked suffix barely move).
            ck, cv = cache
            k = torch.cat((ck[:, :, : window.start], k, ck[:, :, window.stop :]), dim=2)
            v = torch.cat((cv[:, :, : window.start], v, cv[:, :, window.stop :]), dim=2)
        new = (k, v)
        if self.h_kv != self.h:
            k = k.repeat_interleave(self.h // self.h_kv, dim=1)
            v = v.repeat_interleave(self.h // self.h_kv, dim=1)
        out = F.scaled_dot_product_attention(q, k, v)  # bidirectional: no causal mask
        return self.o(out.transpose(1, 2).reshape(B, T, -1)), new


class _Block(nn.Module):
    def __init__(self, c: MDMConfig):
        super().__init__()
        self.attn_norm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.attn = _Attention(c)
        self.mlp_norm = nn.RMSNorm(c.hidden_size, eps=c.rms_norm_eps)
        self.gate = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.up = nn.Linear(c.hidden_size, c.intermediate_size, bias=False)
        self.down = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)

    def forward(self, x, cos, sin, cache=None, window=None):
        a, kv = self.attn(self.attn_norm(x), cos, sin, cache, window)
        x = x + a
        h = self.mlp_norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h)), kv


class MaskedDiffusionLM(PreTrainedModel):
    config_class = MDMConfig
    base_model_prefix = "mdm"
    supports_window_cache = True  # what the HF generator checks before using prefill/forward_window

    def __init__(self, config: MDMConfig):
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.blocks = nn.ModuleList(_Block(config) for _ in range(config.num_hidden_layers))
        self.norm = nn.RMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        dh = config.hidden_size // config.num_attention_heads
        inv = 1.0 / (config.rope_theta ** (torch.arange(0, dh, 2, dtype=torch.float32) / dh))
        self.register_buffer("inv_freq", inv, persistent=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
        elif isinstance(module, nn.RMSNorm):
            nn.init.ones_(module.weight)
        elif module is self and hasattr(self, "inv_freq"):  # non-persistent: rebuilt after meta init
            dh = self.config.hidden_size // self.config.num_attention_heads
            exps = torch.arange(0, dh, 2, dtype=torch.float32, device=self.inv_freq.device) / dh
            self.inv_freq.copy_(1.0 / (self.config.rope_theta**exps))

    def _rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = positions.float()[:, None] * self.inv_freq[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(dtype), emb.sin().to(dtype)

    def _run(self, ids, positions, cache=None, window=None, logits_at=None):
        x = self.embed(ids)
        cos, sin = self._rope(positions, x.dtype)
        ks, vs = [], []
        for i, block in enumerate(self.blocks):
            x, (k, v) = block(x, cos, sin, None if cache is None else (cache.k[i], cache.v[i]), window)
            ks.append(k)
            vs.append(v)
        x = self.norm(x)
        if logits_at is not None:  # the vocab head is the largest matmul: run it only where needed
            x = x[logits_at]
        return self.lm_head(x), KVCache(ks, vs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **_) -> MaskedLMOutput:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        logits, _ = self._run(input_ids, positions)
        return MaskedLMOutput(logits=logits)

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, logits_at: torch.Tensor | None = None) -> tuple[torch.Tensor, KVCache]:
        """Logits of the full canvas (or at ``logits_at``, a [B, L] bool mask) and every layer's K/V."""
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self._run(input_ids, positions, logits_at=logits_at)

    @torch.no_grad()
    def forward_window(
        self, window_ids: torch.Tensor, start: int, cache: KVCache, logits_at: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits for canvas positions ``start .. start+len`` with all other positions from ``cache``."""
        T = window_ids.shape[1]
        positions = torch.arange(start, start + T, device=window_ids.device)
        logits, _ = self._run(window_ids, positions, cache=cache, window=slice(start, start + T), logits_at=logits_at)
        return logits

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def param_count(config: MDMConfig) -> int:
    """Parameters of a model with this config, without building it (for choosing benchmark shapes)."""
    d, f, n, V = config.hidden_size, config.intermediate_size, config.num_hidden_layers, config.vocab_size
    dh = d // config.num_attention_heads
    attn = d * d * 2 + 2 * d * config.num_key_value_heads * dh
    return 2 * V * d + n * (attn + 3 * d * f + 2 * d) + d


def _register() -> None:
    try:
        AutoConfig.register(MDMConfig.model_type, MDMConfig)
        AutoModelForMaskedLM.register(MDMConfig, MaskedDiffusionLM)
    except ValueError:  # already registered (module reloaded)
        pass


_register()
