#!/usr/bin/env bash
# Every GPU check in one run, each step with a time limit: CUDA-only tests, every generator on the
# device, decoding speed of a LLaDA-8B-shaped hf: model (fast against vanilla, a batch sweep), and
# a summary. Results are JSON under --out (steps.jsonl, env.json, generators.json, hf.json,
# summary.json) with one log per step; the summary is printed at the end.
#
#   benchmarks/gpu_check.sh --device cuda --out "$OUT"          # on the lent GPU machine
#   benchmarks/gpu_check.sh --device cpu --tiny --out /tmp/gpu   # a smoke run of the same steps here
#
# On the GPU machine, carried wheels in .whl/ (benchmarks/gpu_wheels.sh) are installed first into
# /tmp/aod-site, and the project runs from the tree (PYTHONPATH), not installed.
set -uo pipefail
cd "$(dirname "$0")/.."
DEVICE=cuda
TINY=0
OUT=${OUT:-/tmp/gpu-check}
STEP_TIMEOUT=300
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=$2; shift 2 ;;
    --tiny) TINY=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --step-timeout) STEP_TIMEOUT=$2; shift 2 ;;
    -h|--help) sed -n 2,13p "$0"; exit 0 ;;
    *) echo "gpu_check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
PY=${PYTHON:-python3}
mkdir -p "$OUT"
: > "$OUT/steps.jsonl"
if [ "$DEVICE" != cpu ] && compgen -G ".whl/*.whl" > /dev/null; then  # built for the GPU machine's Python
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/aod-site .whl/*.whl \
    || { echo "gpu_check: the carried wheels did not install" >&2; exit 2; }
  export PYTHONPATH=/tmp/aod-site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1 AOD_CACHE_DIR=${AOD_CACHE_DIR:-$OUT/cache}

# step NAME COMMAND...: run it under the time limit (a protection, not a measurement), log it, record it
step() {
  local name=$1; shift
  local t0 rc
  t0=$(date +%s)
  timeout "$STEP_TIMEOUT" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  printf '{"step": "%s", "rc": %d, "seconds": %d, "timed_out": %s}\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" \
    "$([ $rc -eq 124 ] && echo true || echo false)" >> "$OUT/steps.jsonl"
  echo "gpu_check: $name rc=$rc ($(( $(date +%s) - t0 )) s)"
}

if [ "$TINY" = 1 ]; then
  SHAPE=tiny; N=4; BATCH=2; REPEATS=1; VALID_N=0; SWEEP=1,2; TAUS=0.9; TOKENIZER=seeds; GENERATORS=(--tiny)
else
  SHAPE=llada-8b; N=64; BATCH=32; REPEATS=3; VALID_N=64; SWEEP=1,8,32,128; TAUS=0.9,0.7,0.5; TOKENIZER=auto
  GENERATORS=()
fi

step env "$PY" - "$DEVICE" "$OUT/env.json" <<'PYEOF'
import json, platform, sys
import torch
import aod_core  # the tree, with the carried wheels: every import the checks need
from aod_core.generators import GENERATORS
dev = torch.device(sys.argv[1])
info = {
    "python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
    "cuda_available": torch.cuda.is_available(), "device": str(dev),
    "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or "cpu",
    "bf16": bool(dev.type == "cuda" and torch.cuda.is_bf16_supported()), "generators": list(GENERATORS),
}
if dev.type == "cuda" and not info["cuda_available"]:
    sys.exit("--device cuda, but torch sees no CUDA device")
json.dump(info, open(sys.argv[2], "w"), indent=2)
print(json.dumps(info))
PYEOF
if [ "$DEVICE" = cuda ]; then
  step cuda-tests "$PY" -m pytest -q -p no:cacheprovider tests/test_hf.py -k "gpu_memory"
fi
step generators "$PY" benchmarks/gpu_generators.py --device "$DEVICE" "${GENERATORS[@]}" --out "$OUT/generators.json"
step decoding "$PY" benchmarks/bench_hf.py --shape "$SHAPE" --device "$DEVICE" --n "$N" --batch "$BATCH" \
  --repeats "$REPEATS" --thresholds "$TAUS" --valid-n "$VALID_N" --sweep "$SWEEP" --tokenizer "$TOKENIZER" \
  --out "$OUT/hf.json"
"$PY" benchmarks/gpu_summary.py "$OUT"
