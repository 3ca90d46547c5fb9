"""The generator interface: anything that turns a prompt into candidate records.

A generator is fitted (or loaded) once, then sampled many times with different prompts; that is
all the loop, the CLI and the app need. Adding a generator kind is adding one module with one
class and registering its spec prefix in ``generators/__init__.py``.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from aod_core.errors import InputError
from aod_core.canvas.prompt import Prompt
from aod_core.diffusion.sampler import StepInfo


@dataclass
class Candidate:
    """One generated record as produced: its JSON text, the parsed value, or why there is none."""

    text: str | None
    record: Any = None
    error: str | None = None

    @property
    def parsed(self) -> bool:
        return self.error is None

    @classmethod
    def from_text(cls, text: str) -> Candidate:
        try:
            return cls(text=text, record=json.loads(text))
        except ValueError as e:
            return cls(text=text, error=f"not valid JSON: {e}")


@dataclass
class Progress:
    """Fitting progress for progress bars: ``done`` of ``total`` units of ``stage``."""

    stage: str
    done: int
    total: int
    info: dict[str, Any] = field(default_factory=dict)


ProgressFn = Callable[[Progress], None]
StepFn = Callable[[StepInfo], None]


class Generator(Protocol):
    spec: str

    def fit(self, on_progress: ProgressFn | None = None) -> dict[str, Any]:
        """Prepare the model (train or load from cache); idempotent. Returns a fit report."""
        ...

    def check_prompt(self, prompt: Prompt) -> None:
        """Raise InputError when the prompt cannot be used with this generator (cheap, no fitting)."""
        ...

    def sample(self, prompt: Prompt, n: int, *, seed: int = 0, on_step: StepFn | None = None) -> list[Candidate]:
        """``n`` candidates for ``prompt``; reproducible for a given seed."""
        ...


def content_key(parts: dict[str, Any]) -> str:
    """A short, stable hash of what a fitted model depends on (its disk-cache key)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def save_fitted(path: Path, blob: dict[str, Any]) -> None:
    """``torch.save`` beside the target, then rename: a killed fit never leaves a half-written entry."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(blob, tmp)
    os.replace(tmp, path)


def in_batches(n: int, batch: int, run: Callable[[int, int], list[Candidate]], *, what: str,
               on_halve: Callable[[int], None] | None = None) -> tuple[list[Candidate], int]:
    """``n`` candidates from ``run(start, size)`` called on consecutive chunks of at most ``batch``.

    A chunk that runs out of GPU memory is retried at half the size (the GPU cache freed first), and
    later chunks keep the smaller size; only a single record that still does not fit is an error
    (an ``InputError`` naming ``what`` and what to do). Returns the candidates and the batch size
    that worked, so a caller can remember it for its next call.
    """
    import torch

    out: list[Candidate] = []
    size = max(1, batch)
    while len(out) < n:
        b = min(size, n - len(out))
        try:
            out.extend(run(len(out), b))
        except torch.cuda.OutOfMemoryError:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if b == 1:
                raise InputError(f"out of GPU memory for {what} even one record at a time (batch {batch} was "
                                 "halved down to 1): use a smaller model, a shorter canvas or --device cpu") from None
            size = max(1, b // 2)
            if on_halve is not None:
                on_halve(size)
    return out, size
