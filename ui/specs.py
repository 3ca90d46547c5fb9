"""A model-spec picker: a kind from the engine's registry (a select box) plus the target it needs.

The generator and chat registries (``aod_core.generators.GENERATORS``, ``aod_core.chat.CHAT_BACKENDS``)
say which kinds exist, how each is spelled and what follows its colon; this widget pair writes the
composed spec (``hf:/models/llada``) under the settings key the rest of the app reads
(``set_generator``, ``set_judge``, ...). A spec set elsewhere (a test, an older session) is read back
into the two widgets.
"""

from __future__ import annotations

from typing import Any

import streamlit as st


def _compose(kind: Any, target: str) -> str:
    target = target.strip()
    return f"{kind.name}:{target}" if kind.target and (target or kind.target_required) else kind.name


def spec_picker(container: Any, label: str, kinds: dict[str, Any], key: str, default: str, help: str = "") -> str:
    """Draw the kind select box and, for kinds with a target, its text box; return the spec.

    ``kinds`` is a registry table (name -> kind with ``form``, ``help``, ``target``); the spec is stored
    in ``st.session_state[key]``.
    """
    kind_key, target_key, seen_key = f"{key}_kind", f"{key}_target", f"{key}_composed"
    current = str(st.session_state.get(key, default) or default).strip()
    if st.session_state.get(seen_key) != current or kind_key not in st.session_state:
        name, _, target = current.partition(":")
        name = name.lower() if name.lower() in kinds else next(iter(kinds))
        st.session_state[kind_key], st.session_state[target_key] = name, target.strip()
    names = list(kinds)
    lines = "  \n".join(f"`{k.form}`: {k.help}" for k in kinds.values())
    chosen = container.selectbox(
        label, names, key=kind_key, format_func=lambda n: kinds[n].form, help=f"{help}  \n{lines}" if help else lines
    )
    kind = kinds[chosen]
    target = ""
    if kind.target:
        form = kind.form.partition(":")[2].strip("[]")
        target = container.text_input(
            f"{label}: {form}" + ("" if kind.target_required else " (optional)"), key=target_key, placeholder=form
        )
    spec = _compose(kind, target or "")
    st.session_state[key] = st.session_state[seen_key] = spec
    return spec


def option_form(container: Any, kind: Any, key: str = "set_gen_fields") -> dict[str, Any]:
    """Draw the widgets the kind's options class describes (``generators.base.option``) and keep the
    values that differ from their defaults in ``st.session_state[key]`` (the run settings read them)."""
    from aod_core.generators.base import option_widgets

    specs = option_widgets(kind.options_class() if kind is not None else None)
    chosen: dict[str, Any] = {}
    cols = container.columns(3) if specs else []
    for i, w in enumerate(specs):
        col, wkey = cols[i % 3], f"gen_field_{kind.name}_{w['name']}"
        label = w["name"].replace("_", " ").capitalize()
        if w["choices"]:
            value = col.selectbox(
                label, list(w["choices"]), index=list(w["choices"]).index(w["default"]), key=wkey, help=w["help"]
            )
        elif isinstance(w["default"], bool):
            value = col.checkbox(label, value=w["default"], key=wkey, help=w["help"])
        else:
            num = float if isinstance(w["default"], float) else int
            value = col.number_input(
                label,
                min_value=num(w["min"]) if w["min"] is not None else None,
                max_value=num(w["max"]) if w["max"] is not None else None,
                value=w["default"],
                step=num(w["step"] or 1),
                key=wkey,
                help=w["help"],
                format="%g" if num is float else None,
            )
        if value != w["default"]:
            chosen[w["name"]] = value
    st.session_state[key] = chosen
    return chosen
