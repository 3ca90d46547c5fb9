"""Export: the accepted records (with your overrides) as files, and an HTML report for stakeholders."""
from __future__ import annotations

import streamlit as st

from aod_core import runview
from aod_core.errors import InputError
from aod_core.export import FORMATS, MIME_TYPES, render
from aod_core.report import build_report
from ui.state import require_run

st.title("Export")
store, job = require_run()

summary = runview.run_summary(store)
records = store.curated()
st.caption(f"Run **{store.path.name}** · status `{summary['status']}` · {summary['iterations_done']} finished "
           f"iteration(s). Exports hold the records of finished iterations only.")
m1, m2, m3 = st.columns(3)
m1.metric("Accepted by the agents", summary["accepted"])
m2.metric("Your overrides", summary["overrides"])
m3.metric("Records to export", len(records))

st.subheader("Records")
if not records:
    st.info("Nothing to export yet: no record has been accepted. Accept records on the Curate page, or let "
            "the run go on.")
else:
    st.caption("JSONL keeps each record as generated. CSV and Parquet have one column per leaf field (arrays as "
               "JSON text); CSV cells that a spreadsheet would run as a formula are prefixed with a quote.")
    cols = st.columns(len(FORMATS))
    for col, fmt in zip(cols, FORMATS):
        try:
            data = render(records, fmt)
        except InputError as e:
            col.error(f"{fmt.upper()}: {e}")
            continue
        col.download_button(f"Download {fmt.upper()}", data, file_name=f"{store.path.name}.{fmt}",
                            mime=MIME_TYPES[fmt], key=f"export_{fmt}", icon=":material/download:", on_click="ignore")

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
        st.caption(note)

st.subheader("Run report")
st.caption("One self-contained HTML page (works offline): configuration without secrets, prompt history, metric "
           "charts, the judge's feedback and sample records.")
if st.button("Build report", key="export_report_build", icon=":material/description:"):
    with st.spinner("Building the report…"):
        st.session_state.export_report_html = (store.path.name, build_report(store, overrides={"accepted": records}))
built = st.session_state.get("export_report_html")
if built and built[0] == store.path.name:
    st.download_button("Download report (HTML)", built[1].encode("utf-8"), file_name=f"{store.path.name}-report.html",
                       mime="text/html", key="export_report_download", icon=":material/download:", on_click="ignore")
