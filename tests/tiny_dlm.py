"""Tiny random-weight masked DLMs and tokenizers built from configs (no downloads), for the hf: tests."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

CHAT_TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"


def tiny_tokenizer(corpus: list[str], vocab_size: int = 400, chat_template: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE trained on ``corpus``: multi-character tokens like a real tokenizer's."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|eos|>", "<|mask|>", "<|pad|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|eos|>", mask_token="<|mask|>", pad_token="<|pad|>"
    )
    if chat_template:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def corpus_for(seeds: list[dict]) -> list[str]:
    texts = [json.dumps(s, separators=(",", ":")) for s in seeds]
    return texts * 3 + ["Write one new JSON record with the same fields as these examples."]


def save_mdm(folder: Path, tokenizer: PreTrainedTokenizerFast, **shape) -> Path:
    """A random-weight aod-mdm model + tokenizer saved as an ordinary model folder."""
    from aod_core.diffusion.mdm import MaskedDiffusionLM, MDMConfig

    cfg = MDMConfig(
        vocab_size=len(tokenizer),
        mask_token_id=tokenizer.mask_token_id,
        **{"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, **shape},
    )
    MaskedDiffusionLM(cfg).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
