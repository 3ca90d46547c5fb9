"""Run (live): start the AoD loop, watch the agents work, steer the prompt between iterations."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aod_core.agents.compiler import compile_note, should_compile, strip_compiled
from aod_core.errors import InputError
from aod_core.runs import charts
from aod_core.runs.setup import create_run_from
from aod_core.runs.store import RunStore
from aod_core.studio import cells, prompt_forms, runview
from aod_core.studio.markup import md, md_code
from aod_core.studio.settings import config_from_settings
from ui.compare import compare_section
from ui.compiled import compiled_editor
from ui.copying import show_copying
from ui.resume import confirmation, resume
from ui.state import compiler_chat, current_run, open_run, registry, require_dataset, settings

st.title("Run")


def start_new() -> None:
    dataset = require_dataset(stop=False)  # the comparison section below still shows
    if dataset is None:
        return
    s = settings()
    st.markdown(f"**Dataset:** {md(st.session_state.dataset_label)} · {len(dataset.seeds.records)} seeds")
    st.markdown(f"**Models:** generator {md_code(s['generator'])} · judge {md_code(s['judge'])} · "
                f"optimizer {md_code(s['optimizer'])} · "
                f"**Loop:** {s['iterations']} iterations × {s['batch']} candidates, {s['proposals']} proposals "
                f"and up to {s['repairs']} repairs on probes of {s['probe']}")
    st.page_link("pages/models.py", label="Change models and settings", icon=":material/tune:")
    if st.button("Start run", type="primary", key="run_start", icon=":material/play_arrow:"):
        try:
            config = config_from_settings(s, task=st.session_state.prompt_text or "", rubric=st.session_state.rubric_text)
            store = create_run_from(dataset.schema, dataset.seeds.records,
                                    runview.new_run_dir(st.session_state.dataset_label or "run"), config)
            registry().start(store, api_key=st.session_state.get("set_api_key") or None)
        except InputError as e:
            st.error(f"Could not start the run: {md(e)}")
        else:
            open_run(store.path)
            st.rerun()


store, job = current_run()
if store is None:
    start_new()
    compare_section()
    st.stop()

# ---- header and controls -------------------------------------------------------------------------
view = job.view() if job else None
status = view.status if view else runview.status_of(store)
summary = runview.run_summary(store)
st.subheader(md(store.path.name))

c1, c2, c3, c4 = st.columns(4)
if view and view.active:
    if view.status == "paused":
        c1.button("Resume", key="run_resume", icon=":material/play_arrow:", on_click=job.resume)
    else:
        c1.button("Pause", key="run_pause", icon=":material/pause:", on_click=job.pause,
                  help="Pauses at the next step; the iteration in flight goes on when you resume.")
    c2.button("Stop", key="run_stop", icon=":material/stop:", on_click=job.stop,
              help="Stops at the next step. Finished iterations are kept; the one in flight is dropped.")
else:
    remaining = (summary["iterations"] or 0) - summary["iterations_done"]
    if status in ("stopped", "interrupted", "failed", "created") and remaining > 0:
        if c1.button("Resume run", key="run_continue", type="primary", icon=":material/play_arrow:",
                     help=f"{remaining} iteration(s) left; the run goes on from its last finished iteration."):
            if resume(store.path):
                st.rerun()
        if confirmation(store.path):
            st.rerun()
if c4.button("New run", key="run_new", icon=":material/add:",
             help="Leave this run (it keeps working if it is running) and set up another."):
    open_run(None)
    st.rerun()

if view and view.error:
    st.error(
        f"The run failed: {md(view.error)}. Every finished iteration is kept in {md_code(store.path)}; fix the cause "
        "(e.g. start the model server) and resume."
    )
elif not view and store.state().get("error"):
    st.error(f"The run failed: {md(store.state()['error'])}")
for warning in view.warnings if view else []:
    st.warning(f"Resumed with a difference: {md(warning)}. The report lists the run's fingerprint.")
if status == "interrupted":
    st.warning(
        "The process working on this run stopped before it finished (the app was restarted?). Finished iterations "
        "are kept: press **Resume run** to go on."
    )


# The projection and the field list change only when an iteration is committed (or never): computed
# once per run and iteration, not on every poll.
@st.cache_data(max_entries=32, show_spinner=False)
def _projection(run_dir: str, committed: int):
    seeds, records, labels = runview.projection_inputs(RunStore.open(run_dir, repair=False))
    return charts.projection(seeds, records, labels=labels)


@st.cache_data(max_entries=32, show_spinner=False)
def _field_keys(run_dir: str) -> list[str]:
    return runview.run_field_keys(RunStore.open(run_dir, repair=False))


# ---- live view ------------------------------------------------------------------------------------
# A run worked on by another process (``aod run``, another app) is polled through its folder.
@st.fragment(run_every=1.5 if (view and view.active) or status in ("running", "paused") else None)
def live() -> None:
    v = job.view() if job else None
    if v is not None and view is not None and v.status != view.status:
        st.rerun(scope="app")  # paused, resumed, finished...: redraw the controls
    s = runview.run_summary(store)
    shown = v.status if v else s["status"]
    st.markdown(f"**Status:** {md_code(shown)}" + (f" · {md(v.phase)}" if v and v.active else " · worked on by another process"
                if not v and shown in ("running", "paused") else ""))
    if v and v.active:
        st.progress(v.fit.frac, text=v.fit.text or "Fitting the generator")
        st.progress(v.denoise.frac, text=v.denoise.text or "Denoising: waiting")
        st.progress(v.judging.frac, text=v.judging.text or "Judging: waiting")
    m = st.columns(5)
    m[0].metric("Iteration", f"{s['iterations_done']}/{s['iterations']}")
    m[1].metric("Accepted", v.accepted_total if v else s["accepted"])
    m[2].metric("Reward", "—" if s["reward"] is None else f"{s['reward']:.3f}",
                None if s["reward"] is None or s["reward_first"] is None else f"{s['reward'] - s['reward_first']:+.3f}")
    m[3].metric("Task success", "—" if s["task_success_rate"] is None else f"{s['task_success_rate']:.0%}")
    m[4].metric("Schema-valid", "—" if s["schema_valid_rate"] is None else f"{s['schema_valid_rate']:.0%}")
    if s["iterations_done"]:
        show_copying(s["copying"], s["dependency_violation_rate"])

    charts_tab, agents_tab, records_tab = st.tabs(["Charts", "Judge & optimizer", "Records"])
    with charts_tab:
        st.plotly_chart(charts.metric_curves(store.metrics()), key="run_curves")
        a, b = st.columns(2)
        cands = store.candidates()
        a.plotly_chart(charts.score_histogram(cands), key="run_scores")
        fig, caption = _projection(str(store.path), s["iterations_done"])
        b.plotly_chart(fig, key="run_projection")
        b.caption(md(caption))
        reasons = runview.rejection_reasons(store)
        st.plotly_chart(charts.rejection_chart(reasons), key="run_reasons")
        if reasons:
            last = max(r["iteration"] for r in reasons)
            shown = [f"{r['records']}/{r['of']} {md(r['reason'])}" for r in reasons if r["iteration"] == last][:4]
            st.caption(f"Iteration {last}, most frequent reasons: " + "; ".join(shown))
    with agents_tab:
        timeline = v.timeline if v else []
        for e in reversed(timeline):
            if e["kind"] == "error":
                st.error(md(e["error"]))
        rows = runview.feedback_rows(store, timeline)
        if not rows:
            st.caption("The judge's feedback appears here after the first batch is judged.")
        for it, text, err in rows[:5]:
            st.markdown(f"**Iteration {it + 1} · judge feedback:** {md(text) if text else '_(none)_'}")
            if err:
                st.caption(f"The judge's summary failed: {md(err)}")
        done = s["iterations_done"]
        if done:
            it = st.selectbox("Optimizer proposals of iteration", list(range(done, 0, -1)), key="run_prop_it") - 1
            props = runview.proposal_rows(store, it)
            if props:
                st.dataframe(pd.DataFrame(props), hide_index=True, key="run_props",
                             column_config={"reward": st.column_config.NumberColumn(format="%.3f"),
                                            "second probe": st.column_config.NumberColumn(format="%.3f")})
                for p in props:
                    if p["chosen"] and p["candidate"] != "incumbent" and p["diff"]:
                        st.markdown("**Winning proposal: change to the prompt**")
                        st.code(p["diff"], language="diff")
            else:
                st.caption("No proposals in this iteration (the last iteration, or proposals and repairs set to 0).")
            st.markdown("**Prompt history**")
            st.dataframe(pd.DataFrame(runview.prompt_history(store)), hide_index=True, key="run_history")
    with records_tab:
        live_rows = runview.live_candidates(store, v.live_rows if v else [])
        if v and v.pending_texts:
            st.caption(f"{len(v.pending_texts)} new records are being judged…")
        if live_rows:
            st.dataframe(pd.DataFrame(live_rows[:200]), hide_index=True, key="run_records",
                         column_config={"score": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0)})
        else:
            st.caption("Records appear here with their verdicts as soon as a batch is judged.")


live()

# ---- steer: edit the prompt by hand ---------------------------------------------------------------
st.subheader("Edit the prompt")
prompt, author = runview.current_prompt(store)
st.caption(f"The next iteration uses the prompt below (by **{md(author)}**). Your edit replaces it at the next "
           "iteration boundary and is marked as human-authored in the history.")
if view and view.pending_prompt:
    st.info("Your edit is waiting for the next iteration.")
    for line in st.session_state.get("run_edit_messages") or []:  # what the compiler could not map in it
        st.warning(md(line), icon=":material/help:")
try:
    field_keys = _field_keys(str(store.path))
except InputError as e:
    st.error(md(e))
    field_keys = []
# Widgets are keyed by the prompt they show: when the optimizer changes the prompt, the form shows
# the new one instead of keeping (and later re-submitting) what it first rendered.
pk = cells.content_hash(prompt.to_dict())
gen_spec, mode = runview.run_compile_mode(store)
compile_on = should_compile(mode, gen_spec)
st.caption(compile_note(gen_spec, mode))
hand = strip_compiled(prompt)  # what a human or the optimizer wrote; compiled edits have their own table
compiled = st.session_state.get(f"run_compiled_{pk}", prompt.compiled)
with st.form(f"run_edit_{pk}", border=True):
    text = st.text_area("Instruction text", value=prompt.text, key=f"edit_text_{pk}")
    compiled_edits = None
    if compile_on and compiled:
        if compiled.get("text") != text:
            st.caption("The text changed since it was compiled: it is compiled again when you use it.")
        st.caption(f"Compiled from *{md(compiled.get('text', ''))}* (edit, delete or add rows; a changed row counts as "
                   "yours):")
        compiled_edits = compiled_editor(compiled, f"edit_compiled_{pk}_{cells.content_hash(compiled)}")
        for line in prompt_forms.compiled_messages(compiled):
            st.warning(md(line), icon=":material/help:")
    e1, e2 = st.columns(2)
    temp = float(hand.sampling.temperature)
    temperature = e1.number_input("Temperature", 0.0, max(5.0, temp), temp, 0.1, key=f"edit_temperature_{pk}")
    remasking = e2.selectbox("Remasking", ["random", "low_confidence"],
                             index=0 if prompt.sampling.remasking == "random" else 1, key=f"edit_remasking_{pk}")
    cols = {
        "path": st.column_config.SelectboxColumn("Field", options=field_keys, required=True),
        "value": st.column_config.TextColumn("Value (JSON or text)"),
    }
    p1, p2 = st.columns(2)
    p1.caption("Pins")
    pins = p1.data_editor(pd.DataFrame(prompt_forms.path_value_rows(hand.pins), columns=["path", "value"]),
                          num_rows="dynamic", column_config=cols, hide_index=True, key=f"edit_pins_{pk}")
    p2.caption("Forbids")
    forbids = p2.data_editor(pd.DataFrame(prompt_forms.path_value_rows(hand.forbid, many=True), columns=["path", "value"]),
                             num_rows="dynamic", column_config=cols, hide_index=True, key=f"edit_forbids_{pk}")
    b1, b2 = st.columns(2)
    compile_now = compile_on and b1.form_submit_button("Compile the text", icon=":material/translate:")
    submitted = b2.form_submit_button("Use this prompt next", icon=":material/edit:")
if compile_now:
    try:
        with st.spinner("Compiling the instruction…"):
            st.session_state[f"run_compiled_{pk}"] = runview.compile_for_run(store, text, compiler_chat())
    except InputError as e:
        st.error(f"Could not compile the instruction: {md(e)}")
    else:
        st.rerun()
if submitted:
    try:
        edited = prompt_forms.edit_prompt(prompt, text,
                                          sampling={"temperature": float(temperature), "remasking": remasking},
                                          pins=pins.to_dict("records"), forbids=forbids.to_dict("records"))
        if job is None or not job.view().active:
            raise InputError("the run is not working in this app; resume it first, then edit")
        if compile_on and text.strip():
            if not compiled or compiled.get("text") != text:
                with st.spinner("Compiling the instruction…"):
                    compiled = runview.compile_for_run(store, text, compiler_chat())
            elif compiled_edits is not None:
                compiled = prompt_forms.compiled_from_rows(compiled, compiled_edits.to_dict("records"))
            edited = prompt_forms.prompt_with_compiled(edited, compiled, job.prompt_check())
        job.set_prompt(edited)
    except InputError as e:
        st.error(f"Prompt not used: {md(e)}")
    else:
        st.session_state.run_edit_messages = prompt_forms.compiled_messages(edited.compiled)
        st.rerun()
st.caption(f"Run folder: {md_code(store.path)}")
compare_section()
