"""The generator interface: anything that turns a prompt into candidate records.

A generator is fitted (or loaded) once, then sampled many times with different prompts; that is
all the loop, the CLI and the app need. Adding a generator kind is adding one module with one
class and registering its spec prefix in ``generators/__init__.py``.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Protocol

from aod_core.canvas.prompt import Prompt
from aod_core.diffusion.sampler import StepInfo
from aod_core.errors import InputError
from aod_core.records import Candidate


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


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    step: float | None = None,
) -> Any:
    """A setting of a generator's options class that the app offers as a widget: its help text and,
    for numbers, bounds and step (a select box when ``choices`` are given). Plain dataclass fields
    are settings too, only set through ``--gen-opt`` / the options text box."""
    meta = {"help": help, "choices": choices, "min": minimum, "max": maximum, "step": step}
    return field(default=default, metadata={"widget": meta})


def option_widgets(cls: type | None) -> list[dict[str, Any]]:
    """The widgets an options class describes: name, default, help, choices, min, max, step."""
    if cls is None:
        return []
    return [
        {"name": f.name, "default": f.default, **f.metadata["widget"]} for f in fields(cls) if "widget" in f.metadata
    ]


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


class CachedFit:
    """What generators whose fitted weights are cached on disk share: the cache file named by the
    content key (``<cache_prefix>-<cache_key()>.pt`` under ``cache_dir``), and ``fit`` taken under
    the lock that fitting and sampling share (one model may serve several app sessions). A subclass
    provides ``cache_prefix``, ``cache_dir``, ``_lock``, ``cache_key()`` and ``_fit(on_progress)``."""

    cache_prefix: str
    cache_dir: Path
    _lock: Any

    def cache_key(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def _fit(self, on_progress: ProgressFn | None) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def cache_path(self) -> Path:
        return self.cache_dir / f"{self.cache_prefix}-{self.cache_key()}.pt"

    def fit(self, on_progress: ProgressFn | None = None) -> dict[str, Any]:
        with self._lock:
            return self._fit(on_progress)


def load_fitted(path: Path, device: Any, restore: Callable[[dict[str, Any]], None]) -> dict[str, Any] | None:
    """The fit report of the model cached at ``path`` (marked ``cached``), once ``restore(blob)`` has
    put its weights back; None when there is no entry. A damaged entry is deleted and None returned,
    so the model is refitted, not trusted. Loads tensors and plain containers only
    (``weights_only=True``): a cache file never runs code."""
    import torch

    if not path.exists():
        return None
    try:
        blob = torch.load(path, map_location=device, weights_only=True)
        restore(blob)
        return dict(blob["report"], cached=True)
    except (RuntimeError, KeyError, OSError, EOFError, ValueError, pickle.UnpicklingError):
        path.unlink(missing_ok=True)
        return None


def in_batches(
    n: int,
    batch: int,
    run: Callable[[int, int], list[Candidate]],
    *,
    what: str,
    on_halve: Callable[[int], None] | None = None,
) -> tuple[list[Candidate], int]:
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
                raise InputError(
                    f"out of GPU memory for {what} even one record at a time (batch {batch} was "
                    "halved down to 1): use a smaller model, a shorter canvas or --device cpu"
                ) from None
            size = max(1, b // 2)
            if on_halve is not None:
                on_halve(size)
    return out, size
