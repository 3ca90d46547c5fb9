"""Read-side views of run folders (and ``aod bench`` output folders) for the app's Run, Curate,
Export and Runs pages.

Everything here reads a ``RunStore`` (committed iterations only, so a live run can be read at any
moment) and returns plain rows or text; pages only lay them out. Curation decisions go through
:func:`override` so that an accept override can never put a record into an export that the
schema would refuse.
"""

from __future__ import annotations

import difflib
import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aod_core.agents.optimizer import prompt_summary
from aod_core.canvas.prompt import Prompt
from aod_core.errors import InputError
from aod_core.runs.store import RunStore, candidate_key


def runs_root() -> Path:
    """Where the app keeps its runs: ``AOD_RUNS_DIR`` or ``./runs``."""
    return Path(os.environ.get("AOD_RUNS_DIR") or Path.cwd() / "runs")


def new_run_dir(label: str, root: Path | None = None) -> Path:
    """A fresh, readable, unique folder name: time, dataset, a short random part."""
    root = root or runs_root()
    root.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")[:40] or "run"
    return root / f"{time.strftime('%Y%m%d-%H%M%S')}-{slug}-{uuid.uuid4().hex[:4]}"


#: What a run folder's name in a URL may be: what ``new_run_dir`` and most ``aod run --out`` folders
#: are. Anything else (a path, a 300-character name the file system refuses) is not looked up at all.
RUN_NAME = re.compile(r"[\w\- ][\w.\- ]{0,127}")


def resolve_run(name: str, root: Path | None = None) -> Path:
    """A run folder named in a URL (``?run=NAME``): a plain folder name inside the runs root."""
    root = (root or runs_root()).resolve()
    # bytes too: 128 non-ASCII letters can pass the folder-name limit of 255 bytes
    if not RUN_NAME.fullmatch(name or "") or len(name.encode("utf-8")) > 255:
        shown = name if len(name or "") <= 40 else name[:40] + "…"
        raise InputError(
            f"not a run name: {shown!r} (a run folder's name: up to 128 letters, digits, spaces, '.', '_' or '-', "
            "not starting with '.')"
        )
    path = root / name
    if not (path / "config.json").is_file():
        raise InputError("no such run", where=str(path))
    return path


def bulk_out_dir(value: str | os.PathLike, root: Path | None = None) -> Path:
    """The app's bulk output folder from its Export page field: a name relative to the runs root
    (``RUN/bulk``), or an absolute path inside it. Whoever reaches the app writes only where its runs
    are; the CLI's ``aod generate --out`` stays free (its user can write anywhere already)."""
    root = (root or runs_root()).resolve()
    text = str(value).strip()
    inside = f"inside the runs folder {root}, named relative to it (e.g. 'RUN/bulk')"
    try:
        # resolved first: '..' and symlinks are followed before the check, so neither leads out
        path = (root / text).resolve() if text else root
        is_run = (path / "config.json").is_file()
    except (OSError, ValueError) as e:  # a name too long for the file system, a NUL
        raise InputError(f"not a usable output folder ({e}); give a folder {inside}", where=text) from None
    if path == root or root not in path.parents:
        raise InputError(f"the output folder must be a folder {inside}", where=text or "(empty)")
    if is_run:
        raise InputError(f"that is a run folder; give a folder of its own {inside}", where=text)
    return path


def default_bulk_out(run_dir: str | os.PathLike, root: Path | None = None) -> str:
    """What the Export page's output folder field starts with: the run's ``bulk`` folder
    (``aod_core.runs.bulk.default_out``) relative to the runs root, as the field takes it."""
    from aod_core.runs.bulk import default_out

    out = default_out(Path(run_dir).resolve())
    try:
        return str(out.relative_to((root or runs_root()).resolve()))
    except ValueError:  # a run outside the root: its path, which the field will refuse with why
        return str(out)


def status_of(store: RunStore) -> str:
    """The stored status, with 'interrupted' for a run whose process died while it worked."""
    return store.state().get("status", "unknown")


def list_runs(root: Path | None = None) -> list[dict[str, Any]]:
    """One row per run folder under the root, newest first; unreadable folders are listed as such."""
    root = root or runs_root()
    if not root.is_dir():
        return []
    rows = []
    for p in sorted((p for p in root.iterdir() if (p / "config.json").is_file()), key=lambda p: p.name, reverse=True):
        try:
            store = RunStore.open(p, repair=False)
            cfg, metrics = store.config, store.metrics()
            last = metrics[-1] if metrics else {}
            rows.append(
                {
                    "run": p.name,
                    "status": status_of(store),
                    "iterations": f"{len(metrics)}/{cfg.get('loop', {}).get('iterations', '?')}",
                    "accepted": last.get("accepted_total", 0),
                    "reward": last.get("reward"),
                    "tsr": last.get("task_success_rate"),
                    "generator": cfg.get("generator"),
                    "judge": cfg.get("judge"),
                    "updated": time.strftime(
                        "%Y-%m-%d %H:%M", time.localtime(store.state().get("updated", p.stat().st_mtime))
                    ),
                    "error": store.state().get("error"),
                }
            )
        except (OSError, ValueError, InputError) as e:
            rows.append(
                {
                    "run": p.name,
                    "status": "unreadable",
                    "iterations": "",
                    "accepted": 0,
                    "reward": None,
                    "tsr": None,
                    "generator": None,
                    "judge": None,
                    "updated": "",
                    "error": str(e),
                }
            )
    return rows


# ---- prompts ---------------------------------------------------------------------------------


def prompt_text(prompt: dict[str, Any] | None) -> str:
    """A prompt as indented JSON of its non-default parts (what the diffs compare)."""
    if prompt is None:
        return "(no valid prompt)"
    return json.dumps(
        json.loads(prompt_summary(Prompt.from_dict(prompt))), indent=1, sort_keys=True, ensure_ascii=False
    )


def prompt_diff(old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    """Unified diff of two prompts; empty when they are the same."""
    a, b = prompt_text(old).splitlines(), prompt_text(new).splitlines()
    return "\n".join(difflib.unified_diff(a, b, "before", "after", lineterm="", n=1))


def prompt_history(store: RunStore) -> list[dict[str, Any]]:
    """Per iteration: the prompt used, its author and reward, and what changed from the one before."""
    rows, prev = [], None
    for p in store.prompts():
        if p.get("role") != "used":
            continue
        rows.append(
            {
                "iteration": p["iteration"],
                "author": p.get("author", ""),
                "reward": p.get("reward"),
                "prompt": prompt_text(p.get("prompt")),
                "change": prompt_diff(prev, p.get("prompt")) if prev else "",
                "compiled edits": compiled_summary((p.get("prompt") or {}).get("compiled")),
            }
        )
        prev = p.get("prompt")
    return rows


def compiled_summary(compiled: dict[str, Any] | None) -> str:
    """Which edits of a prompt the instruction compiler wrote (and which a human changed), and from
    what text: '' when nothing was compiled."""
    from aod_core.agents.resolver import Edit

    if not compiled:
        return ""
    parts = [f"{Edit.from_dict(e).describe()} [{e.get('author', 'compiler')}]" for e in compiled.get("edits") or []]
    head = f"from {compiled.get('text', '')!r}: "
    return (
        head
        + ("; ".join(parts) if parts else "no edits")
        + (f" ({len(compiled.get('unmapped') or [])} phrase(s) not mapped)" if compiled.get("unmapped") else "")
    )


def proposal_rows(store: RunStore, iteration: int) -> list[dict[str, Any]]:
    """The incumbent and the optimizer's candidates of one iteration with their probe rewards
    (``candidate``: incumbent, proposal from the chat model, or repair read off the findings;
    ``second probe``: the confirming batch's reward, for the incumbent and the probe's winner)."""
    mine = [p for p in store.prompts() if p.get("iteration") == iteration]
    rows = [p for p in mine if p.get("role") in ("incumbent_probe", "proposal")]
    chosen = next((p for p in mine if p.get("role") == "next"), None)
    used = next((p for p in mine if p.get("role") == "used"), None)
    confirm = {p["role"]: p for p in mine if p.get("role") in ("incumbent_confirm", "proposal_confirm")}
    return proposal_table(rows, used and used.get("prompt"), chosen and chosen.get("prompt"), confirm)


def proposal_table(
    rows: list[dict[str, Any]], used: dict | None, chosen: dict | None, confirm: dict[str, dict] | None = None
) -> list[dict[str, Any]]:
    confirm = confirm or {}
    out = []
    for p in rows:
        won = (
            p.get("role") == "proposal" and p.get("prompt") is not None and p.get("prompt") == chosen and chosen != used
        )
        second = None
        if p.get("role") == "incumbent_probe" and "incumbent_confirm" in confirm:
            second = confirm["incumbent_confirm"].get("reward")
        elif p.get("prompt") is not None and p.get("prompt") == confirm.get("proposal_confirm", {}).get("prompt"):
            second = confirm["proposal_confirm"].get("reward")
        out.append(
            {
                "candidate": "incumbent"
                if p.get("role") == "incumbent_probe"
                else ("repair" if p.get("source") == "repair" else "proposal"),
                "reward": p.get("reward"),
                "second probe": second,
                "chosen": won or (p.get("role") == "incumbent_probe" and chosen == used),
                "edit": json.dumps(p.get("edit"), ensure_ascii=False) if p.get("edit") else "",
                "rationale": p.get("rationale") or "",
                "error": p.get("error") or "",
                "diff": prompt_diff(used, p.get("prompt")) if p.get("prompt") is not None else "",
            }
        )
    return out


# ---- candidates and curation -----------------------------------------------------------------


def candidate_rows(store: RunStore, *, include_probes: bool = False) -> list[dict[str, Any]]:
    """Every stored candidate as a table row, with the human override and the effective decision."""
    ov = store.overrides()
    rows = []
    for c in store.candidates():
        if c.get("phase", "main") != "main" and not include_probes:
            continue
        key = candidate_key(c)
        checks = c.get("checks") or {}
        decision = ov.get(key)
        rows.append(
            {
                "key": key,
                "iteration": c.get("iteration"),
                "index": c.get("index"),
                "verdict": c.get("verdict"),
                "score": c.get("score"),
                "accepted": bool(c.get("accepted")),
                "override": decision or "",
                "decision": decision or ("accept" if c.get("accepted") else "reject"),
                "reasons": "; ".join(c.get("reasons") or []),
                "schema_errors": len(checks.get("schema_errors") or []) + (0 if checks.get("parses", True) else 1),
                "record": json.dumps(c["record"], ensure_ascii=False)
                if c.get("record") is not None
                else c.get("text", ""),
            }
        )
    return rows


def filter_rows(
    rows: list[dict[str, Any]], *, decision: str = "all", iterations: list[int] | None = None, search: str = ""
) -> list[dict[str, Any]]:
    """The Curate page's filters: decision (all / accept / reject / overridden), iterations, text search."""
    needle = search.strip().lower()
    out = []
    for r in rows:
        if decision == "overridden" and not r["override"]:
            continue
        if decision in ("accept", "reject") and r["decision"] != decision:
            continue
        if iterations and r["iteration"] not in iterations:
            continue
        if needle and needle not in r["record"].lower() and needle not in r["reasons"].lower():
            continue
        out.append(r)
    return out


def rejection_reason_keys(c: dict[str, Any]) -> list[str]:
    """What a stored candidate was rejected for, as shared keys: an exact check that failed, or the
    judge's findings (the plausibility evidence's keys, else the judge's own reasons). [] if accepted."""
    if c.get("verdict") == "accept":
        return []
    checks = c.get("checks") or {}
    if not checks.get("parses", True):
        return ["does not parse as JSON"]
    if checks.get("schema_errors"):
        return [f"schema error at {e.split(': ', 1)[0]}" for e in checks["schema_errors"][:1]]
    for flag, text in (("seed_copy", "exact copy of a seed"), ("duplicate", "duplicate"), ("near_copy", "near copy")):
        if checks.get(flag):
            return [text]
    findings = ((c.get("evidence") or {}).get("findings") or [])[:3]
    if findings:
        return list(dict.fromkeys(f["key"] for f in findings))
    if c.get("judged_by") == "failed":
        return ["the judge gave no usable answer"]
    return list(dict.fromkeys(str(r) for r in (c.get("reasons") or ["(no reason given)"])[:2]))


def rejection_reasons(store: RunStore) -> list[dict[str, Any]]:
    """Per finished iteration, how many main-batch records each rejection reason covers (a record
    can count under up to three reasons), most frequent first."""
    counts: dict[tuple[int, str], int] = {}
    totals: dict[int, int] = {}
    for c in store.candidates():
        if c.get("phase", "main") != "main":
            continue
        it = int(c.get("iteration", 0))
        totals[it] = totals.get(it, 0) + 1
        for reason in rejection_reason_keys(c):
            counts[(it, reason)] = counts.get((it, reason), 0) + 1
    rows = [
        {"iteration": it + 1, "reason": reason, "records": k, "of": totals[it]} for (it, reason), k in counts.items()
    ]
    return sorted(rows, key=lambda r: (r["iteration"], -r["records"], r["reason"]))


def candidate_detail(store: RunStore, key: str) -> dict[str, Any]:
    """One candidate in full: record or raw text, checks, verdict, judge reasons, schema errors."""
    for c in store.candidates():
        if candidate_key(c) == key:
            return dict(c, key=key, override=store.overrides().get(key))
    raise InputError("no such candidate in this run", where=key)


def override(store: RunStore, key: str, decision: str | None) -> None:
    """Record a human accept / reject (None clears). Accepting a record that does not parse or fails
    the schema is refused: exports promise schema-valid records."""
    c = candidate_detail(store, key)
    if decision == "accept":
        checks = c.get("checks") or {}
        if c.get("record") is None or not checks.get("parses", True):
            raise InputError("cannot accept a candidate that is not a JSON record", where=key)
        if checks.get("schema_errors"):
            raise InputError(f"cannot accept a record that fails the schema ({checks['schema_errors'][0]})", where=key)
    store.set_override(key, decision)


def override_changes(keys: Iterable[str], before: Iterable[Any], after: Iterable[Any]) -> list[tuple[str, str | None]]:
    """(key, new decision or None) for each row of the Curate table whose override cell changed
    (an empty cell and None both mean "no override")."""
    return [(k, new or None) for k, old, new in zip(keys, before, after) if (old or "") != (new or "")]


def apply_overrides(store: RunStore, changes: Iterable[tuple[str, str | None]]) -> list[str]:
    """Record each change through :func:`override`; the messages of those refused, in order."""
    errors = []
    for key, decision in changes:
        try:
            override(store, key, decision)
        except InputError as e:
            errors.append(str(e))
    return errors


def run_summary(store: RunStore) -> dict[str, Any]:
    """Headline numbers of a run: iterations, accepted (agents / after overrides), last metrics."""
    metrics = store.metrics()
    last, first = (metrics[-1], metrics[0]) if metrics else ({}, {})
    cfg = store.config
    return {
        "iterations_done": len(metrics),
        "iterations": cfg.get("loop", {}).get("iterations"),
        "accepted": len(store.accepted()),
        "curated": len(store.curated()),
        "overrides": len(store.overrides()),
        "reward": last.get("reward"),
        "reward_first": first.get("reward"),
        "task_success_rate": last.get("task_success_rate"),
        "schema_valid_rate": last.get("schema_valid_rate"),
        "status": status_of(store),
        # the last batch's copying figures (eval/copying.py) and broken dependencies, as copying() names them
        "copying": {
            "closer_than_reference_p05": last.get("dcr_closer_share"),
            "dcr_median_ratio": last.get("dcr_median_ratio"),
            "key_reuse": last.get("key_reuse_rate"),
            "reference": "seeds",
            "keys": key_names(store) if last.get("key_reuse_rate") is not None else [],
            "reference_key_reuse": 0.0,
        },
        "dependency_violation_rate": last.get("dependency_violation_rate"),
    }


def key_names(store: RunStore) -> list[str]:
    """The seeds' keys a run keeps, as text (found once per run folder)."""
    from aod_core.data.dependencies import key_name

    if store.path not in _KEYS:
        _KEYS[store.path] = [key_name(k) for k in run_dependencies(store)[1].keys]
    return _KEYS[store.path]


_KEYS: dict[Path, list[str]] = {}


# ---- a run's inputs and current prompt -------------------------------------------------------


def run_seeds(store: RunStore) -> list[Any]:
    """The seeds the run learned from (``inputs/seeds.jsonl``)."""
    path = store.path / "inputs" / "seeds.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def projection_inputs(store: RunStore, limit: int = 1000) -> tuple[list[Any], list[Any], list[str]]:
    """What the Run page's projection plots: the seeds, the newest ``limit`` main-batch records and
    their labels ("accepted" / "rejected")."""
    main = [c for c in store.candidates() if c.get("record") is not None and c.get("phase", "main") == "main"][-limit:]
    return (
        run_seeds(store),
        [c["record"] for c in main],
        ["accepted" if c.get("accepted") else "rejected" for c in main],
    )


def run_field_keys(store: RunStore) -> list[str]:
    """Leaf field paths of the run's scaffold (what pins and forbids can name)."""
    from aod_core.canvas.scaffold import Scaffold
    from aod_core.data.schema import load_schema
    from aod_core.studio.design import scaffold_field_keys

    schema = load_schema(store.path / "inputs" / "schema.json")
    return scaffold_field_keys(Scaffold.build(schema.resolved, run_seeds(store)))


def compile_for_run(store: RunStore, text: str, chat: Any = None) -> dict[str, Any]:
    """The instruction compiler's output (``Prompt.compiled`` form) for ``text`` on the run's inputs."""
    from aod_core.agents.compiler import compiler_for
    from aod_core.data.schema import load_schema

    if not (text or "").strip():
        return {}
    schema = load_schema(store.path / "inputs" / "schema.json")
    return compiler_for(None, schema.resolved, run_seeds(store), chat).compile(text).to_dict()


def run_compile_mode(store: RunStore) -> tuple[str, str]:
    """(generator spec, compile mode) of a run; runs made before compiling existed read as ``auto``."""
    return str(store.config.get("generator") or "embedded"), str(store.config.get("compile") or "auto")


def current_prompt(store: RunStore) -> tuple[Prompt, str]:
    """The prompt the next iteration will use (before any pending human edit) and its author."""
    chosen = [p for p in store.prompts() if p.get("role") == "next"]
    if chosen:
        return Prompt.from_dict(chosen[-1]["prompt"]), chosen[-1].get("author", "initial")
    return Prompt.from_dict(store.config.get("prompt") or {}), "initial"


def live_candidates(store: RunStore, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Newest verdicts first: the job's rows of the iteration in flight, then the committed ones."""
    committed = store.candidates()
    last = committed[-1]["iteration"] if committed else -1
    fresh = [r for r in rows if r.get("iteration", -1) > last]
    out = []
    for c in list(reversed(fresh)) + list(reversed([c for c in committed if c.get("phase", "main") == "main"])):
        out.append(
            {
                "iteration": c.get("iteration"),
                "verdict": c.get("verdict"),
                "score": c.get("score"),
                "accepted": c.get("accepted"),
                "reasons": "; ".join(c.get("reasons") or []),
                "record": json.dumps(c["record"], ensure_ascii=False)
                if c.get("record") is not None
                else c.get("text", ""),
            }
        )
    return out


def feedback_rows(store: RunStore, timeline: Iterable[dict[str, Any]]) -> list[tuple[int, str | None, str | None]]:
    """The judge's feedback newest first, as (iteration, feedback, summary error): a job's timeline
    entries of iterations not committed yet, then the committed ones from the run folder."""
    feedback = list(store.feedback())
    last = feedback[-1]["iteration"] if feedback else -1
    rows = [
        (e["iteration"], e.get("feedback"), e.get("error"))
        for e in timeline
        if e["kind"] == "feedback" and e["iteration"] > last
    ]
    rows += [(f["iteration"], f.get("feedback"), f.get("summary_error")) for f in reversed(feedback)]
    return rows


def run_dependencies(store: RunStore) -> tuple[Any, Any]:
    """(schema, the seeds' dependencies and keys with the run's dependency settings)."""
    from aod_core.data.dependencies import DependencySettings, detect, schema_order
    from aod_core.data.schema import load_schema

    schema = load_schema(store.path / "inputs" / "schema.json")
    settings = DependencySettings.from_dict(store.config.get("dependencies"))
    return schema, detect(run_seeds(store), settings, schema_order(schema.resolved))


def copying_figures(store: RunStore, records: list[Any]) -> tuple[dict[str, Any], float | None]:
    """The copying figures of ``records`` (e.g. the curated export) against the run's seeds (measured
    against the seeds out of fold: a run folder keeps no holdout), and their share of broken
    dependencies."""
    from aod_core.eval.copying import copying

    _, deps = run_dependencies(store)
    seeds = run_seeds(store)
    broken = sum(bool(deps.violations(r)) for r in records) / len(records) if records else None
    return copying(records, seeds, None, deps), broken


def audit_rows(store: RunStore, records: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The Data Auditor suite over ``records`` (e.g. the curated export) against the run's seeds, as
    (metric, value, better, range, meaning) rows, and the suite's notes."""
    from aod_core.data.dependencies import DependencySettings
    from aod_core.eval.audit import METRICS, audit

    schema, _ = run_dependencies(store)
    settings = DependencySettings.from_dict(store.config.get("dependencies"))
    result = audit(records, run_seeds(store), schema=schema, dependencies=settings)
    rows = []
    for name, info in METRICS.items():
        value = result.get(name)
        if value is None or name.endswith("_holdout") or name.startswith("dcr_holdout"):
            continue
        lo, hi = info.range
        rows.append(
            {
                "metric": name,
                "value": value,
                "better": info.direction,
                "range": f"[{lo}, {'∞' if hi is None else hi}]",
                "meaning": info.description,
            }
        )
    return rows, list(result.get("notes") or []) + [
        f"embedder: {(result.get('embedder') or {}).get('name', 'lexical')}"
    ]


# ---- comparisons (aod bench) -----------------------------------------------------------------


def bench_results(out: str | Path) -> dict[str, Any] | None:
    """An ``aod bench`` output folder's ``results.json`` (rewritten after every method), or None
    while there is none or it cannot be read."""
    try:
        return json.loads((Path(out) / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
