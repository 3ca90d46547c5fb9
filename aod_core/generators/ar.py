"""The autoregressive baseline: a chat model writes each record directly (``ar:<chat model spec>``).

This is the paper's AR-only comparison point: no diffusion, no scaffold, no agents — the same task
text and a few seed examples in a chat prompt, one record per answer. Decoding gets the same
grammar-constrained JSON (the record schema itself) and retry policy the agents get, which is
generous to the baseline; whatever comes back is kept as the candidate, valid or not, so its
schema-valid rate is measured, not assumed. Each answer sees a different random handful of seeds
(from the sampling seed), the usual way to get variety out of few-shot prompting.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

from aod_core.canvas.prompt import Prompt
from aod_core.chat import load_chat_model
from aod_core.chat.base import ChatModel
from aod_core.data.schema import LoadedSchema
from aod_core.errors import InputError
from aod_core.generators.base import ProgressFn, StepFn
from aod_core.records import Candidate


@dataclass
class ARGenerator:
    chat_spec: str
    schema: LoadedSchema
    seeds: list[Any]
    device: str | None = None
    examples: int = 3  # seed records shown per answer
    chunk: int = 16  # answers per batched call (progress is reported between calls)
    max_tokens: int = 384
    chat: ChatModel | None = None  # a model already loaded (tests, the app's shared pool)
    api_key: str | None = field(default=None, repr=False)  # for openai: specs; memory only
    _report: dict[str, Any] = field(default_factory=dict, init=False)

    @property
    def spec(self) -> str:
        return f"ar:{self.chat_spec}"

    def fit(self, on_progress: ProgressFn | None = None) -> dict[str, Any]:
        """Nothing to train: load the chat model once."""
        if self.chat is None:
            self.chat = load_chat_model(self.chat_spec, device=self.device, api_key=self.api_key)
        if hasattr(self.chat, "load"):
            self.chat.load()
        self._report = {"generator": self.spec, "trained": False}
        return self._report

    def check_prompt(self, prompt: Prompt) -> None:
        if prompt.pins or prompt.forbid or prompt.ranges or prompt.bias:
            raise InputError(
                "the ar: generator reads only the prompt's text and temperature, not scaffold edits (pins, forbids, ranges, biases)"
            )
        prompt.sampling.check()

    def _conversation(self, prompt: Prompt, rng: random.Random) -> list[dict[str, str]]:
        shown = rng.sample(self.seeds, min(self.examples, len(self.seeds)))
        task = prompt.text.strip() or "Synthetic records like the examples."
        lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in shown)
        return [
            {"role": "system", "content": "You write one new JSON record for a dataset. Answer with the record only."},
            {
                "role": "user",
                "content": f"Dataset: {task}\nExamples:\n{lines}\nWrite one new, realistic record that is not a copy of an example.",
            },
        ]

    def sample(self, prompt: Prompt, n: int, *, seed: int = 0, on_step: StepFn | None = None) -> list[Candidate]:
        self.check_prompt(prompt)
        self.fit()
        rng = random.Random(seed)
        convs = [self._conversation(prompt, rng) for _ in range(n)]
        out: list[Candidate] = []
        for start in range(0, n, max(1, self.chunk)):
            replies = self.chat.complete_many(
                convs[start : start + self.chunk],
                json_schema=self.schema.raw,
                max_tokens=self.max_tokens,
                temperature=prompt.sampling.temperature,
                seed=seed + start,
            )
            out += [Candidate.from_text(r.text) for r in replies]
            if on_step is not None:
                on_step(_Step(total=n, masked=n - len(out)))
        return out


@dataclass
class _Step:
    """The sampler's StepInfo shape (``total``, ``masked``) in records instead of positions."""

    total: int
    masked: int


def build(target: str, schema: Any, seeds: list[dict], *, device=None, api_key=None, **_: Any) -> ARGenerator:
    """The registry's builder for ``ar:<chat model spec>`` (``aod_core.generators``); a bad chat spec fails now."""
    from aod_core.chat import load_chat_model

    load_chat_model(target)  # nothing is loaded yet
    return ARGenerator(target, schema, seeds, device=device, api_key=api_key)
