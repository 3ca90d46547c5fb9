"""The editable table of a compiled instruction's scaffold edits, shared by the Sample and Run pages."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from aod_core.studio import prompt_forms


def compiled_editor(compiled: dict[str, Any], key: str, fields: list[str] | None = None) -> Any:
    """The compiled edits as a data editor (op, field, value, share; the words and author read-only),
    then a warning per phrase that could not be mapped. ``fields`` makes the field column a choice."""
    columns = {
        "op": st.column_config.SelectboxColumn("op", options=list(prompt_forms.COMPILED_OPS), required=True),
        "share": st.column_config.NumberColumn("target share", format="%.2f"),
        "phrase": st.column_config.TextColumn("from the words", disabled=True),
        "by": st.column_config.TextColumn("by", disabled=True),
    }
    if fields is not None:
        columns["path"] = st.column_config.SelectboxColumn("field", options=fields)
    rows = pd.DataFrame(prompt_forms.compiled_rows(compiled), columns=prompt_forms.COMPILED_COLUMNS)
    edited = st.data_editor(rows, num_rows="dynamic", hide_index=True, key=key, column_config=columns)
    return edited
