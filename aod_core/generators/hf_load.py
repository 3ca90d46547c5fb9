"""Finding and loading a pretrained masked diffusion LM for the ``hf:`` generator.

A model is a local folder or a hub id already in the local Hugging Face cache (there is no hub
access here). A folder whose config or tokenizer names its own Python code (``auto_map``: LLaDA,
Dream) runs that code when loaded, so it is refused unless the user trusts that model
(``check_remote_code``); such code, written for transformers v4, loads on v5 through the shims of
``diffusion/hf_compat.py``. ``load_dlm`` returns the model, its tokenizer and the *facts* decoding
needs: the mask and end token ids, whether logits are shifted (Dream), whether the model offers the
window KV cache, the output head's width.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from aod_core.diffusion import hf_compat
from aod_core.errors import InputError

SHIFTED_MODEL_TYPES = {"dream"}  # logits at i predict token i+1 (AR-initialised DLMs)


def resolve_model_path(ref: str) -> Path:
    """A model folder, or a hub id already in the local HF cache; there is no hub access here."""
    ref = ref.strip()
    if not ref:
        raise InputError("hf: needs a model id or folder, e.g. hf:GSAI-ML/LLaDA-8B-Instruct")
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise InputError(f"{ref} has no config.json: not a transformers model folder")
        return path
    try:
        from huggingface_hub import try_to_load_from_cache

        hit = try_to_load_from_cache(ref, "config.json")
    except ValueError:
        hit = None
    if not isinstance(hit, str):
        raise InputError(
            f"model {ref} not found locally (no hub access on this machine); download it elsewhere and give its folder"
        )
    return Path(hit).parent


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    """The dtype the ``dtype`` setting names; ``auto``: bfloat16 on CUDA, float32 on CPU."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def remote_code_files(path: Path) -> list[str]:
    """The files of a model folder that name Python code of its own (an ``auto_map``), read as plain
    JSON: nothing of the folder is imported to find out."""
    out = []
    for name in ("config.json", "tokenizer_config.json"):
        try:
            data = json.loads((path / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("auto_map"):
            out.append(name)
    return out


def check_remote_code(path: Path, trust_remote_code: bool) -> None:
    """InputError, one line, when the folder ships code and the user has not allowed it."""
    files = remote_code_files(path)
    if files and not trust_remote_code:
        raise InputError(
            f"{path} ships its own Python code ({' and '.join(files)} name it in auto_map), which "
            "runs when the model loads; it is not loaded unless you allow it for this model: "
            "--trust-remote-code (or --gen-opt trust_remote_code=true; in the app, the Models page "
            "checkbox 'Trust this model folder's code')"
        )


def load_dlm(
    path: Path, device: torch.device, dtype: torch.dtype, *, trust_remote_code: bool = False
) -> tuple[Any, Any, dict[str, Any]]:
    """(model, tokenizer, facts) for a masked DLM folder; InputError when it is not one, or when it
    ships code of its own and ``trust_remote_code`` is off."""
    from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    from aod_core.diffusion import mdm  # noqa: F401  registers the aod-mdm model type with transformers

    check_remote_code(path, trust_remote_code)
    shims = hf_compat.apply()
    try:
        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, local_files_only=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the model config or tokenizer in {path}: {str(e).splitlines()[0]}") from None
    mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        mask_id = tokenizer.mask_token_id
    archs = list(getattr(config, "architectures", None) or [])
    if mask_id is None:
        kind = "a causal LM" if any(a.endswith("ForCausalLM") for a in archs) else "not a masked diffusion LM"
        raise InputError(
            f"{path.name} is {kind}: neither its config nor its tokenizer has a mask token "
            "(use it as a chat model, e.g. --judge hf:…, or as the difflm decoder)"
        )
    auto_map = getattr(config, "auto_map", None) or {}
    remote_key = next((k for k in ("AutoModelForMaskedLM", "AutoModel") if k in auto_map), None)
    try:
        if remote_key:
            cls = get_class_from_dynamic_module(auto_map[remote_key], str(path), local_files_only=True)
            if hf_compat.fix_model_class(cls):
                shims.append("tied_weights_list")
            model = cls.from_pretrained(path, config=config, dtype=dtype, local_files_only=True)
        else:
            model = AutoModelForMaskedLM.from_pretrained(path, dtype=dtype, local_files_only=True)
    except torch.cuda.OutOfMemoryError:
        raise InputError(f"out of GPU memory loading {path.name}: use a smaller model or free the GPU") from None
    except OSError as e:
        raise InputError(
            f"weights of {path.name} missing or unreadable (no hub access here): {str(e).splitlines()[0]}"
        ) from None
    except ValueError as e:
        raise InputError(f"cannot load {path.name} as a masked diffusion LM: {str(e).splitlines()[0]}") from None
    except Exception as e:  # damaged weights (e.g. a truncated safetensors file): one line, never a traceback
        raise InputError(
            f"cannot load the weights of {path.name}: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:300]}"
        ) from None
    if hf_compat.tie_after_load(model):
        shims.append("tied_weights_list")
    model = model.to(device).eval()
    end_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else getattr(config, "eos_token_id", None)
    if isinstance(end_id, list):
        end_id = end_id[0]
    if end_id is None:
        end_id = tokenizer.pad_token_id
    if end_id is None:
        raise InputError(f"{path.name}: the tokenizer has no EOS or PAD token to end values with")
    facts = facts_of(model, tokenizer, end_id=int(end_id), shims=sorted(set(shims)))
    return model, tokenizer, facts


def facts_of(
    model: Any, tokenizer: Any, *, end_id: int | None = None, shims: list[str] | None = None
) -> dict[str, Any]:
    """What decoding needs to know about a loaded model: special ids, logit layout, cache support."""
    config = model.config
    mask_id = getattr(config, "mask_token_id", None)
    if mask_id is None:
        mask_id = tokenizer.mask_token_id
    if mask_id is None:
        raise InputError("the model has no mask token: not a masked diffusion LM")
    if end_id is None:
        end_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.pad_token_id
    model_type = str(getattr(config, "model_type", "")).lower()
    return {
        "model_type": model_type,
        "mask_id": int(mask_id),
        "end_id": int(end_id),
        "shifted_logits": model_type in SHIFTED_MODEL_TYPES,
        "window_cache": bool(getattr(model, "supports_window_cache", False)),
        "chat_template": bool(getattr(tokenizer, "chat_template", None)),
        "vocab_size": _vocab_size(model),
        "params": sum(p.numel() for p in model.parameters()),
        "shims": shims or [],
    }


def _vocab_size(model: Any) -> int:
    """Rows of the output head (may exceed the tokenizer's vocabulary: padded for GPU efficiency)."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return int(head.weight.shape[0]) if head is not None else int(model.config.vocab_size)
