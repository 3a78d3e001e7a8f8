#!/usr/bin/python3
"""Independent NumPy reference of the GPT-2 forward pass (gpt2c tests).

Written from the GPT-2 architecture only; it shares no code with the C engine.
Computation is done in float64 (from the float32 file weights) by default, one
plain step at a time, with no caching: every call recomputes the whole prefix.

The core, forward_params(), works on a neutral parameter set in which every
linear layer is stored as W [in, out] and applied as  y = x @ W + b :

    params = {
      "wte":  [V, C]      token embedding
      "wpe":  [P, C]      position embedding (P = context length)
      "head": [V, C]      output projection, logits = x @ head^T (tied: = wte)
      "lnf_w", "lnf_b":   [C]
      "layers": [ { "ln1_w", "ln1_b": [C],
                    "qkv_w": [C, 3C], "qkv_b": [3C],   columns: q | k | v
                    "proj_w": [C, C], "proj_b": [C],
                    "ln2_w", "ln2_b": [C],
                    "fc_w": [C, F],   "fc_b": [F],      F = 4C normally
                    "out_w": [F, C],  "out_b": [C] }, ... ]
    }

Two adapters fill it:
  * gguf_params(): from GGUF (llama.cpp names); GGUF matrices are [out, in]
    (ne = [in, out]), so they are transposed here.
  * ref_logits.hf_params(): from a Hugging Face checkpoint, whose Conv1D
    weights are already [in, out] and are used as they are.

config dict keys: n_layer, n_embd, n_head, n_ctx, n_vocab, eps.
"""

import math

import numpy as np

from gguf_read import read_gguf

GELU_C = math.sqrt(2.0 / math.pi)


# ----------------------------------------------------------------- building blocks

def layer_norm(x, w, b, eps):
    """LayerNorm over the last axis with the biased (1/C) variance."""
    mu = x.mean(axis=-1, keepdims=True)
    d = x - mu
    var = (d * d).mean(axis=-1, keepdims=True)
    return d / np.sqrt(var + x.dtype.type(eps)) * w + b


def gelu_tanh(x):
    """GELU, tanh form: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    t = x.dtype.type
    return t(0.5) * x * (t(1.0) + np.tanh(t(GELU_C) * (x + t(0.044715) * x * x * x)))


def softmax_rows(s):
    """Softmax over the last axis (max subtracted; -inf entries give 0)."""
    m = s.max(axis=-1, keepdims=True)
    e = np.exp(s - m)
    return e / e.sum(axis=-1, keepdims=True)


def causal_self_attention(q, k, v, n_head):
    """q, k, v: [T, C]. Heads are contiguous slices of HD = C / n_head columns.
    Row t attends to rows 0..t only. Returns [T, C] (heads concatenated)."""
    T, C = q.shape
    hd = C // n_head
    scale = q.dtype.type(1.0 / math.sqrt(hd))
    future = np.triu(np.ones((T, T), dtype=bool), k=1)   # j > t
    out = np.empty_like(q)
    for h in range(n_head):
        cols = slice(h * hd, (h + 1) * hd)
        scores = (q[:, cols] @ k[:, cols].T) * scale      # [T, T]
        scores[future] = -np.inf
        out[:, cols] = softmax_rows(scores) @ v[:, cols]
    return out


def q8_0_roundtrip(x):
    """Rows of x as the engine feeds them to Q8_0 weights: cast to float32,
    quantized per block of 32 (d = max|x| / 127 in float32, q = x * (1/d) rounded
    half away from zero, d stored as fp16) and dequantized, in float64."""
    x32 = np.asarray(x, dtype=np.float32)
    T, K = x32.shape
    if K % 32:
        raise ValueError("Q8_0 needs rows that are a multiple of 32, got %d" % K)
    b = x32.reshape(T, K // 32, 32)
    amax = np.abs(b).max(axis=2, keepdims=True)
    d = amax / np.float32(127)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / np.where(d != 0, d, np.float32(1)), np.float32(0))
    v = (b * inv.astype(np.float32)).astype(np.float64)   # the float32 product, exactly
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)            # roundf: halves away from zero
    d16 = d.astype(np.float16).astype(np.float64)
    return (q * d16).reshape(T, K)


def f16_round(a):
    """a rounded to IEEE half (through float32, nearest even), in a's dtype:
    what an fp16 KV cache keeps of the keys and values."""
    return np.asarray(a, dtype=np.float32).astype(np.float16).astype(a.dtype)


def block(x, p, config, act_q=(), kv_f16=False):
    """One transformer layer (pre-LN), x: [T, C] -> [T, C]. act_q names the
    matmuls ("qkv", "proj", "fc", "out") whose input is quantized to Q8_0 first,
    as the engine does for Q8_0 weights. kv_f16: attention sees the keys and
    values rounded to fp16, as the engine's default KV cache stores them."""
    C = config["n_embd"]
    eps = config["eps"]

    def lin(h, name):
        if name in act_q:
            h = q8_0_roundtrip(h)
        return h @ p[name + "_w"] + p[name + "_b"]

    h = layer_norm(x, p["ln1_w"], p["ln1_b"], eps)
    qkv = lin(h, "qkv")                                    # [T, 3C]
    q, k, v = qkv[:, 0:C], qkv[:, C:2 * C], qkv[:, 2 * C:3 * C]
    if kv_f16:
        k, v = f16_round(k), f16_round(v)
    a = causal_self_attention(q, k, v, config["n_head"])
    x = x + lin(a, "proj")
    h = layer_norm(x, p["ln2_w"], p["ln2_b"], eps)
    u = gelu_tanh(lin(h, "fc"))                            # [T, F]
    x = x + lin(u, "out")
    return x


def check_ids(config, ids):
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError("need at least one token id")
    if len(ids) > config["n_ctx"]:
        raise ValueError("%d tokens exceed the context length %d"
                         % (len(ids), config["n_ctx"]))
    bad = [i for i in ids if i < 0 or i >= config["n_vocab"]]
    if bad:
        raise ValueError("token ids out of range [0, %d): %s" % (config["n_vocab"], bad[:5]))
    return ids


def forward_params(config, params, ids, dtype=np.float64):
    """Logits [T, V] (dtype) for every position of ids. params may carry
    "act_q": per layer, the matmuls whose input is quantized to Q8_0,
    "head_q": whether the LM head's input is (see q8_0_roundtrip), and
    "kv_f16": whether keys and values are rounded to fp16 (see block)."""
    ids = check_ids(config, ids)
    T = len(ids)

    def f(a):
        return np.asarray(a, dtype=dtype)

    x = f(params["wte"])[ids] + f(params["wpe"])[:T]       # [T, C]
    act_q = params.get("act_q") or [()] * len(params["layers"])
    for p, aq in zip(params["layers"], act_q):
        x = block(x, {k: f(v) for k, v in p.items()}, config, aq, bool(params.get("kv_f16")))
    x = layer_norm(x, f(params["lnf_w"]), f(params["lnf_b"]), config["eps"])
    if params.get("head_q"):
        x = q8_0_roundtrip(x)
    return x @ f(params["head"]).T                         # [T, V]


def greedy_params(config, params, ids, n_new, dtype=np.float64):
    """Greedy decoding: append argmax of the last row, recomputing the whole
    sequence every step (no cache). Returns the n_new new ids."""
    seq = check_ids(config, ids)
    if len(seq) + n_new > config["n_ctx"]:
        raise ValueError("prompt %d + %d new tokens exceed the context length %d"
                         % (len(seq), n_new, config["n_ctx"]))
    new = []
    for _ in range(n_new):
        logits = forward_params(config, params, seq, dtype)
        nxt = int(np.argmax(logits[-1]))      # first index wins on a tie
        seq.append(nxt)
        new.append(nxt)
    return new


# ----------------------------------------------------------------- GGUF adapter

def _c64(a):
    """float64, C-contiguous copy (also turns a transposed view into a plain array)."""
    return np.ascontiguousarray(a, dtype=np.float64)


def gguf_params(config, w):
    """Neutral params from GGUF-named weights (numpy shape = ne reversed)."""
    C = config["n_embd"]

    def get(name, shape):
        if name not in w:
            raise KeyError("missing tensor %s" % name)
        a = w[name]
        if tuple(a.shape) != tuple(shape):
            raise ValueError("%s: shape %s, expected %s" % (name, a.shape, tuple(shape)))
        return a

    V = config["n_vocab"]
    F = w["blk.0.ffn_up.weight"].shape[0]
    params = {
        "wte": _c64(get("token_embd.weight", (V, C))),
        "wpe": _c64(get("position_embd.weight", (config["n_ctx"], C))),
        "lnf_w": _c64(get("output_norm.weight", (C,))),
        "lnf_b": _c64(get("output_norm.bias", (C,))),
        "layers": [],
    }
    params["head"] = _c64(get("output.weight", (V, C))) if "output.weight" in w \
        else params["wte"]
    for i in range(config["n_layer"]):
        b = "blk.%d." % i
        params["layers"].append({
            "ln1_w": _c64(get(b + "attn_norm.weight", (C,))),
            "ln1_b": _c64(get(b + "attn_norm.bias", (C,))),
            # GGUF [out, in] -> [in, out]
            "qkv_w": _c64(get(b + "attn_qkv.weight", (3 * C, C)).T),
            "qkv_b": _c64(get(b + "attn_qkv.bias", (3 * C,))),
            "proj_w": _c64(get(b + "attn_output.weight", (C, C)).T),
            "proj_b": _c64(get(b + "attn_output.bias", (C,))),
            "ln2_w": _c64(get(b + "ffn_norm.weight", (C,))),
            "ln2_b": _c64(get(b + "ffn_norm.bias", (C,))),
            "fc_w": _c64(get(b + "ffn_up.weight", (F, C)).T),
            "fc_b": _c64(get(b + "ffn_up.bias", (F,))),
            "out_w": _c64(get(b + "ffn_down.weight", (C, F)).T),
            "out_b": _c64(get(b + "ffn_down.bias", (C,))),
        })
    return params


def gguf_config(meta, tensors):
    """config dict from GGUF metadata (vocab size from token_embd)."""
    def key(k):
        if k not in meta:
            raise KeyError("GGUF metadata lacks %s" % k)
        return meta[k]

    arch = meta.get("general.architecture", "gpt2")
    if arch != "gpt2":
        raise ValueError("general.architecture is %r, expected 'gpt2'" % arch)
    cfg = {
        "n_layer": int(key("gpt2.block_count")),
        "n_embd": int(key("gpt2.embedding_length")),
        "n_head": int(key("gpt2.attention.head_count")),
        "n_ctx": int(key("gpt2.context_length")),
        "eps": float(key("gpt2.attention.layer_norm_epsilon")),
        "n_vocab": int(tensors["token_embd.weight"].shape[0]),
    }
    if cfg["n_embd"] % cfg["n_head"] != 0:
        raise ValueError("n_embd %d not divisible by n_head %d" % (cfg["n_embd"], cfg["n_head"]))
    return cfg


def load_gguf_model(path):
    """(config, weights): weights are the GGUF tensors by name, float32,
    numpy shape = ne reversed (F16 / Q8_0 dequantized)."""
    meta, tensors = read_gguf(path)
    return gguf_config(meta, tensors), tensors


def forward(config, weights, ids, dtype=np.float64, kv_f16=False):
    """Logits [T, V] for GGUF-named weights (as returned by load_gguf_model)."""
    params = gguf_params(config, weights)
    params["kv_f16"] = kv_f16
    return forward_params(config, params, ids, dtype)


def greedy_generate(config, weights, ids, n_new, dtype=np.float64, kv_f16=False):
    """n_new greedy ids after ids, for GGUF-named weights (full recompute each step)."""
    params = gguf_params(config, weights)
    params["kv_f16"] = kv_f16
    return greedy_params(config, params, ids, n_new, dtype)
