"""The models this app process holds: chat models loaded once and shared by every job, and where
they run (GPU or CPU).

Each local model serialises its own calls, so sharing one between jobs and sessions is safe; a
chat kind that carries a session's key (``openai:``) is built per job and never pooled, because
that key lives in memory only.
"""

from __future__ import annotations

import threading
from typing import Any

from aod_core import chat
from aod_core.chat import load_chat_model
from aod_core.chat.base import ChatModel


class ModelPool:
    """Chat models shared by all jobs of this process, loaded on first use."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, str | None], ChatModel] = {}
        self._lock = threading.Lock()

    def get(self, spec: str, device: str | None = None, api_key: str | None = None) -> ChatModel:
        kind = chat.chat_kind(spec)
        if kind is not None and kind.per_session:  # carries this session's key: never pooled
            return load_chat_model(spec, api_key=api_key)
        key = (spec, device)
        with self._lock:
            if key not in self._models:
                self._models[key] = load_chat_model(spec, device=device)
            return self._models[key]

    def add(self, spec: str, model: ChatModel, device: str | None = None) -> None:
        """Put an already built model in the pool (a model the caller loaded, or a scripted one)."""
        with self._lock:
            self._models[(spec, device)] = model

    def describe(self) -> list[dict[str, Any]]:
        """What is loaded and where (the Models page shows this)."""
        with self._lock:
            models = list(self._models.items())
        rows = []
        for (spec, device), m in models:
            info = m.describe() if hasattr(m, "describe") else {}
            rows.append(
                {
                    "spec": spec,
                    "loaded": bool(info.get("loaded")),
                    "device": info.get("device", device or "auto"),
                    "model": str(info.get("model", "")),
                    "parameters": info.get("parameters"),
                    "load_seconds": info.get("load_seconds"),
                }
            )
        return rows


def device_summary() -> str:
    """Where models run in this process: the GPU if any, else the CPU and its threads."""
    import torch

    if torch.cuda.is_available():
        return f"GPU: {torch.cuda.get_device_name(0)} (torch {torch.__version__}); `auto` uses it."
    return f"No GPU: models run on the CPU with {torch.get_num_threads()} threads (torch {torch.__version__})."
