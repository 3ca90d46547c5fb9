"""Design: choose the dataset (demo or upload), inspect schema, seeds and scaffold, describe the task."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from aod_core.errors import InputError
from aod_core.generators import conditioning_note
from aod_core.studio import datasets, design, fields
from aod_core.studio.markup import md, md_code

ON_INVALID_LABELS = {"stop": "Stop on invalid seeds", "drop": "Drop invalid seeds"}

st.title("Design")
st.caption(
    "Bring a JSON Schema and a handful of seed records; the generator learns from the seeds and fills the schema's "
    "scaffold."
)

# ---- choose --------------------------------------------------------------------------------------
left, right = st.columns([3, 2])
with left:
    source = st.radio("Source", ["Demo dataset", "Upload files"], horizontal=True, key="design_source", persist_state="session")
with right:
    on_invalid = st.radio("Seeds that fail the schema", list(ON_INVALID_LABELS), format_func=ON_INVALID_LABELS.get,
                          horizontal=True, key="design_on_invalid", persist_state="session",
                          help="Stop: refuse the seeds file and list every problem, so you can fix it. "
                          "Drop: continue with the valid seeds only; the dropped ones are listed below.")

request = None  # (signature, label, loader)
if source == "Demo dataset":
    demos = datasets.demo_names()
    name = st.selectbox("Demo dataset", demos, index=None, key="design_demo", persist_state="session",
                        placeholder="Choose a demo dataset")
    if not demos:
        st.warning("No demo datasets found in assets/.")
    if name:
        request = (("demo", name, on_invalid), f"demo: {name}", lambda: datasets.load_demo(name, on_invalid))
else:
    c1, c2 = st.columns(2)
    schema_file = c1.file_uploader("JSON Schema (.json)", type=["json"], key="design_schema_file")
    seeds_file = c2.file_uploader(
        "Seed records (.jsonl, .json array or .csv)", type=["jsonl", "ndjson", "json", "csv"], key="design_seeds_file"
    )
    if schema_file and seeds_file:
        request = (
            ("upload", schema_file.name, schema_file.file_id, seeds_file.name, seeds_file.file_id, on_invalid),
            f"upload: {schema_file.name} + {seeds_file.name}",
            lambda: datasets.load_uploaded(
                schema_file.getvalue(), schema_file.name, seeds_file.getvalue(), seeds_file.name, on_invalid
            ),
        )
    elif schema_file or seeds_file:
        st.info(f"Now upload the {'seed records' if schema_file else 'JSON Schema'} too.")

# ---- load ----------------------------------------------------------------------------------------
failed = False
if request is not None and request[0] != st.session_state.get("dataset_signature"):
    signature, label, loader = request
    try:
        dataset = loader()
    except InputError as e:
        failed = True
        st.error(md(e))
        if isinstance(e, datasets.SeedsInvalid):
            st.markdown(f"**{len(e.issues)} problem(s) in {e.bad_records} of {e.records} records.** "
                        "Fix them below, fix the file, or choose *Drop invalid seeds* to continue with the "
                        "valid ones only.")
            st.dataframe(datasets.seed_issue_rows(e), hide_index=True, key="design_issues_stop")
            fix_rows = datasets.seed_fix_rows(e)
            if fix_rows:
                st.markdown(
                    "**Fix them here**: edit each record's JSON (empty it to drop that seed), then use the fixed "
                    "seeds. The file itself is not changed."
                )
                fixed = st.data_editor(fix_rows, hide_index=True, disabled=["line", "problems"],
                                       key=f"design_fix_{hash(signature)}",
                                       column_config={"record": st.column_config.TextColumn("Record (JSON)", width="large")})
                if st.button("Use the fixed seeds", key="design_fix_apply", icon=":material/build:"):
                    try:
                        dataset = datasets.apply_seed_fixes(e, pd.DataFrame(fixed).to_dict("records"), label)
                    except datasets.SeedsInvalid as still:
                        st.error(f"{md(still)}: see the problems below.")
                        st.dataframe(datasets.seed_issue_rows(still), hide_index=True, key="design_issues_fix")
                    except InputError as bad:
                        st.error(md(bad))
                    else:
                        st.session_state.dataset = dataset
                        st.session_state.dataset_label = f"{label} (fixed here)"
                        st.session_state.dataset_signature = signature
                        st.session_state.sample_result = None
                        st.rerun()
        if st.session_state.get("dataset") is not None:
            st.caption(f"The other pages still use the previous dataset ({md(st.session_state.dataset_label)}).")
    else:
        st.session_state.dataset = dataset
        st.session_state.dataset_label = label
        st.session_state.dataset_signature = signature
        st.session_state.sample_result = None  # results of another dataset
        st.session_state.set_dependencies = {}  # another dataset's dependencies name other fields

dataset = st.session_state.get("dataset")
if dataset is None:
    if not failed:
        st.info("Nothing loaded yet. Pick a **demo dataset** above, or switch to **Upload files** and bring "
                "a JSON Schema (any draft from 04 to 2020-12, the root an object with properties) and seed records "
                "as JSONL (one object per line), a JSON array of objects, or CSV with a header row.")
    st.stop()
if failed:
    st.stop()

# ---- the dataset ---------------------------------------------------------------------------------
st.subheader(md(st.session_state.get("dataset_label") or "Dataset"))
summary = datasets.dataset_summary(dataset)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Seeds", summary["seeds"])
m2.metric("Dropped seeds", summary["dropped"])
m3.metric("Holdout", "—" if summary["holdout"] is None else summary["holdout"])
m4.metric("Leaf fields", summary["fields"])

st.text_area(
    "Task description",
    key="prompt_text",
    persist_state="session",
    placeholder="What should the records be like? e.g. 'Field observations of penguin groups; realistic "
                "measurements, varied islands.'",
    help="The text half of the prompt. The embedded model takes its instruction from the scaffold and "
    "the seeds; agents and text-conditioned generators read this text.",
)

st.text_area("Judge rubric", key="rubric_text", persist_state="session", height=110,
             help="What an LLM judge accepts and rejects, in plain words (read in the combined and llm judge modes). "
             "Exact checks (JSON, schema, duplicates, seed and near copies) are applied in code first; the "
             "embedded plausibility judge decides from evidence fitted on the seeds and reads no rubric.")

for note in dataset.schema.notes:
    st.warning(f"Schema note: {md(note)}")

for title, records in (("seeds", dataset.seeds), ("holdout records", dataset.holdout)):
    if records is None or not records.issues:
        continue
    kept = len(records.records)
    st.warning(
        f"Dropped {records.dropped} invalid {title} ({len(records.issues)} problem(s)); {kept} kept. Choose *Stop on "
        "invalid seeds* to refuse the file instead."
    )
    st.dataframe(datasets.seed_issue_rows(records), hide_index=True, key=f"design_issues_{title.split()[0]}")
if not dataset.seeds.issues:
    st.caption(f"All {summary['seeds']} seeds are valid against the schema.")

string_modes = dict(st.session_state.get("set_string_modes") or {})
try:
    preview, preview_error = design.scaffold_preview(dataset, string_modes), None
except InputError as e:
    preview, preview_error = None, e

dep_settings = dict(st.session_state.get("set_dependencies") or {})
try:
    deps, deps_error = design.dataset_dependencies(dataset, dep_settings), None
except InputError as e:  # settings made for other seeds (fixed below, or reset by loading a dataset)
    deps, deps_error, dep_settings = design.dataset_dependencies(dataset), e, {}

fields_tab, deps_tab, stats_tab, scaffold_tab, judge_tab, seeds_tab = st.tabs(
    ["Fields", "Dependencies", "Seed statistics", "Scaffold", "Judge calibration", "Seeds"]
)
with fields_tab:
    st.caption(
        "**dependencies**: which field fixes this one in the seeds, the keys it belongs to (see the Dependencies tab). "
        "**notes**: what the scaffold does not enforce there, or approximates (records are still validated against "
        "the whole schema)."
    )
    st.dataframe(fields.field_table(dataset.schema, preview.notes if preview else (), deps), hide_index=True,
                 key="design_fields")
with deps_tab:
    st.caption("Facts the seeds show exactly. A **dependency** A → B: every value of A comes with one B (a country's "
               "ISO code). A **key**: fields no two seeds share (a country and a year), so a new record should not "
               "reuse one. The embedded generator decides A first and writes B from the seeds' map, and never "
               "completes a seed's key; the judge rejects a record that breaks a dependency. Untick what does not "
               "hold; add what the seeds show too rarely to be found.")
    generator = (st.session_state.get("set_generator") or "embedded").strip()
    note = conditioning_note(generator)
    if note:
        st.info(f"The current generator is {md_code(generator)}: {md(note)}.")
    if deps_error is not None:
        st.error(md(deps_error))
    for line in deps.notes:
        st.warning(md(line))
    mode = st.radio("Dependencies", ["auto", "off"], horizontal=True, key="design_dep_mode",
                    index=0 if dep_settings.get("mode", "auto") == "auto" else 1,
                    format_func={"auto": "Use them", "off": "Off: neither kept nor checked"}.get)
    if mode == "off":
        st.caption("Off: the generator keeps none of these and the judge checks none; the ticks apply again when "
                   "they are used.")
    rows = design.dependency_rows(dataset, dep_settings)
    if rows:
        edited = st.data_editor(rows, hide_index=True, key=f"design_deps_{hash(str(sorted(dep_settings.items())))}",
                                disabled=["kind", "rule", "source", "evidence", "holdout breaking it"])
    else:
        edited = []
        st.caption("The seeds show no dependency or key.")
    added = st.text_input("Add dependencies or keys, separated by ';' (e.g. `$.city -> $.state; ($.site, $.date)`)",
                          value="; ".join(dep_settings.get("add") or []), key="design_dep_add")
    try:
        chosen = design.dependency_settings_from(list(edited), mode, [a.strip() for a in added.split(";")])
        design.dataset_dependencies(dataset, chosen)  # a field these seeds lack is refused here, nothing kept
    except InputError as e:
        st.error(md(e))
    else:
        if chosen != {**{"mode": "auto", "ignore": [], "add": []}, **dep_settings}:
            st.session_state.set_dependencies = chosen
            st.rerun()
with stats_tab:
    st.dataframe(fields.seed_stats(dataset.seeds.records, dataset.schema), hide_index=True, key="design_stats")
with scaffold_tab:
    st.caption("The canvas the diffusion model fills: structure is fixed, ▮ are value symbols, ▦ word pieces, "
               "◆ a number's bin (its magnitude, decided first), ⟨a|b⟩ one-token choices, `?` optional keys, "
               "⟨len a..b⟩ array lengths.")
    if preview_error is not None:
        st.error(md(preview_error))
    else:
        rows = design.string_field_rows(dataset, string_modes)
        if rows:
            st.markdown("**String fields**: a field whose seed values repeat is a choice among them (vocabulary); "
                        "free text is written in word pieces trained on the seeds; codes with a pattern letter by "
                        "letter. Override a field's choice here (embedded generator).")
            generator = (st.session_state.get("set_generator") or "embedded").strip()
            if generator != "embedded":
                st.caption(f"The current generator is {md_code(generator)}: these choices apply to `embedded` only.")
            edited = st.data_editor(
                rows,
                hide_index=True,
                key=f"design_string_modes_{hash(tuple(sorted(string_modes.items())))}",
                disabled=["field", "values", "distinct", "default", "written as"],
                column_config={
                    "override": st.column_config.SelectboxColumn("override", options=["", "vocabulary", "text", "chars"])
                },
            )
            chosen = {r["field"]: r["override"] for r in edited if r.get("override")}
            if chosen != string_modes:
                st.session_state.set_string_modes = chosen
                st.rerun()
        st.code(preview.skeleton, language=None, wrap_lines=True)
        st.dataframe(preview.slots, hide_index=True, key="design_slots")
        for note in preview.notes:
            st.warning(f"Scaffold note: {md(note)}")
with judge_tab:
    st.caption("The embedded judge is fitted on these seeds: rules for every field, pair of fields and the whole "
               "record, calibrated by cross-validation so that the chosen share of real records is accepted.")
    share = float(st.session_state.get("set_accept_share", 0.9))
    key = (st.session_state.get("dataset_signature"), share)
    calib = st.session_state.get("judge_calibration")
    if calib is None or calib[0] != key:
        if st.button("Calibrate the judge on these seeds", key="design_calibrate", icon=":material/balance:"):
            bar = st.progress(0.0, text="Fitting the judge's evidence on the seeds")
            try:
                result = design.judge_calibration(dataset, accept_share=share,
                                                  on_progress=lambda d, t: bar.progress(d / max(t, 1), text=f"Fold {d}/{t}"))
            except InputError as e:
                st.error(md(e))
            else:
                st.session_state.judge_calibration = (key, result)
                st.rerun()
    else:
        result = calib[1]
        c = result.summary
        k1, k2, k3, k4 = st.columns(4)
        k1.metric(
            "Held-out seeds accepted",
            f"{c['heldout_accept_rate']:.0%}",
            help=f"target {c['accept_share_target']:.0%}: the threshold from half of the cross-validation folds, "
                 "applied to the other half",
        )
        k2.metric("Holdout accepted",
                  "—" if result.holdout_accept_rate is None else f"{result.holdout_accept_rate:.0%}",
                  help="real records in the dataset's holdout file, never seen by the judge")
        k3.metric("Evidence rules", c["rules"])
        k4.metric("Fit", f"{c['fit_seconds']:.1f} s" + (" (cached)" if c.get("cached") else ""))
        st.caption(f"Accept threshold: score ≥ {c['threshold_score']:.3f} (the share of real records at least as "
                   f"unusual). Rules by kind: " + ", ".join(f"{k} {v}" for k, v in c["rule_kinds"].items())
                   + (f". Text evidence uses {md(c['embedder'])}." if c.get("embedder") else "."))
        if result.holdout_rejections:
            st.markdown("**Real holdout records it rejects, and why** (about 1 in 10 is expected)")
            st.dataframe(result.holdout_rejections, hide_index=True, key="design_judge_rejections")
        with st.expander("Every evidence rule"):
            st.dataframe(result.rules, hide_index=True, key="design_judge_rules")
with seeds_tab:
    st.dataframe(datasets.records_preview(dataset.seeds.records), hide_index=True, key="design_seeds")

st.page_link("pages/sample.py", label="Next: sample records", icon=":material/arrow_forward:")
