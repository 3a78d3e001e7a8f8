#!/usr/bin/python3
"""Self-test of the gpt2c NumPy reference (tests/reference/).

Checks the reference against itself in ways that catch real mistakes:

  (a) HF path == GGUF path: a GGUF is written here from the HF weights by a
      minimal writer (Conv1D [in, out] transposed to [out, in]) and both paths
      must give bit-identical logits (F32 and F16; 'transformer.' prefix and
      untied lm_head / output.weight too). The GGUF reader is also checked on
      every metadata type, a non-default alignment and Q8_0 blocks quantized here.
  (b) causality: logits at positions <= t do not change when later tokens
      change (and later ones do), and a prefix run equals the prefix rows.
  (c) plain-Python loops: a 1-layer C=2 / NH=1 model (and a 2-layer C=6 / NH=3
      one for the head split) computed scalar by scalar with the math module,
      compared with the vectorized forward; GELU / LayerNorm / softmax checked
      against values worked out by hand.
  (d) float64 vs float32 forward agree to 1e-5 of max |logit|.
  (e) greedy: every greedy id is the argmax of a fresh full forward.
  (f) CLI: ref_logits.py output file, stdout format and error exit.
  (g) checkpoint files: safetensors layout, mask buffers, vocab / merges cut.
  (h) sensitivity: plausible engine bugs (a dropped bias or LayerNorm term,
      wrong attention scale, q/k swapped, positions off by one) change the
      logits by far more than float32 rounding, so a C test comparing against
      this reference would see them.

Prints one line per check and a PASS/FAIL summary; exit status 1 on failure.
Run: /usr/bin/python3 tests/reference/selftest.py
"""

import json
import math
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

sys.dont_write_bytecode = True     # keep tests/reference free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import gguf_read  # noqa: E402
import gpt2_numpy  # noqa: E402
import make_hf_checkpoint  # noqa: E402
import ref_logits  # noqa: E402

# (layers, embd, heads, ctx, vocab)
CONFIGS = {
    "L2-C64-H4-ctx64-V512": (2, 64, 4, 64, 512),
    "L3-C48-H3-ctx40-V301": (3, 48, 3, 40, 301),
    "L1-C32-H2-ctx16-V257": (1, 32, 2, 16, 257),
}

RESULTS = []


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print("%s  %s%s" % ("PASS" if ok else "FAIL", name, ("  (" + detail + ")") if detail else ""))
    return ok


def rel_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


# ======================================================================= GGUF writer
# A minimal GGUF v3 writer, just enough to build test files (independent of
# the engine's writer, which it never sees).

GT = {"u8": (0, "<B"), "i8": (1, "<b"), "u16": (2, "<H"), "i16": (3, "<h"),
      "u32": (4, "<I"), "i32": (5, "<i"), "f32": (6, "<f"), "bool": (7, "<?"),
      "str": (8, None), "u64": (10, "<Q"), "i64": (11, "<q"), "f64": (12, "<d")}


def _gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _gval(t, v):
    if t == "str":
        return _gstr(v)
    return struct.pack(GT[t][1], v)


def _gkv(key, t, v):
    out = _gstr(key)
    if isinstance(t, tuple):                    # ("arr", elem_type)
        et = t[1]
        out += struct.pack("<IIQ", 9, GT[et][0], len(v))
        out += b"".join(_gval(et, x) for x in v)
    else:
        out += struct.pack("<I", GT[t][0]) + _gval(t, v)
    return out


def q8_0_quantize(a):
    """Q8_0 blocks along the last axis: (bytes, dequantized float32 copy)."""
    x = np.ascontiguousarray(a, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    q = np.clip(np.rint(x * inv[:, None]), -127, 127).astype(np.int8)
    d16 = d.astype(np.float16)
    blocks = np.zeros(x.shape[0], dtype=gguf_read.Q8_0_BLOCK)
    blocks["d"] = d16
    blocks["qs"] = q
    deq = (d16.astype(np.float32)[:, None] * q.astype(np.float32)).reshape(a.shape)
    return blocks.tobytes(), deq


def write_gguf(path, kvs, tensors, alignment=32, write_alignment_key=None):
    """kvs: [(key, type, value)], type a GT name or ("arr", elem type);
    tensors: [(name, ndarray in numpy layout, 'F32' | 'F16' | 'Q8_0')].
    Returns {name: the values the file holds, as float32}."""
    if write_alignment_key is None:
        write_alignment_key = alignment != 32
    kvs = list(kvs)
    if write_alignment_key:
        kvs.append(("general.alignment", "u32", alignment))
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    head += b"".join(_gkv(k, t, v) for k, t, v in kvs)
    infos, blobs, held = b"", [], {}
    off = 0
    for name, a, ttype in tensors:
        a = np.asarray(a, dtype=np.float32)
        if ttype == "F32":
            raw, tid, val = a.astype("<f4").tobytes(), 0, a.copy()
        elif ttype == "F16":
            raw, tid = a.astype("<f2").tobytes(), 1
            val = a.astype(np.float16).astype(np.float32)
        elif ttype == "Q8_0":
            (raw, val), tid = q8_0_quantize(a), 8
        else:
            raise ValueError(ttype)
        ne = list(reversed(a.shape))
        infos += _gstr(name) + struct.pack("<I", len(ne)) + \
            b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", tid, off)
        pad = (-len(raw)) % alignment
        blobs.append(raw + b"\0" * pad)
        off += len(raw) + pad
        held[name] = val
    body = head + infos
    body += b"\0" * ((-len(body)) % alignment)
    with open(path, "wb") as f:
        f.write(body)
        for b in blobs:
            f.write(b)
    return held


def gguf_from_hf(path, hf_dir, ttype="F32", q8_types=None, alignment=32):
    """Convert an HF checkpoint to GGUF with llama.cpp names. Conv1D weights
    [in, out] are transposed to [out, in]. ttype applies to 2-D tensors
    (1-D ones stay F32). Returns the values the file holds."""
    with open(os.path.join(hf_dir, "config.json")) as f:
        cfg = json.load(f)
    st = ref_logits.read_safetensors(os.path.join(hf_dir, "model.safetensors"))
    st = {k[len("transformer."):] if k.startswith("transformer.") else k: v
          for k, v in st.items()}
    L = cfg["n_layer"]
    names = [("token_embd.weight", "wte.weight", False),
             ("position_embd.weight", "wpe.weight", False)]
    for i in range(L):
        h, b = "h.%d." % i, "blk.%d." % i
        names += [(b + "attn_norm.weight", h + "ln_1.weight", False),
                  (b + "attn_norm.bias", h + "ln_1.bias", False),
                  (b + "attn_qkv.weight", h + "attn.c_attn.weight", True),
                  (b + "attn_qkv.bias", h + "attn.c_attn.bias", False),
                  (b + "attn_output.weight", h + "attn.c_proj.weight", True),
                  (b + "attn_output.bias", h + "attn.c_proj.bias", False),
                  (b + "ffn_norm.weight", h + "ln_2.weight", False),
                  (b + "ffn_norm.bias", h + "ln_2.bias", False),
                  (b + "ffn_up.weight", h + "mlp.c_fc.weight", True),
                  (b + "ffn_up.bias", h + "mlp.c_fc.bias", False),
                  (b + "ffn_down.weight", h + "mlp.c_proj.weight", True),
                  (b + "ffn_down.bias", h + "mlp.c_proj.bias", False)]
    names += [("output_norm.weight", "ln_f.weight", False),
              ("output_norm.bias", "ln_f.bias", False)]
    if "lm_head.weight" in st:
        names.append(("output.weight", "lm_head.weight", False))
    tensors = []
    for gname, hname, conv1d in names:
        a = st[hname].T if conv1d else st[hname]
        tensors.append((gname, a, ttype if a.ndim == 2 else "F32"))
    vocab, merges = make_hf_checkpoint.cut_vocab(cfg["vocab_size"])
    toks = [None] * len(vocab)
    for t, i in vocab.items():
        toks[i] = t
    kvs = [("general.architecture", "str", "gpt2"),
           ("general.name", "str", "selftest"),
           ("gpt2.block_count", "u32", L),
           ("gpt2.context_length", "u32", cfg["n_positions"]),
           ("gpt2.embedding_length", "u32", cfg["n_embd"]),
           ("gpt2.feed_forward_length", "u32", 4 * cfg["n_embd"]),
           ("gpt2.attention.head_count", "u32", cfg["n_head"]),
           ("gpt2.attention.layer_norm_epsilon", "f32", cfg["layer_norm_epsilon"]),
           ("tokenizer.ggml.model", "str", "gpt2"),
           ("tokenizer.ggml.tokens", ("arr", "str"), toks),
           ("tokenizer.ggml.merges", ("arr", "str"), [a + " " + b for a, b in merges])]
    return write_gguf(path, kvs, tensors, alignment=alignment)


# ======================================================================= helpers

def make(tmp, key, seed=1, **kw):
    L, C, H, N, V = CONFIGS[key]
    d = os.path.join(tmp, "%s-s%d-%s" % (key, seed, "-".join("%s%s" % kv for kv in sorted(kw.items()))))
    make_hf_checkpoint.make_checkpoint(d, L, C, H, N, V, seed, **kw)
    return d


def random_ids(config, T, seed):
    return [int(i) for i in np.random.default_rng(seed).integers(0, config["n_vocab"], T)]


# ======================================================================= (a)

def test_a_hf_vs_gguf(tmp):
    for key in CONFIGS:
        d = make(tmp, key)
        cfg_h, p_h = ref_logits.load_hf(d)
        g = os.path.join(tmp, key + ".gguf")
        gguf_from_hf(g, d)
        cfg_g, p_g = ref_logits.load_gguf(g)
        ids = random_ids(cfg_h, cfg_h["n_ctx"], 7)
        lh = gpt2_numpy.forward_params(cfg_h, p_h, ids)
        lg = gpt2_numpy.forward_params(cfg_g, p_g, ids)
        # the convenience API (load_gguf_model + forward) must agree as well
        c2, w2 = gpt2_numpy.load_gguf_model(g)
        l2 = gpt2_numpy.forward(c2, w2, ids)
        same_cfg = cfg_h == cfg_g
        check("(a) HF == GGUF F32 logits, bit-identical  [%s]" % key,
              same_cfg and np.array_equal(lh, lg) and np.array_equal(lg, l2),
              "T=%d max|logit|=%.4f config equal=%s" % (len(ids), np.abs(lh).max(), same_cfg))

    key = "L2-C64-H4-ctx64-V512"
    # F16 checkpoint -> F16 GGUF
    d = make(tmp, key, seed=3, dtype="f16")
    cfg_h, p_h = ref_logits.load_hf(d)
    g = os.path.join(tmp, "f16.gguf")
    gguf_from_hf(g, d, ttype="F16", alignment=64)
    cfg_g, p_g = ref_logits.load_gguf(g)
    ids = random_ids(cfg_h, 20, 8)
    lh = gpt2_numpy.forward_params(cfg_h, p_h, ids)
    lg = gpt2_numpy.forward_params(cfg_g, p_g, ids)
    check("(a) HF f16 == GGUF F16 (alignment 64) logits, bit-identical",
          np.array_equal(lh, lg))

    # 'transformer.' prefix + untied lm_head -> GGUF output.weight
    d = make(tmp, key, seed=4, prefix="transformer.", untied=True)
    cfg_h, p_h = ref_logits.load_hf(d)
    g = os.path.join(tmp, "untied.gguf")
    gguf_from_hf(g, d)
    cfg_g, p_g = ref_logits.load_gguf(g)
    lh = gpt2_numpy.forward_params(cfg_h, p_h, ids)
    lg = gpt2_numpy.forward_params(cfg_g, p_g, ids)
    p_tied = dict(p_h, head=p_h["wte"])
    lt = gpt2_numpy.forward_params(cfg_h, p_tied, ids)
    check("(a) prefixed + untied lm_head: HF == GGUF output.weight, and head is used",
          np.array_equal(lh, lg) and rel_diff(lt, lh) > 0.1,
          "untied vs tied rel diff %.2f" % rel_diff(lt, lh))

    # Q8_0: the reader decodes blocks to exactly d * q (quantized here)
    d = make(tmp, key, seed=5)
    g32 = os.path.join(tmp, "q_ref_f32.gguf")
    gq = os.path.join(tmp, "q8.gguf")
    gguf_from_hf(g32, d)
    held = gguf_from_hf(gq, d, ttype="Q8_0")
    meta, infos = gguf_read.read_gguf_infos(gq)
    _, tq = gguf_read.read_gguf(gq)
    types_ok = all(infos[n].type == (8 if held[n].ndim == 2 else 0) for n in held)
    exact = all(np.array_equal(tq[n], held[n]) and tq[n].dtype == np.float32 for n in held)
    cfg, w32 = gpt2_numpy.load_gguf_model(g32)
    _, wq = gpt2_numpy.load_gguf_model(gq)
    ids = random_ids(cfg, 32, 9)
    l32 = gpt2_numpy.forward(cfg, w32, ids)
    lq = gpt2_numpy.forward(cfg, wq, ids)
    rd = rel_diff(lq, l32)
    check("(a) GGUF Q8_0 blocks decode to exactly f16(d) * q; Q8_0 vs F32 logits close",
          types_ok and exact and 1e-6 < rd < 5e-2,
          "Q8_0 vs F32 max|diff|/max|logit| = %.2e" % rd)

    # metadata of every type round-trips
    kvs = [("k.u8", "u8", 250), ("k.i8", "i8", -100), ("k.u16", "u16", 65000),
           ("k.i16", "i16", -30000), ("k.u32", "u32", 4000000000), ("k.i32", "i32", -2000000000),
           ("k.f32", "f32", 1.5), ("k.bool", "bool", True), ("k.str", "str", "h\u00e9llo \u4e16"),
           ("k.u64", "u64", 2 ** 63 + 5), ("k.i64", "i64", -2 ** 62), ("k.f64", "f64", math.pi),
           ("k.arr_i32", ("arr", "i32"), [1, -2, 3]), ("k.arr_str", ("arr", "str"), ["a", "", "\u0120t"]),
           ("k.arr_f32", ("arr", "f32"), [0.25, -1.0]), ("k.arr_bool", ("arr", "bool"), [True, False]),
           ("k.empty", ("arr", "u8"), [])]
    p = os.path.join(tmp, "meta.gguf")
    t3 = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    write_gguf(p, kvs, [("t3", t3, "F32"), ("t1", np.array([7.0], np.float32), "F16")],
               alignment=16)
    meta, tens = gguf_read.read_gguf(p)
    want = {k: v for k, _, v in kvs}
    want["general.alignment"] = 16
    check("(a) GGUF reader: all metadata types, 3-D shape reversal, alignment 16",
          meta == want and np.array_equal(tens["t3"], t3) and tens["t1"].tolist() == [7.0])

    # truncated files (inside the header, the infos, the data) -> GGUFError
    with open(p, "rb") as f:
        blob = f.read()
    _, infos = gguf_read.read_gguf_infos(p)
    data_end = max(i.offset + i.nbytes for i in infos.values())
    bad = os.path.join(tmp, "trunc.gguf")
    rejected = []
    for cut in (0, 3, 20, 60, len(blob) // 2, data_end - 1):
        with open(bad, "wb") as f:
            f.write(blob[:cut])
        try:
            gguf_read.read_gguf(bad)
            rejected.append(False)
        except gguf_read.GGUFError:
            rejected.append(True)
    check("(a) GGUF reader rejects truncated files with GGUFError (6 cut points)",
          all(rejected), "rejected %s" % rejected)


# ======================================================================= (b)

def test_b_causality(tmp):
    for key in CONFIGS:
        d = make(tmp, key)
        cfg, p = ref_logits.load_hf(d)
        T = cfg["n_ctx"]
        ids = random_ids(cfg, T, 11)
        full = gpt2_numpy.forward_params(cfg, p, ids)
        ok, worst_same, min_changed = True, 0.0, np.inf
        for t in sorted({0, 1, T // 3, T // 2, T - 2}):
            alt = ids[:t + 1] + [(i * 7 + 3) % cfg["n_vocab"] for i in ids[t + 1:]]
            la = gpt2_numpy.forward_params(cfg, p, alt)
            same = float(np.abs(la[:t + 1] - full[:t + 1]).max())
            changed = float(np.abs(la[t + 1:] - full[t + 1:]).max(axis=1).min())
            worst_same = max(worst_same, same)
            min_changed = min(min_changed, changed)
            pre = gpt2_numpy.forward_params(cfg, p, ids[:t + 1])
            worst_same = max(worst_same, float(np.abs(pre - full[:t + 1]).max()))
        ok = worst_same <= 1e-12 * np.abs(full).max() and min_changed > 1e-6
        check("(b) causality: rows <= t unchanged by later tokens; prefix run == prefix rows  [%s]" % key,
              ok, "max change at <= t %.1e, min change after t %.1e" % (worst_same, min_changed))


# ======================================================================= (c)

def py_layer_norm(v, w, b, eps):
    n = len(v)
    mean = sum(v) / n
    var = sum((x - mean) * (x - mean) for x in v) / n
    s = math.sqrt(var + eps)
    return [(v[i] - mean) / s * w[i] + b[i] for i in range(n)]


def py_linear(v, W, b):
    """W as [out][in] (GGUF layout): y[o] = b[o] + sum_i W[o][i] v[i]."""
    return [b[o] + sum(W[o][i] * v[i] for i in range(len(v))) for o in range(len(W))]


def py_gelu(x):
    return 0.5 * x * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x * x * x)))


def py_forward(cfg, W, ids):
    """GPT-2 forward with scalar Python loops only (no numpy)."""
    C, NH, eps = cfg["n_embd"], cfg["n_head"], cfg["eps"]
    HD = C // NH
    T = len(ids)
    xs = [[W["token_embd.weight"][ids[t]][c] + W["position_embd.weight"][t][c]
           for c in range(C)] for t in range(T)]
    for l in range(cfg["n_layer"]):
        b = "blk.%d." % l
        hs = [py_layer_norm(x, W[b + "attn_norm.weight"], W[b + "attn_norm.bias"], eps) for x in xs]
        qkv = [py_linear(h, W[b + "attn_qkv.weight"], W[b + "attn_qkv.bias"]) for h in hs]
        att = [[0.0] * C for _ in range(T)]
        for hh in range(NH):
            o = hh * HD
            for t in range(T):
                scores = []
                for j in range(t + 1):          # causal: keys 0..t
                    s = 0.0
                    for dd in range(HD):
                        s += qkv[t][o + dd] * qkv[j][C + o + dd]
                    scores.append(s / math.sqrt(HD))
                m = max(scores)
                e = [math.exp(s - m) for s in scores]
                z = sum(e)
                for dd in range(HD):
                    att[t][o + dd] = sum(e[j] / z * qkv[j][2 * C + o + dd] for j in range(t + 1))
        for t in range(T):
            a = py_linear(att[t], W[b + "attn_output.weight"], W[b + "attn_output.bias"])
            xs[t] = [xs[t][c] + a[c] for c in range(C)]
        for t in range(T):
            h = py_layer_norm(xs[t], W[b + "ffn_norm.weight"], W[b + "ffn_norm.bias"], eps)
            u = [py_gelu(v) for v in py_linear(h, W[b + "ffn_up.weight"], W[b + "ffn_up.bias"])]
            dn = py_linear(u, W[b + "ffn_down.weight"], W[b + "ffn_down.bias"])
            xs[t] = [xs[t][c] + dn[c] for c in range(C)]
    head = W.get("output.weight", W["token_embd.weight"])
    out = []
    for t in range(T):
        h = py_layer_norm(xs[t], W["output_norm.weight"], W["output_norm.bias"], eps)
        out.append([sum(head[v][c] * h[c] for c in range(C)) for v in range(len(head))])
    return out


def py_random_weights(L, C, V, N, seed, untied=False):
    """GGUF-named weights as nested Python lists ([out][in] for matrices)."""
    r = random.Random(seed)

    def mat(rows, cols, s=0.5):
        return [[r.gauss(0.0, s) for _ in range(cols)] for _ in range(rows)]

    def vec(n, mu=0.0, s=0.3):
        return [mu + r.gauss(0.0, s) for _ in range(n)]

    F = 4 * C
    W = {"token_embd.weight": mat(V, C, 1.0), "position_embd.weight": mat(N, C, 1.0)}
    for l in range(L):
        b = "blk.%d." % l
        W.update({b + "attn_norm.weight": vec(C, 1.0), b + "attn_norm.bias": vec(C),
                  b + "attn_qkv.weight": mat(3 * C, C, 1.0), b + "attn_qkv.bias": vec(3 * C),
                  b + "attn_output.weight": mat(C, C), b + "attn_output.bias": vec(C),
                  b + "ffn_norm.weight": vec(C, 1.0), b + "ffn_norm.bias": vec(C),
                  b + "ffn_up.weight": mat(F, C), b + "ffn_up.bias": vec(F),
                  b + "ffn_down.weight": mat(C, F), b + "ffn_down.bias": vec(C)})
    W["output_norm.weight"] = vec(C, 1.0)
    W["output_norm.bias"] = vec(C)
    if untied:
        W["output.weight"] = mat(V, C)
    return W


def test_c_loops():
    # primitives against values worked out by hand
    x = np.array([[3.0, 1.0]])
    ln = gpt2_numpy.layer_norm(x, np.ones(2), np.zeros(2), 0.0)      # mean 2, var 1
    sm = gpt2_numpy.softmax_rows(np.array([[0.0, math.log(3.0), -np.inf]]))
    g = gpt2_numpy.gelu_tanh(np.array([0.0, 1.0, -1.0, 2.0]))
    # gelu_tanh(1) = 0.5 (1 + tanh(0.7978845608 * 1.044715)) = 0.841191990607...
    # gelu_tanh(2) = 1 + tanh(0.7978845608 * 2.35772)       = 1.954597694087...
    ok = (np.allclose(ln, [[1.0, -1.0]], atol=1e-15, rtol=0)
          and np.allclose(sm, [[0.25, 0.75, 0.0]], atol=1e-15, rtol=0)
          and abs(g[0]) == 0.0 and abs(g[1] - 0.8411919906082768) < 1e-12
          and abs(g[2] + 0.15880800939172324) < 1e-12 and abs(g[3] - 1.9545976940871754) < 1e-12
          and py_layer_norm([3.0, 1.0], [1, 1], [0, 0], 0.0) == [1.0, -1.0]
          and abs(py_gelu(1.0) - 0.8411919906082768) < 1e-15)
    check("(c) LayerNorm([3,1]) = [1,-1], softmax([0, ln 3, -inf]) = [.25,.75,0], GELU(0,1,-1,2) by hand", ok)

    cases = [("L1 C2 NH1 V5 ctx4", dict(L=1, C=2, NH=1, V=5, N=4), [3, 0, 4, 3], False, 1e-5),
             ("L2 C6 NH3 V7 ctx5, untied head", dict(L=2, C=6, NH=3, V=7, N=5), [6, 1, 1, 0, 5], True, 1e-3)]
    for label, s, ids, untied, eps in cases:
        W = py_random_weights(s["L"], s["C"], s["V"], s["N"], seed=1234 + s["C"], untied=untied)
        cfg = {"n_layer": s["L"], "n_embd": s["C"], "n_head": s["NH"], "n_ctx": s["N"],
               "n_vocab": s["V"], "eps": eps}
        want = py_forward(cfg, W, ids)
        wnp = {k: np.array(v, dtype=np.float64) for k, v in W.items()}
        got = gpt2_numpy.forward(cfg, wnp, ids)
        err = float(np.abs(got - np.array(want)).max())
        scale = max(abs(v) for row in want for v in row)
        check("(c) vectorized forward == scalar Python loops  [%s]" % label,
              err <= 1e-12 * max(1.0, scale), "max|diff| %.1e, max|logit| %.3f" % (err, scale))


# ======================================================================= (d)

def test_d_precision(tmp):
    for key in CONFIGS:
        d = make(tmp, key)
        cfg, p = ref_logits.load_hf(d)
        ids = random_ids(cfg, cfg["n_ctx"], 13)
        l64 = gpt2_numpy.forward_params(cfg, p, ids)
        l32 = gpt2_numpy.forward_params(cfg, p, ids, dtype=np.float32)
        rd = rel_diff(l32.astype(np.float64), l64)
        check("(d) float32 vs float64 forward within 1e-5 of max|logit|  [%s]" % key,
              l32.dtype == np.float32 and l64.dtype == np.float64 and 0 < rd < 1e-5,
              "max|diff|/max|logit| = %.1e" % rd)


# ======================================================================= (e)

def test_e_greedy(tmp):
    key = "L3-C48-H3-ctx40-V301"
    d = make(tmp, key, std=0.2)
    cfg, p = ref_logits.load_hf(d)
    prompt = random_ids(cfg, 5, 17)
    new = gpt2_numpy.greedy_params(cfg, p, prompt, 12)
    seq = prompt + new
    full = gpt2_numpy.forward_params(cfg, p, seq[:-1])
    ok = len(new) == 12 and all(int(np.argmax(full[len(prompt) - 1 + i])) == new[i]
                                for i in range(12))
    check("(e) greedy ids == argmax of one full forward over prompt+generated  [%s, std 0.2]" % key,
          ok, "prompt %s -> %s" % (prompt, new))
    try:
        gpt2_numpy.greedy_params(cfg, p, prompt, cfg["n_ctx"])
        ok = False
    except ValueError:
        ok = True
    check("(e) greedy past the context length is refused", ok)


# ======================================================================= (f)

def test_f_cli(tmp):
    key = "L2-C64-H4-ctx64-V512"
    d = make(tmp, key)
    g = os.path.join(tmp, "cli.gguf")
    gguf_from_hf(g, d)
    script = os.path.join(HERE, "ref_logits.py")
    ids = "5 17,300 2 511 0 64"
    ok_all = True
    outs = {}
    for flag, src in (("--hf", d), ("--gguf", g)):
        out = os.path.join(tmp, "cli%s.bin" % flag)
        r = subprocess.run([sys.executable, script, flag, src, "--ids", ids, "--out", out,
                            "--greedy", "4"], capture_output=True, text=True)
        lines = r.stdout.strip().split("\n")
        arr = np.fromfile(out, dtype="<f4")
        cfg, p = ref_logits.load_hf(d)
        want = gpt2_numpy.forward_params(cfg, p, ref_logits.parse_ids(ids)).astype(np.float32)
        greedy = gpt2_numpy.greedy_params(cfg, p, ref_logits.parse_ids(ids), 4)
        ok = (r.returncode == 0 and len(lines) == 2
              and lines[0].split()[:3] == ["shape", "7", "512"]
              and abs(float(lines[0].split()[4]) - np.abs(want).max()) < 1e-6
              and arr.size == 7 * 512 and np.array_equal(arr.reshape(7, 512), want)
              and lines[1] == " ".join(map(str, greedy)))
        outs[flag] = lines
        ok_all &= ok
    check("(f) ref_logits.py --hf / --gguf: float32 LE [T,V] file, stdout lines, --greedy",
          ok_all, "stdout: %r" % outs["--gguf"])
    r = subprocess.run([sys.executable, script, "--hf", d, "--ids", "1 512", "--out",
                        os.path.join(tmp, "x.bin")], capture_output=True, text=True)
    check("(f) ref_logits.py: out-of-range id -> exit 2 with a message",
          r.returncode == 2 and "out of range" in r.stderr, r.stderr.strip())


# ======================================================================= (g)

def test_g_files(tmp):
    ok = True
    for dtype in ("f32", "f16"):
        d = make(tmp, "L3-C48-H3-ctx40-V301", seed=21, dtype=dtype)
        with open(os.path.join(d, "model.safetensors"), "rb") as f:
            blob = f.read()
        n = int.from_bytes(blob[:8], "little")
        htext = blob[8:8 + n].decode("utf-8")
        header = json.loads(htext)
        names = [k for k in header if k != "__metadata__"]
        pos = 0
        for k in names:
            b, e = header[k]["data_offsets"]
            ok &= b == pos
            pos = e
        ok &= n % 8 == 0 and htext == htext.rstrip(" ") + " " * (len(htext) - len(htext.rstrip(" ")))
        ok &= names == sorted(names) and 8 + n + pos == len(blob)
        ok &= header["__metadata__"] == {"format": "pt"}
        st = ref_logits.read_safetensors(os.path.join(d, "model.safetensors"))
        m = st["h.2.attn.bias"]
        ok &= header["h.2.attn.bias"]["dtype"] == "F32" and m.shape == (1, 1, 40, 40)
        ok &= np.array_equal(m[0, 0], np.tril(np.ones((40, 40), np.float32)))
        ok &= header["h.0.attn.c_attn.weight"] == dict(header["h.0.attn.c_attn.weight"],
                                                      dtype=dtype.upper(), shape=[48, 144])
        ok &= list(header["h.0.mlp.c_proj.weight"]["shape"]) == [192, 48]
        with open(os.path.join(d, "config.json")) as f:
            cfg = json.load(f)
        ok &= (cfg["model_type"] == "gpt2" and cfg["n_inner"] is None
               and cfg["activation_function"] == "gelu_new" and cfg["n_ctx"] == 40
               and cfg["n_positions"] == 40 and cfg["vocab_size"] == 301)
        # every bias and LayerNorm parameter is non-trivial
        for k, a in st.items():
            if k.endswith(".attn.bias"):
                continue
            if "ln_" in k and k.endswith("weight"):       # around 1, spread ~0.1
                ok &= 0.9 < float(a.mean()) < 1.1 and float(a.std()) > 0.05
            elif k.endswith("bias"):                      # non-zero, spread ~0.05
                ok &= float(np.mean(a != 0.0)) > 0.95 and float(a.std()) > 0.02
    check("(g) model.safetensors layout (sorted, contiguous, space-padded to 8), F32 "
          "mask buffers, shapes, config.json, non-trivial biases / norms", ok)

    with open(os.path.join(d, "vocab.json"), encoding="utf-8") as f:
        vocab = json.load(f)
    with open(os.path.join(d, "merges.txt"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(l.split(" ")) for l in lines[1:] if l]
    ok = (lines[0] == "#version: 0.2" and sorted(vocab.values()) == list(range(301))
          and all(a in vocab and b in vocab and a + b in vocab for a, b in merges)
          and len(merges) == 301 - 256 and vocab["\u0120t"] == 256)
    full_vocab, full_merges = make_hf_checkpoint.cut_vocab(50257)
    ok &= len(full_vocab) == 50257 and len(full_merges) == 50000
    ok &= [tuple(m) for m in full_merges[:len(merges)]] == merges
    check("(g) vocab.json / merges.txt cut to V=301 (45 merges, in order); V=50257 keeps all 50000",
          ok, "%d tokens, %d merges" % (len(vocab), len(merges)))


# ======================================================================= (h)

def test_i_q8_activations():
    """gpt2_numpy.q8_0_roundtrip (the engine's activation quantization) against
    a plain per-element loop: float32 scale, roundf (halves away from zero),
    scale stored as fp16."""
    import math
    import struct
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, size=(3, 96)).astype(np.float32)
    x[0, :32] = 0.0                                  # an all-zero block
    x[1, 32:64] = np.float32(1e-3)                   # all equal
    x[2, 0] = np.float32(1000.0)                     # one outlier
    # amax 127 makes d = 1: every x.5 is an exact rounding tie
    x[1, 64:96] = np.float32(127.0)
    x[1, 65:96] = (np.arange(31, dtype=np.float32) - 15) + np.float32(0.5)
    got = gpt2_numpy.q8_0_roundtrip(x)
    want = np.zeros_like(got)
    for r in range(x.shape[0]):
        for b0 in range(0, x.shape[1], 32):
            blk = [float(v) for v in x[r, b0:b0 + 32]]
            amax = np.float32(max(abs(v) for v in blk))
            d = np.float32(amax / np.float32(127))
            inv = np.float32(1) / d if d != 0 else np.float32(0)
            d16 = struct.unpack("<e", struct.pack("<e", float(d)))[0]
            for i, v in enumerate(blk):
                p = float(np.float32(v) * inv)
                q = math.copysign(math.floor(abs(p) + 0.5), p)
                want[r, b0 + i] = q * d16
    check("(i) Q8_0 activation round trip == per-element loop (zeros, equal, outlier, ties)",
          np.array_equal(got, want), "max diff %.3g" % float(np.abs(got - want).max()))


def test_h_sensitivity(tmp):
    key = "L2-C64-H4-ctx64-V512"
    for std in (0.02, 0.2):
        d = make(tmp, key, std=std)
        cfg, p = ref_logits.load_hf(d)
        C, NH = cfg["n_embd"], cfg["n_head"]
        ids = random_ids(cfg, 48, 23)
        base = gpt2_numpy.forward_params(cfg, p, ids)

        def mutated(fn):
            q = {k: v for k, v in p.items() if k != "layers"}
            q["layers"] = [dict(l) for l in p["layers"]]
            fn(q)
            return rel_diff(gpt2_numpy.forward_params(cfg, q, ids), base)

        def each_layer(k, f):
            def g(q):
                for l in q["layers"]:
                    l[k] = f(l[k])
            return g

        def wrong_scale(q):            # softmax scale 1/sqrt(C) instead of 1/sqrt(HD)
            f = math.sqrt(C // NH) / math.sqrt(C)
            for l in q["layers"]:
                l["qkv_w"] = l["qkv_w"].copy()
                l["qkv_b"] = l["qkv_b"].copy()
                l["qkv_w"][:, :C] *= f
                l["qkv_b"][:C] *= f

        def swap_qk(q):
            for l in q["layers"]:
                w, b = l["qkv_w"], l["qkv_b"]
                l["qkv_w"] = np.concatenate([w[:, C:2 * C], w[:, :C], w[:, 2 * C:]], axis=1)
                l["qkv_b"] = np.concatenate([b[C:2 * C], b[:C], b[2 * C:]])

        def pos_shift(q):
            q["wpe"] = np.concatenate([p["wpe"][1:], p["wpe"][:1]])

        def zero(a):
            return np.zeros_like(a)

        def one(a):
            return np.ones_like(a)

        bugs = [("qkv bias dropped", each_layer("qkv_b", zero)),
                ("attn proj bias dropped", each_layer("proj_b", zero)),
                ("mlp up bias dropped", each_layer("fc_b", zero)),
                ("mlp down bias dropped", each_layer("out_b", zero)),
                ("ln_1 weight ignored", each_layer("ln1_w", one)),
                ("ln_1 bias dropped", each_layer("ln1_b", zero)),
                ("ln_2 bias dropped", each_layer("ln2_b", zero)),
                ("ln_f bias dropped", lambda q: q.update(lnf_b=zero(p["lnf_b"]))),
                ("softmax scale 1/sqrt(C)", wrong_scale),
                ("q and k swapped", swap_qk),
                ("positions off by one", pos_shift)]
        res = [(name, mutated(fn)) for name, fn in bugs]
        worst = min(r for _, r in res)
        check("(h) each plausible bug moves logits by > 1e-4 of max|logit| (f32 noise ~1e-7)  [%s, std %g]"
              % (key, std), worst > 1e-4,
              "smallest %.1e: " % worst + ", ".join("%s %.0e" % (n, r) for n, r in res))


# ======================================================================= main

def main():
    t0 = time.time()
    tests = [("a", test_a_hf_vs_gguf), ("b", test_b_causality), ("c", test_c_loops),
             ("d", test_d_precision), ("e", test_e_greedy), ("f", test_f_cli),
             ("g", test_g_files), ("h", test_h_sensitivity), ("i", test_i_q8_activations)]
    with tempfile.TemporaryDirectory(prefix="gpt2c-ref-selftest-") as tmp:
        for tag, fn in tests:
            try:
                fn() if tag in ("c", "i") else fn(tmp)
            except Exception:
                traceback.print_exc()
                check("(%s) %s raised an exception" % (tag, fn.__name__), False)
    failed = [n for n, ok in RESULTS if not ok]
    print("-" * 72)
    print("selftest: %d checks, %d passed, %d failed, %.1f s"
          % (len(RESULTS), len(RESULTS) - len(failed), len(failed), time.time() - t0))
    print("RESULT: %s" % ("PASS" if not failed else "FAIL"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
