"""AoD Studio: the Streamlit entry point (``streamlit run app.py``).

A thin router: page config, the shared session state, and the page list. Pages hold layout and
widgets; everything they compute lives in ``aod_core.workspace``.
"""
from __future__ import annotations

import streamlit as st

from aod_core.workspace import SESSION_DEFAULTS

st.set_page_config(page_title="AoD Studio", page_icon=":material/dataset:", layout="wide")

for key, value in SESSION_DEFAULTS.items():
    st.session_state.setdefault(key, value)

# Later: Models & settings, Run, Curate, Export, Runs.
pages = [
    st.Page("pages/design.py", title="Design", icon=":material/schema:", default=True),
    st.Page("pages/sample.py", title="Sample", icon=":material/casino:"),
]
st.navigation(pages).run()
