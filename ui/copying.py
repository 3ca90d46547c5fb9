"""The copying figures and broken dependencies of a batch of records, as one row of metrics
(Sample, Run and Export pages; ``aod_core/eval/copying.py`` computes them)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from aod_core.studio.markup import md


def show_copying(fig: dict[str, Any] | None, violations: float | None = None) -> None:
    fig = fig or {}
    c1, c2, c3, c4 = st.columns(4)
    real = "held-out" if fig.get("reference") == "holdout" else "seed (measured against the other seeds)"
    close = fig.get("closer_than_reference_p05")
    c1.metric(
        "Closer to a seed than real",
        "—" if close is None else f"{close:.0%}",
        help=f"Records closer to a seed than 95% of real {real} records are; about 5% for records as new as real "
        "ones, near 100% for perturbed seeds.",
    )
    ratio = fig.get("dcr_median_ratio")
    c2.metric(
        "Distance to seeds vs real",
        "—" if ratio is None else f"{ratio:.2f}×",
        help="The median distance to the closest seed over that of real records (numbers scaled to the seeds' range, "
        "categories one-hot): about 1 for new records, near 0 for copies.",
    )
    reuse = fig.get("key_reuse")
    c3.metric(
        "Reused keys",
        "—" if reuse is None else f"{reuse:.0%}",
        help=(
            f"Records whose {' or '.join(md(k) for k in fig.get('keys') or [])} a seed already has "
            f"(real records: {fig.get('reference_key_reuse') or 0:.0%})."
            if fig.get("keys")
            else "The seeds show no key (fields no two seeds share)."
        ),
    )
    c4.metric(
        "Broken dependencies",
        "—" if violations is None else f"{violations:.0%}",
        help="Records with a field the seeds fix by another (a country's ISO code) holding another value than the "
        "seeds'. The Design page's Dependencies tab lists them.",
    )
