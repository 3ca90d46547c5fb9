"""AoD Studio: the Streamlit entry point (``streamlit run app.py``).

A thin router: page config, the shared session state, the current run (kept in the URL so a refresh
re-attaches to it), and the page list. Pages hold layout and widgets; everything they compute lives
in ``aod_core``.
"""

from __future__ import annotations

import streamlit as st

from aod_core.studio.markup import md
from ui.state import SESSION_DEFAULTS, attach_from_url

st.set_page_config(page_title="AoD Studio", page_icon="🧪", layout="wide")

for key, value in SESSION_DEFAULTS.items():
    st.session_state.setdefault(key, value)
attach_from_url()
if "url_error" in st.session_state:
    st.warning(md(st.session_state.pop("url_error")))

pages = {
    "Set up": [
        st.Page("pages/design.py", title="Design", icon=":material/schema:", default=True),
        st.Page("pages/models.py", title="Models & settings", icon=":material/tune:"),
        st.Page("pages/sample.py", title="Sample", icon=":material/casino:"),
    ],
    "Generate": [
        st.Page("pages/run.py", title="Run", icon=":material/play_arrow:"),
        st.Page("pages/curate.py", title="Curate", icon=":material/fact_check:"),
        st.Page("pages/export.py", title="Export", icon=":material/download:"),
        st.Page("pages/runs.py", title="Runs", icon=":material/history:"),
    ],
}
st.navigation(pages).run()
