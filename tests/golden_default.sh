#!/usr/bin/env bash
# The default model end to end against the independent NumPy reference:
#  1. the committed golden fixture (tools/bench_driver/golden_fixture.h) is what
#     tests/reference/make_golden.py computes from the synthetic 124M today;
#  2. gpt2c-bench's validation phase on that model matches it (greedy ids and
#     the largest logits at the fp32 tolerance).
# Usage (from ctest): golden_default.sh BIN_DIR SOURCE_DIR WORK_DIR PYTHON
set -euo pipefail
bin=$1 src=$2 work=$3 py=$4
mkdir -p "$work"
model=$work/gpt2-124M-synthetic-f32.gguf
[ -f "$model" ] || "$bin/gpt2c-convert" --synthetic 124M --seed 1 --out "$model" -q
"$py" "$src/tests/reference/make_golden.py" --model "$model" --check
rm -rf "$work/golden_run"
"$bin/gpt2c-bench" --model "$model" --quick --phases 1 --out "$work/golden_run" >"$work/golden.out" 2>&1 ||
    { cat "$work/golden.out"; echo "golden_default: validation failed"; exit 1; }
"$py" - "$work/golden_run/report.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))["phases"]["validation"]
g = v["golden"]
ok = g["applicable"] and g["match"] and v["failures"] == 0
print("golden_default: applicable=%s match=%s max|logit diff|=%s failures=%d"
      % (g["applicable"], g["match"], g.get("max_abs_logit_diff"), v["failures"]))
sys.exit(0 if ok else 1)
PY
