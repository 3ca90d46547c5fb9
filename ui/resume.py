"""Resuming a run from a page, with the confirmation a run on a new model server needs.

A folder from someone else may name a server that would receive this session's API key
(``aod_core/chat/endpoints.py``). The first click asks; the run starts only after the user
confirms that server, which is then remembered as trusted.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from aod_core.chat.endpoints import UntrustedEndpoint
from aod_core.errors import InputError
from aod_core.runs.store import RunStore
from aod_core.studio.markup import md
from ui.state import registry

_ASK = "resume_confirm"  # session key: {"run": folder, "urls": [...]} while a confirmation is open


def resume(path: Path, *, trust: bool = False) -> bool:
    """Start the run's job; True when it started. A refusal is shown in the page."""
    try:
        registry().start(
            RunStore.open(path), api_key=st.session_state.get("set_api_key") or None, trust_endpoints=trust
        )
    except UntrustedEndpoint as e:
        st.session_state[_ASK] = {"run": str(path), "urls": e.urls}
        return False
    except InputError as e:
        st.error(f"Could not resume {md(path.name)}: {md(e)}", icon=":material/error:")
        return False
    st.session_state.pop(_ASK, None)
    return True


def confirmation(path: Path) -> bool:
    """The open confirmation for ``path``, if any; True when the user confirmed and the run started."""
    ask = st.session_state.get(_ASK)
    if not ask or ask.get("run") != str(path):
        return False
    with st.container(border=True):
        st.warning("This run would send your OpenAI API key to a server you have not used before:")
        for url in ask["urls"]:
            st.code(url, language=None)
        st.caption("Check that you know it (the run's config.json names it) before you go on.")
        c1, c2 = st.columns(2)
        if c1.button("Send my key there and resume", key="resume_trust", type="primary"):
            return resume(path, trust=True)
        if c2.button("Cancel", key="resume_cancel"):
            st.session_state.pop(_ASK, None)
            st.rerun()
    return False
