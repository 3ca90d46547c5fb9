"""Compatibility shims that let transformers-v4-era remote code (LLaDA, Dream) load on transformers v5.

LLaDA and Dream are not built into transformers; they load with ``trust_remote_code=True`` from the
model folder's own ``modeling_*.py``, written against transformers 4.4x. Three things they rely on
changed in v5, and each shim restores exactly one of them:

* ``rope_default``: ``ROPE_INIT_FUNCTIONS["default"]`` is gone (v5 moved the plain RoPE into each
  model); Dream's rotary embedding looks it up by that name.
* ``torch_fx_flag``: ``transformers.utils.is_torch_fx_available`` was removed; Llama-derived remote
  code of that era imports it.
* ``tied_weights_list``: v5 expects ``_tied_weights_keys`` to be a ``{target: source}`` dict and
  calls ``.keys()`` on it; v4 code declares a list. ``fix_model_class`` turns the list off before
  loading and ``tie_after_load`` ties the output embedding to the input embedding afterwards, which
  is what the list meant.

``apply()`` is idempotent and never changes behaviour of code that already works on v5: it only
adds names that are missing. Everything else in this project uses v5 APIs directly.
"""

from __future__ import annotations

from typing import Any, Callable

import torch


def _default_rope(config: Any, device: Any = None, seq_len: int | None = None, **rope_kwargs: Any):
    """Plain RoPE: inverse frequencies base^(-2i/d) and attention scaling 1 (v4's "default")."""
    base = rope_kwargs.get("base")
    dim = rope_kwargs.get("dim")
    if config is not None:
        params = getattr(config, "rope_parameters", None) or {}
        base = base or getattr(config, "rope_theta", None) or params.get("rope_theta") or 10000.0
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        dim = dim or int(head_dim * getattr(config, "partial_rotary_factor", 1.0))
    exps = torch.arange(0, dim, 2, dtype=torch.int64).to(device=device, dtype=torch.float) / dim
    return 1.0 / (base**exps), 1.0


def rope_default() -> bool:
    from transformers import modeling_rope_utils

    if "default" in modeling_rope_utils.ROPE_INIT_FUNCTIONS:
        return False
    modeling_rope_utils.ROPE_INIT_FUNCTIONS["default"] = _default_rope
    return True


def torch_fx_flag() -> bool:
    import transformers.utils as tu
    import transformers.utils.import_utils as iu

    if hasattr(tu, "is_torch_fx_available"):
        return False

    def is_torch_fx_available() -> bool:
        return True  # torch.fx ships with every torch this project supports (>= 2)

    tu.is_torch_fx_available = is_torch_fx_available
    iu.is_torch_fx_available = is_torch_fx_available
    return True


def tied_weights_list() -> bool:
    """Registered for listing; the work happens per class in ``fix_model_class``/``tie_after_load``."""
    return False


SHIMS: dict[str, Callable[[], bool]] = {
    "rope_default": rope_default,
    "torch_fx_flag": torch_fx_flag,
    "tied_weights_list": tied_weights_list,
}


def apply() -> list[str]:
    """Install every module-level shim that is needed; returns the names of those newly installed."""
    return [name for name, shim in SHIMS.items() if shim()]


def fix_model_class(cls: type) -> bool:
    """Make a remote model class loadable on v5; True when it declared its tied weights as a list."""
    keys = getattr(cls, "_tied_weights_keys", None)  # inherited lists count too
    if isinstance(keys, (list, tuple)):
        cls._aod_tied_list = list(keys)
        cls._tied_weights_keys = None
        return True
    return False


def tie_after_load(model: Any) -> bool:
    """Tie output to input embeddings when the class said so with a v4 list and the config agrees."""
    if not getattr(type(model), "_aod_tied_list", None) or not getattr(model.config, "tie_word_embeddings", False):
        return False
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    if out is None or inp is None or out.weight is inp.weight:
        return False
    out.weight = inp.weight
    return True
