"""Instruction compiler benchmark: mapping accuracy, precision, compile time, and effect on samples.

    python benchmarks/bench_compiler.py --out benchmarks/results/compiler.json [--repeats 3] [--no-effect]

1. **Mapping** over ``benchmarks/instructions.json`` (instructions with the edits they should compile
   to, over five demo datasets), with four chat models behind the rules:
   ``none`` (the rules alone), ``embedded`` (SmolLM2-135M, the offline default), ``oracle`` (a scripted
   model that answers each clause the rules leave with the suite's expected edit: what a chat model
   that understands the wording adds, through the same grammar and grounding) and ``adversary`` (a
   scripted model that answers every such clause with a plausible but wrong edit: how much the
   grounding check lets through). An instruction is **correct** when the compiled edits are exactly
   the expected ones (ranges to the field's grid, biases by value and direction) and the expected
   refusals are reported; a **wrong edit** is a compiled edit the suite does not expect.
2. **Compile time** per instruction with the embedded model (median over the suite and repeats, in
   one warm process), and the one-off cost of the first instruction in a process (imports, model load).
3. **Effect** on samples of the embedded DLM fitted on penguins: the Torgersen share of 200 records
   after "mostly Torgersen penguins" (seeds: 16%), the in-range share after a range wish, the null
   count after "no nulls in sex", and the schema-valid rate of each batch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from aod_core.agents.compiler import InstructionCompiler, calibrate  # noqa: E402
from aod_core.agents.resolver import Edit  # noqa: E402
from aod_core.canvas.prompt import Prompt  # noqa: E402
from aod_core.canvas.scaffold import Scaffold  # noqa: E402
from aod_core.canvas.slots import canonical  # noqa: E402
from aod_core.chat import ScriptedChatModel  # noqa: E402
from aod_core.data.seeds import load_dataset  # noqa: E402

SUITE = REPO / "benchmarks" / "instructions.json"


def load_suite() -> list[dict]:
    return json.loads(SUITE.read_text(encoding="utf-8"))["cases"]


def matches(e: Edit, x: dict, grid: float) -> bool:
    if e.op != x["op"] or (e.path or "") != x.get("path", ""):
        return False
    if e.op in ("pin", "forbid"):
        return canonical(e.value) == canonical(x.get("value"))
    if e.op == "range":
        tol = grid * 1.01
        return abs(e.lo - x["lo"]) <= tol and abs(e.hi - x["hi"]) <= tol
    if e.op == "bias":
        return canonical(e.value) == canonical(x["value"]) and (e.direction or 1) == x["direction"]
    if e.op == "temperature":
        return (e.amount > 1) == (x["amount"] > 1)
    return False


def score(case: dict, compiled, lexicon) -> dict:
    expected = list(case["edits"])
    wrong, hit = [], [False] * len(expected)
    for e in compiled.edits:
        f = lexicon.by_key(e.path) if e.path else None
        grid = f.grid() if f is not None and f.numeric else 1.0
        j = next((j for j, x in enumerate(expected) if not hit[j] and matches(e, x, grid)), None)
        if j is None:
            wrong.append(e.describe())
        else:
            hit[j] = True
    refusals_ok = len(compiled.unmapped) >= case.get("unmapped", 0)
    return {
        "correct": all(hit) and not wrong and refusals_ok,
        "expected": len(expected),
        "found": sum(hit),
        "edits": len(compiled.edits),
        "wrong": wrong,
        "refusals_ok": refusals_ok,
    }


# ---- scripted chat models ------------------------------------------------------------------------


def _answer_for(x: dict, lex, pending_words: list[str]) -> dict:
    """An expected edit as the compiler's chat-model answer (what a model that understood would say)."""
    words = pending_words[:3]
    f = lex.by_key(x.get("path", "")) if x.get("path") else None
    if x["op"] == "temperature":
        return {"op": "more_varied" if x["amount"] > 1 else "more_typical", "words": words}
    if x["op"] == "range" and f is not None:
        if f.median is not None and abs(x["lo"] - f.snap(f.median, "up")) <= f.grid():
            return {"op": "above_median", "path": f.key, "words": words}
        return {"op": "below_median", "path": f.key, "words": words}
    if x["op"] in ("pin", "forbid") and x.get("value") is None:
        return {"op": "forbid_null", "path": f.key, "words": words}
    if x["op"] in ("pin", "forbid"):
        return {"op": x["op"], "path": f.key, "value": f.value_text(x["value"]), "words": words}
    if x["op"] == "bias":
        return {
            "op": "mostly" if x["direction"] > 0 else "fewer",
            "path": f.key,
            "value": f.value_text(x["value"]),
            "words": words,
        }
    return {"op": "none"}


def oracle(case: dict, lex, resolved_edits: list[Edit]):
    """Answers a clause with the first expected edit the rules did not produce, else refuses."""

    def answer(messages):
        phrase = messages[-1]["content"].split("Wish: ", 1)[1]
        words = [w for w in _words_of(messages)]
        for x in case["edits"]:
            f = lex.by_key(x.get("path", "")) if x.get("path") else None
            grid = f.grid() if f is not None and f.numeric else 1.0
            if not any(matches(e, x, grid) for e in resolved_edits):
                return _answer_for(x, lex, words)
        del phrase
        return {"op": "none"}

    return ScriptedChatModel(answer)


def adversary(lex):
    """Answers every clause with a wrong but grammatical edit: pin the first enum field's first value."""
    f = next((f for f in lex.fields if f.kind == "enum" and f.choices), None)
    g = next(f for f in lex.fields if f.numeric)

    def answer(messages):
        if f is None:
            return {"op": "above_median", "path": g.key, "words": _words_of(messages)[:1]}
        return {"op": "pin", "path": f.key, "value": f.value_text(f.choices[0]), "words": _words_of(messages)[:1]}

    return ScriptedChatModel(answer)


_LAST_WORDS: list[str] = []


def _words_of(messages) -> list[str]:
    return list(_LAST_WORDS)


class _Recording(InstructionCompiler):
    """Keeps the words of the clause it is asking about, for the scripted models' answers."""

    def _ask(self, pending, out):
        for p in pending:
            _LAST_WORDS[:] = p.words
            super()._ask([p], out)


# ---- mapping -------------------------------------------------------------------------------------


def run_mapping(model: str, repeats: int, datasets: dict, log) -> dict:
    chat_model = None
    if model == "embedded":
        from aod_core.chat import load_chat_model

        chat_model = load_chat_model("embedded")
    rows, times = [], []
    first = None
    for r in range(repeats):
        for case in load_suite():
            d, sc = datasets[case["dataset"]]
            probe = _Recording(sc, d.schema.resolved, d.seeds.records)
            if model == "oracle":
                chat = oracle(case, probe.lexicon, probe.resolver.resolve(case["text"]).edits)
            elif model == "adversary":
                chat = adversary(probe.lexicon)
            else:
                chat = chat_model
            comp = _Recording(sc, d.schema.resolved, d.seeds.records, chat)
            t0 = time.perf_counter()
            c = comp.compile(case["text"])
            dt = time.perf_counter() - t0
            if first is None:
                first = dt
            times.append(dt)
            if r == 0:
                s = score(case, c, comp.lexicon)
                rows.append(
                    {
                        "dataset": case["dataset"],
                        "text": case["text"],
                        "semantic": case.get("semantic", False),
                        "seconds": round(dt, 3),
                        **s,
                        "compiled": [e.describe() for e in c.edits],
                        "unmapped": [f"{u.phrase}: {u.reason}" for u in c.unmapped],
                    }
                )
                mark = "ok " if s["correct"] else "MISS"
                log(
                    f"[{model}] {mark} {case['dataset']}: {case['text']!r} -> {[e.describe() for e in c.edits]}"
                    + (f" WRONG {s['wrong']}" if s["wrong"] else "")
                )
    n = len(rows)
    edits = sum(r["edits"] for r in rows)
    wrong = sum(len(r["wrong"]) for r in rows)
    return {
        "model": model,
        "instructions": n,
        "correct": sum(r["correct"] for r in rows),
        "correct_rate": round(sum(r["correct"] for r in rows) / n, 3),
        "semantic_correct": f"{sum(r['correct'] for r in rows if r['semantic'])}/{sum(r['semantic'] for r in rows)}",
        "edits": edits,
        "wrong_edits": wrong,
        "wrong_rate": round(wrong / max(1, edits), 3),
        "seconds_median": round(statistics.median(times), 3),
        "seconds_max": round(max(times), 3),
        "seconds_first": round(first or 0.0, 3),
        "repeats": repeats,
        "rows": rows,
    }


# ---- effect --------------------------------------------------------------------------------------


def run_effect(log) -> dict:
    import torch

    from aod_core.generators import load_generator

    d = load_dataset(REPO / "assets" / "penguins")
    gen = load_generator("embedded", d.schema, d.seeds.records)
    t0 = time.perf_counter()
    gen.fit()
    fit_s = time.perf_counter() - t0
    comp = InstructionCompiler(gen.scaffold, d.schema.resolved, d.seeds.records)
    out = {"fit_seconds": round(fit_s, 1), "threads": torch.get_num_threads(), "cases": []}
    checks = {
        "mostly Torgersen penguins": lambda r: r["island"] == "Torgersen",
        "body mass between 3.5 and 4.5 kg": lambda r: r["body_mass_g"] is not None and 3500 <= r["body_mass_g"] <= 4500,
        "heavier penguins with longer flippers": lambda r: (
            (r["body_mass_g"] or 0) >= 4000 and (r["flipper_length_mm"] or 0) >= 197
        ),
        "no nulls in sex": lambda r: r["sex"] is not None,
        "mostly Chinstrap penguins, 70% female": lambda r: r["species"] == "Chinstrap",
    }
    for text, ok in checks.items():
        t0 = time.perf_counter()
        p = comp.apply(Prompt(text=text), check=gen.check_prompt)
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        p = calibrate(p, lambda q, n, s: gen.sample(q, n, seed=s), spec=gen.spec)
        t_cal = time.perf_counter() - t0
        shares, valid = [], []
        for seed in (11, 12, 13):
            cands = gen.sample(p, 200, seed=seed)
            recs = [c.record for c in cands if c.parsed]
            valid.append(sum(d.schema.is_valid(r) for r in recs) / len(cands))
            shares.append(sum(ok(r) for r in recs) / len(recs))
        base = [c.record for c in gen.sample(Prompt(), 200, seed=11) if c.parsed]
        row = {
            "text": text,
            "edits": [e["why"] for e in p.compiled["edits"]],
            "compile_s": round(t_compile, 3),
            "calibrate_s": round(t_cal, 2),
            "share_per_seed": [round(s, 3) for s in shares],
            "share_min": round(min(shares), 3),
            "share_without_prompt": round(sum(ok(r) for r in base) / len(base), 3),
            "female_share": None,
            "schema_valid_min": round(min(valid), 3),
        }
        if "female" in text:
            cands = gen.sample(p, 200, seed=11)
            recs = [c.record for c in cands if c.parsed]
            row["female_share"] = round(sum(r["sex"] == "female" for r in recs) / len(recs), 3)
        log(
            f"[effect] {text!r}: share {shares} (no prompt {row['share_without_prompt']}), valid {valid}, calibration {t_cal:.1f}s, {row['edits']}"
        )
        out["cases"].append(row)
    return out


def run_timing(repeats: int, datasets: dict, log) -> dict:
    """Wall time per instruction with the embedded chat model, split by whether the chat model is
    asked (only for clauses the rules leave), and the time to measure a "mostly" share."""
    from aod_core.chat import load_chat_model
    from aod_core.generators import load_generator

    t0 = time.perf_counter()
    chat = load_chat_model("embedded")
    chat.load()
    load_s = time.perf_counter() - t0
    rules, asked = [], []
    first = load_suite()[0]
    d, sc = datasets[first["dataset"]]
    t = time.perf_counter()  # the first instruction of a process also imports pint, inflect, scikit-learn
    InstructionCompiler(sc, d.schema.resolved, d.seeds.records, chat).compile(first["text"])
    first_s = time.perf_counter() - t
    for _ in range(repeats):
        for case in load_suite():
            d, sc = datasets[case["dataset"]]
            comp = InstructionCompiler(sc, d.schema.resolved, d.seeds.records, chat)
            needs = bool(comp.resolver.resolve(case["text"]).pending)
            t = time.perf_counter()
            comp.compile(case["text"])
            (asked if needs else rules).append(time.perf_counter() - t)
    d = load_dataset(REPO / "assets" / "penguins")
    gen = load_generator("embedded", d.schema, d.seeds.records)
    gen.fit()
    comp = InstructionCompiler(gen.scaffold, d.schema.resolved, d.seeds.records)
    cal = []
    for _ in range(repeats):
        p = comp.apply(Prompt(text="mostly Torgersen penguins"), check=gen.check_prompt)
        t = time.perf_counter()
        calibrate(p, lambda q, n, s: gen.sample(q, n, seed=s), spec=gen.spec)
        cal.append(time.perf_counter() - t)
    out = {
        "chat_load_s": round(load_s, 2),
        "first_instruction_s": round(first_s, 2),
        "rules_only_median_s": round(statistics.median(rules), 4),
        "rules_only_max_s": round(max(rules), 4),
        "chat_asked_median_s": round(statistics.median(asked), 2),
        "chat_asked_max_s": round(max(asked), 2),
        "chat_asked_n": len(asked),
        "calibrate_mostly_median_s": round(statistics.median(cal), 2),
        "calibrate_runs": [round(x, 2) for x in cal],
        "load_average": os.getloadavg(),
    }
    log(f"[timing] {out}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "compiler.json"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", default="none,oracle,adversary,embedded")
    ap.add_argument("--no-effect", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--timing-only",
        action="store_true",
        help="only the timing part, added to an existing --out file (for a run on a quiet machine)",
    )
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    datasets = {}
    for case in load_suite():
        if case["dataset"] not in datasets:
            d = load_dataset(REPO / "assets" / case["dataset"])
            datasets[case["dataset"]] = (d, Scaffold.build(d.schema.resolved, d.seeds.records))
    result = {
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch_threads": args.threads,
            "load_average_at_start": os.getloadavg(),
        },
        "setup_seconds": round(time.perf_counter() - t0, 2),
        "mapping": {},
    }
    if args.timing_only:
        result = json.loads(Path(args.out).read_text(encoding="utf-8"))
        result["timing"] = run_timing(args.repeats, datasets, log)
        Path(args.out).write_text(
            json.dumps(result, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8"
        )
        log(f"wrote {args.out}")
        return 0
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        result["mapping"][model] = run_mapping(model, args.repeats if model == "embedded" else 1, datasets, log)
        m = result["mapping"][model]
        log(
            f"== {model}: {m['correct']}/{m['instructions']} correct ({m['correct_rate']:.0%}), wrong edits "
            f"{m['wrong_edits']}/{m['edits']} ({m['wrong_rate']:.1%}), median {m['seconds_median']}s, max {m['seconds_max']}s"
        )
    if not args.no_effect:
        result["effect"] = run_effect(log)
    result["timing"] = run_timing(1, datasets, log)
    result["machine"]["load_average_at_end"] = os.getloadavg()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
