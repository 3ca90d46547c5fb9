"""A run as one self-contained HTML page for stakeholders (``aod report``, the app's download).

The page works offline: plotly.js is embedded once, with the first figure. Records, feedback,
prompts and reasons come from models and users, so every piece of text goes through
``html.escape``; the figures' JSON is escaped by plotly itself (``<`` becomes ``\\u003c``).
"""

from __future__ import annotations

import html
import json
import time
from typing import Any

import plotly.graph_objects as go

from aod_core.agents.optimizer import prompt_summary
from aod_core.canvas.prompt import Prompt
from aod_core.errors import InputError
from aod_core.runs.charts import metric_curves, score_histogram
from aod_core.runs.fingerprint import flatten
from aod_core.runs.store import RunStore, scrub_secrets

SAMPLE_RECORDS = 20
ROLES = {
    "used": "generated this iteration's batch",
    "incumbent_probe": "incumbent, sampled on the probe batch",
    "proposal": "optimizer's edit, sampled on the probe batch",
    "incumbent_confirm": "incumbent, sampled on the second probe batch (confirming the probe's winner)",
    "proposal_confirm": "the probe's winning edit, sampled on the second probe batch",
    "next": "chosen for the next iteration",
    "compiled": "instruction text compiled into scaffold edits (for a generator that cannot read text)",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto; max-width: 1200px;
       padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.2rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.status { display: inline-block; padding: .1rem .6rem; border-radius: 1rem; background: #eef; font-size: .9rem; }
.muted { color: #666; font-size: .9rem; }
.cards { display: flex; gap: 1rem; flex-wrap: wrap; }
.card { border: 1px solid #ddd; border-radius: .5rem; padding: .6rem 1rem; min-width: 9rem; }
.card b { display: block; font-size: 1.5rem; }
table { border-collapse: collapse; width: 100%; font-size: .85rem; }
th, td { border: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
pre, code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .82rem; }
pre { background: #f7f7f7; padding: .6rem; border-radius: .4rem; overflow-x: auto; white-space: pre-wrap; }
td code { white-space: pre-wrap; word-break: break-word; }
.error { color: #b00; }
"""


def _e(value: Any) -> str:
    """Any value as escaped text (None as an empty cell)."""
    return "" if value is None else html.escape(value if isinstance(value, str) else str(value))


def _json(value: Any, indent: int | None = 2) -> str:
    return html.escape(json.dumps(value, indent=indent, ensure_ascii=False, default=str))


def _num(value: Any, fmt: str = ".3f") -> str:
    return format(value, fmt) if isinstance(value, (int, float)) and not isinstance(value, bool) else "–"


def _figure(fig: go.Figure, first: bool) -> str:
    # plotly.js (~4 MB) is embedded inline once, with the first figure: the page works offline
    return fig.to_html(full_html=False, include_plotlyjs=bool(first), config={"displaylogo": False})


def _prompt_cell(p: Any) -> str:
    if p is None:
        return ""
    try:
        return f"<code>{_e(prompt_summary(Prompt.from_dict(p)))}</code>"
    except (InputError, TypeError, ValueError):  # an unreadable row is shown raw, not dropped
        return f"<code>{_json(p, None)}</code>"


def _prompt_rows(prompts: list[dict[str, Any]]) -> str:
    rows = []
    for r in prompts:
        notes = []
        if r.get("edit"):
            notes.append(f"edit <code>{_json(r['edit'], None)}</code>")
        if r.get("rationale"):
            notes.append(f"rationale: {_e(r['rationale'])}")
        if r.get("error"):
            notes.append(f'<span class="error">error: {_e(r["error"])}</span>')
        if r.get("role") == "compiled":
            from aod_core.studio.runview import compiled_summary

            notes.append(_e(f"for the {r.get('for', '')} prompt, " + compiled_summary(r)))
        it = r.get("iteration")
        role = r.get("role")
        rows.append(
            f"<tr><td>{_e(it + 1 if isinstance(it, int) else it)}</td>"
            f'<td title="{_e(ROLES.get(role, ""))}">{_e(role)}</td><td>{_e(r.get("author"))}</td>'
            f"<td>{_num(r.get('reward'))}</td><td>{_prompt_cell(r.get('prompt'))}</td><td>{'<br>'.join(notes)}</td></tr>"
        )
    return "\n".join(rows)


def build_report(store: RunStore, *, overrides: dict | None = None) -> str:
    """The run as a self-contained HTML page (committed iterations only).

    ``overrides`` is for callers that already hold newer data than the folder: for now only
    ``{"accepted": [records]}``, used instead of ``store.accepted()`` for the count and the sample
    (e.g. the app during a live run); other keys are ignored."""
    overrides = overrides or {}
    accepted = list(overrides["accepted"]) if "accepted" in overrides else store.accepted()
    state = store.state()
    metrics = store.metrics()
    candidates = store.candidates()
    last = metrics[-1] if metrics else {}
    name = store.path.resolve().name

    parts = [
        f"<h1>AoD run report: {_e(name)}</h1>",
        f'<p><span class="status">status: {_e(state.get("status", "unknown"))}</span> '
        f'<span class="muted">report generated {_e(time.strftime("%Y-%m-%d %H:%M:%S"))} '
        f"from {_e(store.path.resolve())}; iterations are numbered from 1</span></p>",
    ]

    cards = [
        ("iterations done", store.iterations_done()),
        ("accepted records", len(accepted)),
        ("candidates judged", len(candidates)),
        ("last reward", _num(last.get("reward"))),
        ("last task success rate", _num(last.get("task_success_rate"), ".1%")),
    ]
    parts.append(
        '<h2>Summary</h2><div class="cards">'
        + "".join(f'<div class="card"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in cards)
        + "</div>"
    )

    parts.append("<h2>Metrics</h2>" + _figure(metric_curves(metrics), first=True))
    parts.append("<h2>Judge scores</h2>" + _figure(score_histogram(candidates), first=False))

    prompts = store.prompts()
    parts.append("<h2>Prompt history</h2>")
    if prompts:
        legend = "; ".join(f"<b>{_e(k)}</b>: {_e(v)}" for k, v in ROLES.items())
        parts.append(
            f'<p class="muted">{legend}. Rewards of probe rows are on the probe batch.</p>'
            "<table><tr><th>iteration</th><th>role</th><th>author</th><th>reward</th><th>prompt</th>"
            f"<th>edit / rationale / error</th></tr>\n{_prompt_rows(prompts)}</table>"
        )
    else:
        parts.append('<p class="muted">No prompts recorded yet.</p>')

    feedback = store.feedback()
    parts.append("<h2>Judge feedback</h2>")
    if feedback:
        for f in feedback:
            it = f.get("iteration")
            parts.append(
                f"<h3>Iteration {_e(it + 1 if isinstance(it, int) else it)}</h3><pre>{_e(f.get('feedback') or '(none)')}</pre>"
            )
    else:
        parts.append('<p class="muted">No feedback recorded yet.</p>')

    shown = accepted[:SAMPLE_RECORDS]
    parts.append(f"<h2>Accepted records ({len(shown)} of {len(accepted)} shown)</h2>")
    parts.extend(f"<pre>{_json(r)}</pre>" for r in shown)
    if not shown:
        parts.append('<p class="muted">No accepted records yet.</p>')

    config = dict(store.config)
    fp, changed = config.pop("fingerprint", None), config.pop("fingerprint_changes", None) or []
    parts.append("<h2>Reproducibility</h2>")
    if fp:
        parts.append(
            '<p class="muted">What decides this run\'s output, recorded when it started (fingerprint.py): '
            "input, weight and model-file hashes, package versions, device and seed.</p>"
            "<table><tr><th>part</th><th>value</th></tr>"
            + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in flatten(fp).items())
            + "</table>"
        )
    else:
        parts.append('<p class="muted">No fingerprint recorded (the run was never opened by this version).</p>')
    for c in changed:
        it = c.get("iteration")
        parts.append(
            f"<p><b>Resumed after iteration {_e(it)} with changes:</b></p><ul>"
            + "".join(f"<li>{_e(x)}</li>" for x in c.get("changes", []))
            + "</ul>"
        )
    if fp and not changed:
        parts.append('<p class="muted">Nothing changed between the start and any resume.</p>')

    parts.append(f"<h2>Configuration</h2><pre>{_json(scrub_secrets(config))}</pre>")

    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>AoD run report: {_e(name)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
