"""Remote-code fixture in the style of LLaDA's and Dream's v4-era files (loaded with trust_remote_code)."""

from transformers import PretrainedConfig


class TinyLLaDAConfig(PretrainedConfig):
    model_type = "llada"

    def __init__(
        self, vocab_size=400, hidden_size=32, num_attention_heads=4, rope_theta=10000.0, mask_token_id=None, **kwargs
    ):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.rope_theta = rope_theta
        self.mask_token_id = mask_token_id
        super().__init__(**kwargs)


class TinyDreamConfig(TinyLLaDAConfig):
    model_type = "Dream"
