"""The ``openai:`` backend through a real server against the same model in process, side by side.

The same SmolLM2-135M-Instruct (the embedded model, converted once to a transformers folder) judges
the same penguin holdout records with ``aod judge --judge-mode combined`` twice:

* ``server``: ``openai:SmolLM2-135M-Instruct@http://127.0.0.1:PORT/v1`` on ``transformers serve``
  (tests/real_server.py: loopback, continuous batching, stopped by its process group);
* ``in-process``: ``--judge hf:<the converted folder>``, the same weights run by the local backend.

Reported per path: records/s, wall seconds, and how the verdicts came out (judged by the model, or an
answer that is not the verdict's JSON, or a transport failure). Then, optionally, ``aod run`` with
the judge, the optimizer and the compiler all on the server (``--run``: iterations × batch).

The server ignores ``response_format``, so the in-process path (xgrammar-constrained) is the only one
whose verdicts can parse; the records/s are comparable, the acceptance is not. Machine load is recorded
before and after, because the test machine is shared.

    python benchmarks/bench_servers.py --records 50 --run 2x8 --out benchmarks/results/servers.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aod_core.cli import main as aod  # noqa: E402
from tests.real_server import embedded_folder, real_server  # noqa: E402

PENGUINS = ROOT / "assets" / "penguins"


def outcome(verdict: dict) -> str:
    if verdict["judged_by"] != "failed":
        return "judged"
    reason = verdict["reasons"][0]
    if any(why in reason for why in ("not JSON", "fails the schema", "empty answer")):
        return "answer not usable"
    return "transport failure"


def judge(spec: str, records: Path, out: Path) -> dict:
    args = ["judge", "--schema", str(PENGUINS / "schema.json"), "--seeds", str(PENGUINS / "seeds.jsonl"),
            "--records", str(records), "--judge", spec, "--judge-mode", "combined", "--quiet", "--out", str(out)]  # fmt: skip
    t0 = time.perf_counter()
    rc = aod(args)
    seconds = time.perf_counter() - t0
    verdicts = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return {
        "exit": rc,
        "records": len(verdicts),
        "seconds": round(seconds, 1),
        "records_per_s": round(len(verdicts) / seconds, 4) if seconds else None,
        "outcomes": dict(Counter(outcome(v) for v in verdicts)),
        "accepted": sum(1 for v in verdicts if v["verdict"] == "accept"),
    }


def run(spec: str, iterations: int, batch: int, out: Path) -> dict:
    args = ["run", "--schema", str(PENGUINS / "schema.json"), "--seeds", str(PENGUINS / "seeds.jsonl"),
            "--out", str(out), "--iterations", str(iterations), "--batch", str(batch), "--probe", str(batch),
            "--proposals", "1", "--repairs", "0", "--fit-steps", "100", "--max-agent-failures", "100000",
            "--prompt", "penguins from Dream island that look well fed", "--quiet",
            "--judge", spec, "--judge-mode", "combined", "--optimizer", spec, "--compiler", spec]  # fmt: skip
    t0 = time.perf_counter()
    rc = aod(args)
    seconds = time.perf_counter() - t0
    config = json.loads((out / "config.json").read_text()) if (out / "config.json").exists() else {}
    chat = config.get("fingerprint", {}).get("chat", {})
    metrics = (
        [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        if (out / "metrics.jsonl").exists()
        else []
    )
    return {
        "exit": rc,
        "iterations_done": len(metrics),
        "seconds": round(seconds, 1),
        "structured_output": {role: c.get("structured_output") for role, c in chat.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=50)
    ap.add_argument("--run", default="", help="ITERATIONSxBATCH of an aod run through the server, e.g. 2x8")
    ap.add_argument("--timeout", default="600", help="AOD_CHAT_TIMEOUT for the server path (seconds)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "servers.json"))
    a = ap.parse_args()
    os.environ["AOD_CHAT_TIMEOUT"] = a.timeout
    work = Path(tempfile.mkdtemp(prefix="bench-servers-"))
    cache = Path(os.environ.get("AOD_CACHE_DIR") or work / "cache")
    records = work / "records.jsonl"
    lines = (PENGUINS / "holdout.jsonl").read_text().splitlines()
    records.write_text("\n".join(lines[: a.records]) + "\n")
    folder = embedded_folder(cache)
    result: dict = {
        "records": a.records,
        "model": "SmolLM2-135M-Instruct (embedded GGUF, converted to float32)",
        "judge_mode": "combined",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "load_before": os.getloadavg()},
        "timeout_s": float(a.timeout),
    }
    result["in_process"] = judge(f"hf:{folder}", records, work / "in-process.jsonl")
    with real_server(folder, work / "serve") as server:
        result["server"] = judge(server.spec, records, work / "server.jsonl")
        result["server"]["server"] = "transformers serve --continuous-batching (1 thread)"
        if a.run:
            iterations, batch = (int(x) for x in a.run.lower().split("x"))
            result["run"] = {
                "iterations": iterations,
                "batch": batch,
                **run(server.spec, iterations, batch, work / "run"),
            }
    result["machine"]["load_after"] = os.getloadavg()
    Path(a.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
