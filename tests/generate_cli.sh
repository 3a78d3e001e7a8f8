#!/usr/bin/env bash
# gpt2c-generate, end to end on a tiny synthetic model:
#   1. --warmup N runs the same generation first, unmeasured: the measured
#      run prints exactly the tokens of a run without warm-up (sampled, seeded);
#   2. --stats-json holds the run's figures;
#   3. bad values are usage errors (exit 2) that name the option.
# Usage (from ctest): generate_cli.sh BIN_DIR WORK_DIR
set -euo pipefail
bin=$1 work=$2
rm -rf "$work" && mkdir -p "$work"
fail() { echo "generate_cli: FAILED: $*"; exit 1; }
"$bin/gpt2c-convert" --synthetic custom --layers 2 --embd 64 --heads 4 --ctx 256 --vocab 50257 \
    --seed 3 -q --out "$work/tiny.gguf"
gen() { "$bin/gpt2c-generate" --model "$work/tiny.gguf" --ids --prompt "464 2068 7586" -n 12 \
    --ignore-eos --temp 0.9 --top-k 40 --seed 7 --threads 2 "$@"; }

# 1. warm-up does not change what is generated
plain=$(gen 2>/dev/null)
warm=$(gen --warmup 2 --stats-json "$work/stats.json" 2>"$work/err")
[ -n "$plain" ] || fail "no tokens generated"
[ "$(wc -w <<<"$plain")" -eq 12 ] || fail "expected 12 ids, got: $plain"
[ "$plain" = "$warm" ] || fail "--warmup 2 changed the output: '$plain' vs '$warm'"

# 2. the figures of the measured run
for key in '"prompt_tokens": 3' '"generated_tokens": 12' '"threads": 2' '"ttft_ms"' '"decode_tok_s"'; do
    grep -qF "$key" "$work/stats.json" || { cat "$work/stats.json"; fail "stats JSON lacks $key"; }
done

# 3. usage errors
for bad in "--warmup -1" "--warmup x" "-n -5" "--threads 0" "--warmup 1 --logits $work/l.f32"; do
    rc=0
    # shellcheck disable=SC2086
    gen $bad >/dev/null 2>"$work/err" || rc=$?
    [ "$rc" -eq 2 ] || { cat "$work/err"; fail "'$bad': exit status $rc, expected 2"; }
    grep -qF -- "${bad%% *}" "$work/err" || { cat "$work/err"; fail "'$bad': error does not name the option"; }
done
echo "generate_cli: OK"
