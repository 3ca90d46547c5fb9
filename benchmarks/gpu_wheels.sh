#!/usr/bin/env bash
# The wheels benchmarks/gpu_check.sh needs on the lent GPU machine, downloaded here into .whl/
# (ignored by git; carried to the machine with the tree). That machine has no package registry; its
# python3 (3.12) holds torch, transformers, numpy, scipy, pandas, pytest and more, but not these.
# Each is pinned to the version installed here, so both machines run the same code; --no-deps: the
# list names every dependency the machine lacks.
#
#   benchmarks/gpu_wheels.sh            # then: device run with carry [".whl"] and benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PACKAGES=(
  jsonschema jsonschema-specifications referencing rpds-py  # schema validation
  interegular                                               # the scaffold's automata
  datasketch                                                # near copies (MinHash)
  plotly narwhals                                           # charts the engine imports
  openai httpx2 httpcore2 truststore jiter sniffio          # the openai: chat backend
  pydantic pydantic-core annotated-types typing-inspection
  gguf                                                      # gguf: chat models
  xgrammar apache-tvm-ffi                                   # grammar-constrained agent output
)
PLATFORMS=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
           manylinux2014_x86_64 manylinux1_x86_64; do
  PLATFORMS+=(--platform "$tag")
done
mkdir -p .whl
for name in "${PACKAGES[@]}"; do
  version=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name")
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${PLATFORMS[@]}" -d .whl "$name==$version"
done
echo "wheels in .whl: $(ls .whl | wc -l) files, $(du -sh .whl | cut -f1) (the carry limit is 64 MiB)"
