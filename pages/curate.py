"""Curate: every candidate with its verdict; override the agents, search, inspect one record."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from aod_core.errors import InputError
from aod_core.studio import runview
from aod_core.studio.markup import md, md_code
from ui.state import require_run

st.title("Curate")
store, job = require_run()

rows = runview.candidate_rows(store)
summary = runview.run_summary(store)
st.caption(f"Run **{md(store.path.name)}** · {len(rows)} candidates from {summary['iterations_done']} finished "
           f"iteration(s) · {summary['accepted']} accepted by the agents · {summary['curated']} after your "
           f"{summary['overrides']} override(s). Overrides are saved in the run folder and used by every export.")
if not rows:
    st.info("No finished iteration yet: candidates appear here when the first iteration is committed.")
    st.stop()

f1, f2, f3 = st.columns([1, 2, 2])
decision = f1.selectbox("Show", ["all", "accept", "reject", "overridden"], key="curate_decision",
                        help="accept / reject: the decision that counts now (the agents' or yours).")
iterations = sorted({r["iteration"] for r in rows})
chosen = f2.multiselect("Iterations", [i + 1 for i in iterations], key="curate_iterations", placeholder="all")
search = f3.text_input("Search records and reasons", key="curate_search", placeholder="e.g. Torgersen")
shown = runview.filter_rows(rows, decision=decision, iterations=[i - 1 for i in chosen], search=search)
st.caption(
    f"{len(shown)} of {len(rows)} candidates shown. Change **Override** to accept or reject a record yourself; clear "
    "it to go back to the agents' decision."
)

table = pd.DataFrame(shown, columns=list(rows[0]))
table["iteration"] = table["iteration"] + 1
# The editor keeps edits by row position, so a new filter or an applied change needs a fresh editor.
version = st.session_state.setdefault("curate_version", 0)
editor_key = f"curate_table-{version}-{decision}-{chosen}-{search}"
for message in st.session_state.pop("curate_errors", []):
    st.error(f"Override refused: {md(message)}")
edited = st.data_editor(
    table,
    key=editor_key,
    hide_index=True,
    disabled=[c for c in table.columns if c != "override"],
    column_order=[
        "iteration",
        "index",
        "decision",
        "override",
        "verdict",
        "score",
        "reasons",
        "schema_errors",
        "record",
    ],
    column_config={
        "override": st.column_config.SelectboxColumn("Override", options=["", "accept", "reject"]),
        "score": st.column_config.ProgressColumn("Judge score", min_value=0.0, max_value=1.0),
        "schema_errors": st.column_config.NumberColumn("Schema errors"),
        "record": st.column_config.TextColumn("Record", width="large"),
    },
)
changes = runview.override_changes(table["key"], table["override"], edited["override"])
if changes:
    st.session_state.curate_errors = runview.apply_overrides(store, changes)
    st.session_state.curate_version = version + 1
    st.rerun()

st.subheader("Record detail")
key = st.selectbox(
    "Candidate",
    [r["key"] for r in shown],
    key="curate_detail",
    format_func=lambda k: "iteration {}, #{}".format(int(k.split(":")[0]) + 1, k.split(":")[2]),
)
if key:
    c = runview.candidate_detail(store, key)
    b1, b2, b3, _ = st.columns([1.4, 1.4, 1.1, 2])
    choice = None
    if b1.button("Accept this record", key="curate_accept", icon=":material/check:"):
        choice = ("accept",)
    if b2.button("Reject this record", key="curate_reject", icon=":material/close:"):
        choice = ("reject",)
    if b3.button("Clear override", key="curate_clear", disabled=not c.get("override")):
        choice = (None,)
    if choice is not None:
        try:
            runview.override(store, key, choice[0])
        except InputError as e:
            st.error(f"Override refused: {md(e)}")
        else:
            st.session_state.curate_version = version + 1
            st.rerun()
    d1, d2 = st.columns(2)
    with d1:
        st.markdown(f"**Verdict:** {md(c.get('verdict'))} (by {md(c.get('judged_by'))}) · "
                    f"**score:** {md(c.get('score'))} · **accepted:** {md(c.get('accepted'))} · "
                    f"**your override:** {md(c.get('override') or '—')}")
        st.markdown("**Judge's reasons**")
        for r in c.get("reasons") or ["(none)"]:
            st.markdown(f"- {md(r)}")
        checks = c.get("checks") or {}
        errs = checks.get("schema_errors") or []
        st.markdown("**Exact checks**")
        st.markdown(md(f"parses: {checks.get('parses')} · duplicate in batch: {checks.get('duplicate')} · "
                       f"copy of a seed: {checks.get('seed_copy')} · near copy: {checks.get('near_copy', False)} · "
                       f"field overlap with nearest seed: {checks.get('field_overlap')}"))
        if errs:
            st.markdown("**Schema errors**")
            for e in errs:
                st.markdown(f"- {md_code(e)}")
        if checks.get("near_copy"):
            st.markdown(f"**Near copy** of {md(checks.get('near_copy_of'))} (shingle Jaccard "
                        f"{md(checks.get('near_copy_similarity'))})")
        evidence = c.get("evidence")
        if evidence:
            st.markdown(
                f"**Plausibility evidence:** score {md(evidence['score'])} (the share of real records at least as "
                "unusual as this one)"
            )
            if evidence.get("findings"):
                st.dataframe(
                    [
                        {
                            "finding": f["text"],
                            "rarer than": f"{1 - f['rarity']:.1%} of real records",
                            "rule": f["rule"],
                        }
                        for f in evidence["findings"]
                    ],
                    hide_index=True,
                    key="curate_evidence",
                )
            else:
                st.caption("No rule finds anything unusual about it.")
    with d2:
        if c.get("record") is not None:
            st.code(json.dumps(c["record"], indent=2, ensure_ascii=False), language="json")
        else:
            st.markdown(f"**Not a record** ({md(c.get('decode_error'))}). Raw output:")
            st.code(c.get("text", ""), language=None)
