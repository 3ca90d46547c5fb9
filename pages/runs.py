"""Runs: every run in the run store; reopen one, or resume one that was interrupted."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aod_core.studio import runview
from aod_core.studio.markup import md, md_code
from ui.resume import confirmation, resume
from ui.state import open_run

st.title("Runs")
root = runview.runs_root()
st.caption(f"Runs are folders under {md_code(root)} (set `AOD_RUNS_DIR` to keep them elsewhere). The CLI's "
           "`aod run --out DIR` folders can be opened here too when they are in this folder.")
rows = runview.list_runs(root)
if not rows:
    st.info("No runs yet: start one on the Run page.")
    st.page_link("pages/run.py", label="Go to Run", icon=":material/play_arrow:")
    st.stop()

st.dataframe(
    pd.DataFrame(rows),
    hide_index=True,
    key="runs_table",
    column_config={
        "reward": st.column_config.NumberColumn(format="%.3f"),
        "tsr": st.column_config.NumberColumn("TSR", format="%.2f"),
    },
)
names = [r["run"] for r in rows]
current = st.session_state.get("run_dir")
default = names.index(current.rsplit("/", 1)[-1]) if current and current.rsplit("/", 1)[-1] in names else 0
name = st.selectbox("Run", names, index=default, key="runs_pick")
row = rows[names.index(name)]
c1, c2 = st.columns(2)
if c1.button("Open", key="runs_open", icon=":material/folder_open:", help="Show it on the Run, Curate and Export "
                                                                          "pages."):
    open_run(root / name)
    st.switch_page("pages/run.py")
if row["status"] in ("interrupted", "stopped", "failed", "created") and c2.button("Resume", key="runs_resume",
                                                                                  icon=":material/play_arrow:",
                                                                                  type="primary",
                                                                                  help="Go on from the last finished "
                                                                                       "iteration."):
    if resume(root / name):
        open_run(root / name)
        st.switch_page("pages/run.py")
if confirmation(root / name):
    open_run(root / name)
    st.switch_page("pages/run.py")
if row.get("error"):
    st.error(f"{md(name)}: {md(row['error'])}")
