"""A one-block bidirectional transformer written against transformers-4.4x APIs that v5 removed:
``is_torch_fx_available``, ``ROPE_INIT_FUNCTIONS["default"]`` and a list-valued ``_tied_weights_keys``."""

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
from transformers.utils import is_torch_fx_available  # noqa: F401  (removed in v5)

from .configuration_tinydlm import TinyDreamConfig, TinyLLaDAConfig


class TinyLLaDAModelLM(PreTrainedModel):
    config_class = TinyLLaDAConfig
    base_model_prefix = "model"
    _tied_weights_keys = ["lm_head.weight"]  # v4 style

    def __init__(self, config):
        super().__init__(config)
        d = config.hidden_size
        self.embed_tokens = nn.Embedding(config.vocab_size, d)
        self.attn = nn.MultiheadAttention(d, config.num_attention_heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.lm_head = nn.Linear(d, config.vocab_size, bias=False)
        inv_freq, _ = ROPE_INIT_FUNCTIONS["default"](config, None)
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.post_init()

    def get_input_embeddings(self):
        return self.embed_tokens

    def get_output_embeddings(self):
        return self.lm_head

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        x = self.embed_tokens(input_ids)
        pos = torch.arange(input_ids.shape[1], device=x.device).float()
        angles = pos[:, None] * self.inv_freq.repeat(2)[None, :]  # per head
        x = x + torch.sin(angles).repeat(1, self.config.num_attention_heads).to(x.dtype)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        x = x + self.mlp(x)
        return MaskedLMOutput(logits=self.lm_head(x))


class TinyDreamModel(TinyLLaDAModelLM):
    config_class = TinyDreamConfig
