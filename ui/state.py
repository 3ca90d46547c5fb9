"""Process-wide resources, the session-state keys the pages share, and the session's current run
(re-attached from the URL after a refresh)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from aod_core.agents.judge import DEFAULT_RUBRIC
from aod_core.errors import InputError
from aod_core.runs.store import RunStore
from aod_core.studio import runview
from aod_core.studio.jobs import JobRegistry, RunJob
from aod_core.studio.markup import md
from aod_core.studio.settings import SETTINGS_DEFAULTS

#: Session-state keys the pages share, with their initial values (``app.py`` sets them once).
SESSION_DEFAULTS: dict[str, Any] = {
    "dataset": None,  # the Dataset chosen on the Design page
    "dataset_label": None,  # how the Design page names it ("demo: penguins", "upload: a.json + b.csv")
    "dataset_signature": None,  # what was loaded (source, names, content hashes, on_invalid)
    "prompt_text": "",  # the task description, the text half of the prompt
    "sample_result": None,  # the Sample page's last SampleResult
    "rubric_text": DEFAULT_RUBRIC,  # the judge's rubric, editable on the Design page
    "run_dir": None,  # the run this session started or opened (Run, Curate, Export pages)
}


@st.cache_resource(show_spinner=False)
def registry() -> JobRegistry:
    """One per process: every browser session's jobs and the chat models they share."""
    return JobRegistry()


def attach_from_url() -> None:
    """Keep the current run in the URL (``?run=NAME``), so a refresh or a second tab finds it."""
    name = st.query_params.get("run")
    if st.session_state.get("run_dir") is None and name:
        try:
            st.session_state.run_dir = str(runview.resolve_run(name))
        except InputError as e:
            st.session_state.url_error = f"Could not reopen the run in the address: {e}"
            del st.query_params["run"]
    if st.session_state.get("run_dir"):
        st.query_params["run"] = Path(st.session_state.run_dir).name


def open_run(run_dir: str | Path | None) -> None:
    st.session_state.run_dir = None if run_dir is None else str(run_dir)
    if run_dir is None:
        st.query_params.pop("run", None)


def current_run() -> tuple[RunStore | None, RunJob | None]:
    """The session's run folder (read-only view) and its job in this process, if any."""
    run_dir = st.session_state.get("run_dir")
    if not run_dir:
        return None, None
    try:
        store = RunStore.open(run_dir, repair=False)
    except InputError as e:
        st.error(f"The run folder is gone or damaged: {md(e)}")
        open_run(None)
        return None, None
    return store, registry().get(run_dir)


def settings() -> dict:
    """The Models & settings page's values (defaults where the page was never opened)."""
    return {k: st.session_state.get(f"set_{k}", v) for k, v in SETTINGS_DEFAULTS.items()}


def require_run() -> tuple[RunStore, RunJob | None]:
    """The current run, or an empty state pointing to where a run comes from (stops the page)."""
    store, job = current_run()
    if store is None:
        st.info("No run open: start one on the Run page or reopen one on the Runs page.")
        st.page_link("pages/runs.py", label="Go to Runs", icon=":material/history:")
        st.stop()
    return store, job


def require_dataset(*, stop: bool = True):
    """The session's dataset, or an empty state pointing to the Design page that stops the page
    (with ``stop=False`` the page goes on and gets None)."""
    dataset = st.session_state.get("dataset")
    if dataset is None:
        st.info("No dataset yet: choose a demo dataset or upload a schema and seeds on the Design page first.")
        st.page_link("pages/design.py", label="Go to Design", icon=":material/arrow_back:")
        if stop:
            st.stop()
    return dataset


def compiler_chat():
    """The chat model the instruction compiler asks about what its rules leave (the Models page's
    compiler model, else the optimizer's; None for ``none``), shared by the process."""
    s = settings()
    spec = (s.get("compiler") or s.get("optimizer") or "").strip()
    if not spec or spec.lower() == "none":
        return None
    return registry().models.get(spec, None, st.session_state.get("set_api_key") or None)
