#!/usr/bin/env bash
# gpt2c-bench's soak and its behaviour when things go wrong, on a tiny
# synthetic model (real vocabulary, 2 layers):
#   1. a soak of a few seconds: the report validates, requests ran, none failed
#      or differed from the same request run alone, no descriptor leaked, and
#      the exit status agrees with the verdict (a few seconds are too short to
#      judge growth, so the verdict itself is not asserted);
#   2. SIGINT during the soak, and during the phases: exit status 130, the
#      report is written, valid, and marked incomplete;
#   3. a report that cannot be written: the message names the file and the
#      reason, and the exit status is non-zero.
# Usage (from ctest): bench_soak.sh BIN_DIR SOURCE_DIR WORK_DIR PYTHON
set -euo pipefail
bin=$1 src=$2 work=$3 py=$4
rm -rf "$work" && mkdir -p "$work"
fail() { echo "bench_soak: FAILED: $*"; exit 1; }
"$bin/gpt2c-convert" --synthetic custom --layers 2 --embd 64 --heads 4 --ctx 256 --vocab 50257 \
    --seed 3 --out "$work/tiny.gguf" -q
validate() { "$py" "$src/tests/reference/validate_report.py" "$1/report.json" --html "$1/report.html" ||
    fail "$1: the report does not validate"; }

# 1. a short soak
rc=0
"$bin/gpt2c-bench" --model "$work/tiny.gguf" --soak 0.1 --threads 2 --out "$work/soak" \
    >"$work/soak.out" 2>"$work/soak.err" || rc=$?
[ "$rc" -le 1 ] || { cat "$work/soak.err"; fail "soak: exit status $rc"; }
validate "$work/soak"
grep -q '^\[soak\] ' "$work/soak.err" || fail "soak: no progress line on stderr"
"$py" - "$work/soak/report.json" "$rc" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
rc = int(sys.argv[2])
k = r["phases"]["soak"]
problems = []
if not r["complete"] or not k["complete"]:
    problems.append("marked incomplete")
if r["settings"]["soak_minutes"] != 0.1:
    problems.append("settings.soak_minutes is %s" % r["settings"]["soak_minutes"])
if [r["phases"][p] for p in ("validation", "latency", "memory", "throughput")] != [None] * 4:
    problems.append("--soak alone ran other phases")
if k["requests"] < 1 or k["completed"] + k["cancelled"] < 1:
    problems.append("no request finished: %s" % k)
if k["checked"] < 1:
    problems.append("no request was checked against the same request run alone")
if k["failures"] or k["mismatches"]:
    problems.append("%d failures, %d mismatches: %s" % (k["failures"], k["mismatches"], k["problems"]))
if k["fd_growth"] != 0:
    problems.append("open file descriptors grew by %s" % k["fd_growth"])
if len(k["samples"]) < 3:
    problems.append("%d samples" % len(k["samples"]))
if (k["verdict"] == "PASS") != (rc == 0):
    problems.append("verdict %s but exit status %d" % (k["verdict"], rc))
if problems:
    print("bench_soak: soak: " + "; ".join(problems))
    sys.exit(1)
print("bench_soak: soak of %.1f s: %d requests, %d checked, verdict %s (%s)" %
      (k["duration_s"], k["requests"], k["checked"], k["verdict"], "; ".join(k["reasons"]) or "no reasons"))
PY

# 2. SIGINT: once the soak is under way, and during the phases
interrupt() { # NAME WAIT_FOR_REGEX ARGS...
    local name=$1 pattern=$2
    shift 2
    "$bin/gpt2c-bench" --model "$work/tiny.gguf" --threads 2 --out "$work/$name" "$@" \
        >"$work/$name.out" 2>"$work/$name.err" &
    local pid=$! i
    for i in $(seq 1 600); do # until the run is where it should be interrupted
        grep -qE "$pattern" "$work/$name.err" 2>/dev/null && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    kill -INT "$pid" 2>/dev/null || true
    local rc=0
    wait "$pid" || rc=$?
    [ "$rc" -eq 130 ] || { cat "$work/$name.err"; fail "$name: exit status $rc after SIGINT, expected 130"; }
    validate "$work/$name"
    grep -q "interrupted" "$work/$name.out" || fail "$name: stdout does not say the run was interrupted"
}
interrupt soak_int '^\[soak\] ' --soak 5
"$py" - "$work/soak_int/report.json" <<'PY' || fail "soak_int: see above"
import json, sys
r = json.load(open(sys.argv[1]))
k = r["phases"]["soak"]
if r["complete"] is not False or k is None or k["complete"] is not False:
    print("not marked incomplete: complete=%s, soak=%s" % (r["complete"], k and k["complete"]))
    sys.exit(1)
if k["duration_s"] >= 300:
    print("the soak ran its whole time (%s s) despite SIGINT" % k["duration_s"])
    sys.exit(1)
PY
interrupt phases_int 'tiny.gguf' --quick
"$py" -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(r["complete"] is not False)' \
    "$work/phases_int/report.json" || fail "phases_int: report not marked incomplete"

# 3. reports that cannot be written
mkdir -p "$work/blocked/report.json/x" # a directory where the file should go
rc=0
"$bin/gpt2c-bench" --model "$work/tiny.gguf" --phases 5 --out "$work/blocked" >"$work/blocked.out" \
    2>"$work/blocked.err" || rc=$?
[ "$rc" -ne 0 ] || fail "an unwritable report.json exits 0"
grep -q "$work/blocked/report.json: cannot rename .* into place: " "$work/blocked.err" ||
    { cat "$work/blocked.err"; fail "the message does not name report.json and the reason"; }
ls "$work/blocked" | grep -q '\.tmp\.' && fail "a temporary file was left in $work/blocked"
[ -f "$work/blocked/report.html" ] || fail "report.html was not written beside the failed report.json"
printf 'x' >"$work/a_file"
rc=0
"$bin/gpt2c-bench" --model "$work/tiny.gguf" --phases 5 --out "$work/a_file/run" >"$work/nodir.out" \
    2>"$work/nodir.err" || rc=$?
[ "$rc" -ne 0 ] || fail "an impossible --out folder exits 0"
grep -q "$work/a_file/run: cannot create the folder: Not a directory" "$work/nodir.err" ||
    { cat "$work/nodir.err"; fail "the message does not name the folder and the reason"; }
echo "bench_soak: OK"
