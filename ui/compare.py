"""The Run page's comparison section: ``aod bench`` on the current dataset, run in the background."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from aod_core.errors import InputError
from aod_core.runs import charts
from aod_core.runs.bench import DEFAULT_METHODS, HEADLINE, METHODS, BenchConfig
from aod_core.studio import runview
from aod_core.studio.markup import md, md_code
from ui.state import registry, settings


def compare_section() -> None:
    with st.expander("Compare with the baselines (aod bench)", icon=":material/leaderboard:"):
        st.caption(
            "Runs the static DLM (no agents), the chat model writing records itself (AR only), AoD and "
            "its ablations on the current dataset with the same seed and the same number of records "
            "each (iterations × batch from Models & settings), all judged by the same judge. "
            "With embedded models on a CPU this takes several minutes per AoD method."
        )
        dataset = st.session_state.get("dataset")
        methods = st.multiselect("Methods", list(METHODS), default=list(DEFAULT_METHODS), key="bench_methods")
        if st.button(
            "Start comparison",
            key="bench_start",
            disabled=dataset is None,
            help=None if dataset is not None else "Load a dataset on the Design page first.",
        ):
            s = settings()
            try:
                config = BenchConfig(
                    methods=tuple(methods),
                    seed=int(s["seed"]),
                    iterations=int(s["iterations"]),
                    batch=int(s["batch"]),
                    proposals=int(s["proposals"]),
                    probe=int(s["probe"]),
                    generator=s["generator"],
                    judge=s["judge"],
                    optimizer=s["optimizer"],
                    task=st.session_state.prompt_text or "",
                    rubric=st.session_state.rubric_text,
                    device=None if s["device"] == "auto" else s["device"],
                    generator_config={"train_steps": int(s["train_steps"])} if s["train_steps"] else {},
                )
                out = runview.new_run_dir(f"bench {st.session_state.dataset_label or ''}")
                registry().start_bench(dataset, out, config, api_key=st.session_state.get("set_api_key") or None)
            except InputError as e:
                st.error(f"Could not start the comparison: {md(e)}")
            else:
                st.session_state.bench_dir = str(out)
        bench_dir = st.session_state.get("bench_dir")
        if bench_dir:
            job = registry().get_bench(bench_dir)
            # poll while the bench works; a finished one is drawn once
            st.fragment(_show, run_every=2.0 if job is not None and job.active else None)(Path(bench_dir))


def _show(out: Path) -> None:
    job = registry().get_bench(out)
    if job is not None:
        st.markdown(f"**Comparison** {md_code(out.name)}: {md(job.status)}")
        if job.error:
            st.error(f"The comparison failed: {md(job.error)}. Methods that finished are kept in {md_code(out)}.")
        if job.lines():
            st.code("\n".join(job.lines()[-8:]), language=None)
    results = runview.bench_results(out)
    if results and results.get("methods"):
        table = pd.DataFrame([{"method": k, **{h: v.get(h) for h in HEADLINE}} for k, v in results["methods"].items()])
        st.dataframe(table, hide_index=True)
        st.plotly_chart(charts.bench_figures(results)[0], key="bench_chart")
    elif job is None:
        st.caption("No results in this folder.")
