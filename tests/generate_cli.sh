#!/usr/bin/env bash
# gpt2c-generate, end to end on a tiny synthetic model:
#   1. --warmup N runs the same generation first, unmeasured: the measured
#      run prints exactly the tokens of a run without warm-up (sampled, seeded);
#   2. --stats-json holds the run's figures;
#   3. bad values are usage errors (exit 2) that name the option;
#   4. --profile leaves the tokens as they are and prints and records where
#      the run's time went, op by op (the decode steps: generated - 1).
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

# 4. the op profile
prof=$(gen --profile --stats-json "$work/prof.json" 2>"$work/perr")
[ "$plain" = "$prof" ] || fail "--profile changed the output: '$plain' vs '$prof'"
for line in "op profile" "matmul" "attention" "total" "decode steps: 11;"; do
    grep -qF "$line" "$work/perr" || { cat "$work/perr"; fail "--profile output lacks '$line'"; }
done
python3 - "$work/prof.json" <<'PY' || fail "--stats-json op_profile"
import json, sys
p = json.load(open(sys.argv[1]))["op_profile"]
ops = ["embed", "layernorm", "matmul", "kv_store", "attention", "gelu", "lm_head", "pick", "other"]
assert p["decode"]["passes"] == 11 and p["decode"]["rows"] == 11, p["decode"]
assert p["prompt"]["passes"] == 1 and p["prompt"]["rows"] == 3, p["prompt"]
for kind in ("prompt", "decode"):
    ms = p[kind]["ms"]
    assert sorted(ms) == sorted(ops), ms
    assert all(v >= 0 for v in ms.values()), ms
    assert ms["matmul"] > 0 and ms["attention"] > 0 and ms["lm_head"] > 0, ms
    assert abs(sum(ms.values()) - p[kind]["total_ms"]) < 1e-3, p[kind]
assert p["decode_weights_gb_s"] > 0, p
PY

# 3. usage errors
for bad in "--warmup -1" "--warmup x" "-n -5" "--threads 0" "--warmup 1 --logits $work/l.f32" \
           "--profile --logits $work/l.f32"; do
    rc=0
    # shellcheck disable=SC2086
    gen $bad >/dev/null 2>"$work/err" || rc=$?
    [ "$rc" -eq 2 ] || { cat "$work/err"; fail "'$bad': exit status $rc, expected 2"; }
    grep -qF -- "${bad%% *}" "$work/err" || { cat "$work/err"; fail "'$bad': error does not name the option"; }
done
echo "generate_cli: OK"
