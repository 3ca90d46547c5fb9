"""Export: the accepted records (with your overrides) as files, and an HTML report for stakeholders."""

from __future__ import annotations

import os

import streamlit as st

from aod_core.data.export import FORMATS, MIME_TYPES, render
from aod_core.errors import InputError
from aod_core.runs import bulk
from aod_core.runs.report import build_report
from aod_core.studio import runview
from aod_core.studio.markup import md, md_code
from ui.copying import show_copying
from ui.state import registry, require_run

st.title("Export")
store, job = require_run()

summary = runview.run_summary(store)
records = store.curated()
st.caption(f"Run **{md(store.path.name)}** · status {md_code(summary['status'])} · "
           f"{summary['iterations_done']} finished iteration(s). Exports hold the records of finished iterations only.")
m1, m2, m3 = st.columns(3)
m1.metric("Accepted by the agents", summary["accepted"])
m2.metric("Your overrides", summary["overrides"])
m3.metric("Records to export", len(records))

if records:
    st.caption("How new the records to export are: their distance to the closest seed against that of real records "
               "(each seed's to the other seeds), the seeds' keys they reuse, and the dependencies they break.")
    show_copying(*runview.copying_figures(store, records))

st.subheader("Records")
if not records:
    st.info("Nothing to export yet: no record has been accepted. Accept records on the Curate page, or let the run "
            "go on.")
else:
    st.caption("JSONL keeps each record as generated. CSV and Parquet have one column per leaf field (arrays as "
               "JSON text); CSV cells that a spreadsheet would run as a formula are prefixed with a quote.")
    cols = st.columns(len(FORMATS))
    for col, fmt in zip(cols, FORMATS):
        try:
            data = render(records, fmt)
        except InputError as e:
            col.error(f"{fmt.upper()}: {md(e)}")
            continue
        col.download_button(f"Download {fmt.upper()}", data, file_name=f"{store.path.name}.{fmt}", mime=MIME_TYPES[fmt],
                            key=f"export_{fmt}", icon=":material/download:", on_click="ignore")

st.subheader("Audit")
st.caption("The Data Auditor metrics of the records to export against the run's seeds: validity, copies, "
           "near-duplicates, diversity, distance to the seeds and per-field fidelity.")
if records and st.button("Audit the records to export", key="export_audit", icon=":material/query_stats:"):
    with st.spinner("Auditing…"):
        st.session_state.export_audit_rows = (store.path.name, len(records), *runview.audit_rows(store, records))
audited = st.session_state.get("export_audit_rows")
if audited and audited[0] == store.path.name:
    st.caption(f"{audited[1]} records audited.")
    st.dataframe(audited[2], hide_index=True, key="export_audit_table",
                 column_config={"value": st.column_config.NumberColumn(format="%.3f")})
    for note in audited[3]:
        st.caption(md(note))

st.subheader("Run report")
st.caption(
    "One self-contained HTML page (works offline): configuration without secrets, prompt history, metric charts, the "
    "judge's feedback and sample records."
)
if st.button("Build report", key="export_report_build", icon=":material/description:"):
    with st.spinner("Building the report…"):
        st.session_state.export_report_html = (store.path.name, build_report(store, overrides={"accepted": records}))
built = st.session_state.get("export_report_html")
if built and built[0] == store.path.name:
    st.download_button("Download report (HTML)", built[1].encode("utf-8"), file_name=f"{store.path.name}-report.html",
                       mime="text/html", key="export_report_download", icon=":material/download:", on_click="ignore")

st.subheader("Bulk generate")
st.caption("Many new records from this run's current best prompt and its fitted generator, as a Ray Data "
           "pipeline (one generator replica per worker) on a private local Ray instance or on a cluster. Every "
           "record passes the exact checks and the judge; duplicates and near-duplicates across shards are removed; "
           "the output folder gets sharded Parquet + JSONL, a manifest and an audit of a sample. Stopped or failed "
           "jobs continue where they were when started again with the same settings (finished shards are kept).")
bjob = registry().get_bulk(store.path)
with st.form("bulk_form", border=False):
    c1, c2, c3, c4 = st.columns(4)
    n = c1.number_input("Records", min_value=1, value=1000, step=100, key="bulk_n")
    workers = c2.number_input("Workers", min_value=1, value=os.cpu_count() or 1, key="bulk_workers",
                              help="generator replicas, one per Ray actor")
    batch = c3.number_input("Batch", min_value=1, value=bulk.BulkSettings(n=1).batch, key="bulk_batch",
                            help="candidates per sampling call in a worker")
    judge = c4.text_input("Judge", value="", key="bulk_judge", placeholder="the run's judge",
                          help="a chat model spec, or none for the exact checks only")
    c5, c6 = st.columns(2)
    out = c5.text_input("Output folder", value=runview.default_bulk_out(store.path), key="bulk_out",
                        help=f"A folder inside the runs folder ({md_code(runview.runs_root())}), named relative to it.")
    address = c6.text_input("Ray cluster", value="", key="bulk_ray", placeholder="local instance",
                            help="an address (host:port, ray://host:10001, auto); empty: a private local Ray instance")
    go = st.form_submit_button("Start bulk generation", icon=":material/rocket_launch:", disabled=bool(bjob and bjob.active))
if go:
    try:
        bjob = registry().start_bulk(
            store.path,
            out,
            bulk.BulkSettings(n=int(n), workers=int(workers), batch=int(batch), judge=judge.strip() or None,
                              ray=address.strip() or None),
        )
    except InputError as e:
        st.error(md(e))


@st.fragment(run_every=1.0 if bjob and bjob.active else None)
def bulk_panel() -> None:
    job = registry().get_bulk(store.path)
    if job is None:
        return
    v = job.view()
    p = v["progress"] or {}
    st.caption(f"Bulk job → {md_code(v['out'])} · status "
               f"{md_code(v['status'])}" + (f" · {md(p.get('message'))}" if p.get("message") else ""))
    if p:
        st.progress(min(1.0, p["records"] / max(1, p["target"])),
                    text=f"{min(p['records'], p['target'])}/{p['target']} records ({p['stage']})")
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Records/s", f"{p['records_per_s']:.1f}")
        m2.metric("Accepted share", "–" if p["accepted_share"] is None else f"{p['accepted_share']:.0%}")
        m3.metric("ETA", "–" if p["eta_s"] is None else f"{p['eta_s']:.0f} s")
        m4.metric("Shards", f"{p['shards_done']}/{p['shards_total']}")
    if job.active and st.button("Stop after the next shard", key="bulk_stop", icon=":material/stop:"):
        job.stop()
    if v["error"]:
        (st.warning if v["status"] == "stopped" else st.error)(md(v["error"]))
    manifest = v["manifest"]
    if manifest:
        st.success(f"{manifest['records']} unique records in {len(manifest['shards'])} shards · "
                   f"{manifest['records_per_s'] or 0:.1f} records/s · accepted {manifest['accepted_share'] or 0:.0%} "
                   "of "
                   f"{manifest['candidates']} candidates")
        st.dataframe(bulk.shard_rows(manifest), hide_index=True, key="bulk_shards")
        with st.expander("Manifest"):
            st.json(manifest, expanded=False)


bulk_panel()
