#!/usr/bin/env bash
# A model write that fails never leaves a file that looks valid, with the
# real programs (gpt2c-convert, gpt2c-quantize):
#   1. an output folder that does not exist, or is a file: an error naming the
#      file and the reason, non-zero exit, no output, no temporary;
#   2. a full disk (a file-size limit, `ulimit -f`, in a subshell: the write
#      fails with EFBIG part-way): the same, for both programs;
#   3. killed part-way: SIGTERM removes the temporary; SIGKILL cannot, but the
#      target never exists, and the next run for the same output removes the
#      stale temporary of the dead process (and only of dead processes) and
#      writes a complete file that loads with its CRCs checked.
# Usage (from ctest): write_failures.sh BIN_DIR WORK_DIR
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
fail() { echo "write_failures: FAILED: $*"; exit 1; }
tmps() { find "$(dirname "$1")" -maxdepth 1 -name "$(basename "$1").tmp.*" | sort; }
no_output() { # PATH: neither the file nor a temporary of it
    [ ! -e "$1" ] || fail "$1 exists after a failed write"
    [ -z "$(tmps "$1")" ] || fail "temporaries left: $(tmps "$1")"
}
expect_error() { # RC ERRFILE PATH REASON
    [ "$1" -eq 1 ] || { cat "$2"; fail "exit status $1 (expected 1) writing $3"; }
    grep -qF "$3" "$2" || { cat "$2"; fail "the error does not name $3"; }
    grep -qF "$4" "$2" || { cat "$2"; fail "the error does not say '$4'"; }
}
tiny=(--synthetic custom --layers 2 --embd 64 --heads 4 --ctx 256 --vocab 50257 --seed 3 -q)
"$bin/gpt2c-convert" "${tiny[@]}" --out "$work/tiny.gguf"

# 1. nowhere to write
for out in "$work/no/such/dir/m.gguf" "$work/tiny.gguf/m.gguf"; do
    rc=0
    "$bin/gpt2c-convert" "${tiny[@]}" --out "$out" 2>"$work/err" || rc=$?
    reason="No such file or directory"
    [ "${out#*tiny.gguf/}" != "$out" ] && reason="Not a directory"
    expect_error "$rc" "$work/err" "$out" "$reason"
    no_output "$out"
    rc=0
    "$bin/gpt2c-quantize" "$work/tiny.gguf" "$out" q8_0 2>"$work/err" >/dev/null || rc=$?
    expect_error "$rc" "$work/err" "$out" "$reason"
    no_output "$out"
done
echo "write_failures: missing folders: clear errors, nothing written"

# 2. a full disk: at most 1 MiB per file (the tiny model is 14 MiB, 4 MiB in Q8_0)
out="$work/full.gguf"
rc=0
(ulimit -f 1024 && exec "$bin/gpt2c-convert" "${tiny[@]}" --out "$out") 2>"$work/err" || rc=$?
expect_error "$rc" "$work/err" "$out" "File too large"
no_output "$out"
rc=0
(ulimit -f 1024 && exec "$bin/gpt2c-quantize" "$work/tiny.gguf" "$out" q8_0) 2>"$work/err" >/dev/null || rc=$?
expect_error "$rc" "$work/err" "$out" "File too large"
no_output "$out"
echo "write_failures: a full disk: clear errors, nothing written"

# 3. killed part-way through writing the 124M model (500 MB)
killed_midway() { # SIGNAL OUT: converts in the background, signals it mid-write
    "$bin/gpt2c-convert" --synthetic 124M --seed 1 -q --out "$2" 2>"$work/kill.err" &
    local pid=$! i size
    for i in $(seq 1 1200); do # until 16 MiB of the temporary are written
        size=$(stat -c %s "$2.tmp.$pid" 2>/dev/null || echo 0)
        [ "$size" -ge 16777216 ] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.05
    done
    kill -0 "$pid" 2>/dev/null || fail "gpt2c-convert ended before it could be killed"
    kill "-$1" "$pid"
    wait "$pid" && fail "gpt2c-convert exited 0 after SIG$1" || true
    [ ! -e "$2" ] || fail "$2 exists after SIG$1 part-way through the write"
}
out="$work/big.gguf"
killed_midway TERM "$out"
[ -z "$(tmps "$out")" ] || fail "SIGTERM left $(tmps "$out")"
killed_midway KILL "$out"
[ -n "$(tmps "$out")" ] || fail "SIGKILL left no temporary: was it killed part-way?"
stale=$(tmps "$out")
touch "$out.tmp.1" # pid 1 is alive: not stale, must stay
"$bin/gpt2c-convert" --synthetic 124M --seed 1 -q --out "$out" 2>"$work/rerun.err" ||
    { cat "$work/rerun.err"; fail "the run after SIGKILL failed"; }
grep -qF "removed $stale, left by an earlier run that did not finish" "$work/rerun.err" ||
    { cat "$work/rerun.err"; fail "the stale temporary $stale was not reported removed"; }
[ ! -e "$stale" ] || fail "$stale is still there"
[ -e "$out.tmp.1" ] || fail "the temporary of a live process (pid 1) was removed"
rm -f "$out.tmp.1"
"$bin/gpt2c-generate" --model "$out" --ids --prompt "464" -n 1 >/dev/null 2>"$work/load.err" ||
    { cat "$work/load.err"; fail "the file written after SIGKILL does not load"; }
rm -f "$out"
echo "write_failures: killed part-way: no target; SIGTERM cleans up; a stale temporary is removed by the next run"
