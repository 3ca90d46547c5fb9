"""The GPU check script runs end to end here, on the CPU with tiny shapes: every step succeeds, every
generator reports its figures, and the summary holds the decoding speed against the goals. On a lent
GPU machine the same script runs with ``--device cuda`` (``benchmarks/gpu_check.sh``)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_gpu_check_runs_tiny_on_the_cpu(tmp_path):
    out = tmp_path / "gpu"
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--tiny", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] and [s["step"] for s in summary["steps"]] == ["env", "generators", "decoding"]
    gens = {g["generator"]: g for g in summary["generators"]}
    assert set(gens) == {"embedded", "hf (random aod-mdm)", "difflm (random decoder, 40 seeds)"}
    assert all(g["ran_on"] == "cpu" and g["schema_valid_rate"] == 1.0 and g["records_per_s"] > 0 for g in gens.values())
    d = summary["decoding"]
    assert d["shape"] == "tiny" and d["speedup"] > 0 and set(d["sweep_records_per_s"]) == {"1", "2"}
    assert "speedup_batch_1" in d["goals"] and "device: cpu" in done.stdout


def test_the_gpu_check_refuses_an_unknown_argument():
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--frobnicate"], capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 2 and "unknown argument --frobnicate" in done.stderr
