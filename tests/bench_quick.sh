#!/usr/bin/env bash
# A whole `gpt2c-bench --quick` run on a tiny synthetic model (real vocabulary,
# 2 layers): the report must validate against reports/report.schema.json,
# every figure of report.json must appear in report.html, validation must
# pass, and no concurrent request may differ from the same request run alone.
# Usage (from ctest): bench_quick.sh BIN_DIR SOURCE_DIR WORK_DIR PYTHON
set -euo pipefail
bin=$1 src=$2 work=$3 py=$4
rm -rf "$work" && mkdir -p "$work"
"$bin/gpt2c-convert" --synthetic custom --layers 2 --embd 64 --heads 4 --ctx 256 --vocab 50257 \
    --seed 3 --out "$work/tiny.gguf" -q
"$bin/gpt2c-bench" --model "$work/tiny.gguf" --quick --threads 2 --out "$work/run1" >"$work/stdout1" 2>"$work/stderr1" ||
    { cat "$work/stderr1"; echo "bench_quick: gpt2c-bench failed"; exit 1; }
"$py" "$src/tests/reference/validate_report.py" "$work/run1/report.json" --html "$work/run1/report.html"
"$py" - "$work/run1/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ph = r["phases"]
problems = []
if not r["complete"]:
    problems.append("report marked incomplete")
for k in ("validation", "latency", "memory", "throughput"):
    if ph[k] is None:
        problems.append("phase %s missing" % k)
v = ph["validation"]
if v["failures"] != 0:
    problems.append("validation failures: %s" % [c for c in v["checks"] if not c["ok"]])
if v["golden"]["applicable"]:
    problems.append("golden fixture claimed to apply to a tiny model")
for row in ph["throughput"]["rows"]:
    if row["mismatches"] or row["failures"]:
        problems.append("concurrency %d: %d mismatches, %d failures" %
                        (row["concurrency"], row["mismatches"], row["failures"]))
    if row["requests"] < 1:
        problems.append("concurrency %d: no request completed" % row["concurrency"])
if ph["throughput"]["rows"][-1]["mean_batch_seqs"] < 2:
    problems.append("16 clients: %.2f sequences per step: the engine did not batch" %
                    ph["throughput"]["rows"][-1]["mean_batch_seqs"])
if "kv_pool" not in ph["memory"] or ph["memory"]["kv_pool"]["peak_blocks_used"] < 1:
    problems.append("phase 3 lacks the KV pool's use")
if [row["concurrency"] for row in ph["throughput"]["rows"]] != [1, 2, 4, 8, 16]:
    problems.append("concurrency levels are not 1, 2, 4, 8, 16")
if len(ph["latency"]["rows"]) < 3:
    problems.append("fewer than 3 prompt lengths in the latency phase")
m = ph["memory"]
if m["allocs_per_token"] is None or m["allocs_per_token"] != 0:
    problems.append("allocations per generated token: %s (expected 0)" % m["allocs_per_token"])
if problems:
    print("bench_quick: FAILED\n  " + "\n  ".join(problems))
    sys.exit(1)
print("bench_quick: report valid; %d throughput levels, no mismatches; 0 allocations/token"
      % len(ph["throughput"]["rows"]))
PY
# a few seconds of gpt2c-kbench: its JSON validates, and --kbench puts its
# roofline into the report (validated again below)
"$bin/gpt2c-kbench" --quick --threads 2 --bw-mib 16 --cold-mib 0 \
    --filter matmul/f32/openblas/124M/proj,matmul/f32/native/avx2/124M/proj,attention/f32/scalar/decode,gelu/scalar/M1x \
    --json "$work/kbench.json" >"$work/kbench.out" 2>"$work/kbench.err" ||
    { cat "$work/kbench.err"; echo "bench_quick: gpt2c-kbench failed"; exit 1; }
"$py" "$src/tests/reference/validate_report.py" "$work/kbench.json"
grep -q "vsBLAS" "$work/kbench.out" || { echo "bench_quick: the kbench table is missing"; exit 1; }
# --compare against that run: a ratio per case, both runs' ceilings
"$bin/gpt2c-kbench" --quick --threads 2 --bw-mib 16 --cold-mib 0 --filter gelu/scalar/M1x,to_f16/scalar/M1x \
    --compare "$work/kbench.json" --json "$work/kbench2.json" >"$work/kbench2.out" 2>"$work/kbench2.err" ||
    { cat "$work/kbench2.err"; echo "bench_quick: gpt2c-kbench --compare failed"; exit 1; }
"$py" "$src/tests/reference/validate_report.py" "$work/kbench2.json"
grep -q "vsPrev" "$work/kbench2.out" && grep -q "1 of 2 cases matched" "$work/kbench2.out" ||
    { cat "$work/kbench2.out"; echo "bench_quick: kbench --compare shows no comparison"; exit 1; }
# --compare against the first run (with the kernel roofline), and an interrupted
# run is marked incomplete
"$bin/gpt2c-bench" --model "$work/tiny.gguf" --quick --phases 1,5 --out "$work/run2" \
    --kbench "$work/kbench.json" --compare "$work/run1/report.json" >"$work/stdout2" 2>"$work/stderr2" ||
    { cat "$work/stderr2"; echo "bench_quick: --compare run failed"; exit 1; }
"$py" "$src/tests/reference/validate_report.py" "$work/run2/report.json" --html "$work/run2/report.html"
grep -q "compare" "$work/run2/summary.md" || { echo "bench_quick: summary.md lacks the comparison"; exit 1; }
grep -q 'id="chart-roofline"' "$work/run2/report.html" || { echo "bench_quick: report.html lacks the roofline"; exit 1; }
echo "bench_quick: 2 runs OK"
