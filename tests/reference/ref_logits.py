#!/usr/bin/python3
"""Reference logits for the gpt2c tests, from a Hugging Face checkpoint
directory or from a GGUF file, computed by gpt2_numpy (float64).

    ref_logits.py --hf DIR     --ids "1 2 3" --out FILE
    ref_logits.py --gguf FILE  --ids "1 2 3" --out FILE
    ref_logits.py (--hf DIR | --gguf FILE) --ids "1 2 3" --greedy N [--out FILE]

--out writes the logits of every position as raw float32 little-endian,
row-major [T, V] (T = number of ids), and prints one line to stdout:

    shape T V max_abs_logit X

--greedy N prints one line to stdout: the N greedy ids that follow the prompt
(argmax of the last row, first index on a tie, whole sequence recomputed every
step), separated by spaces. With both, the logits line comes first. A note on
stderr gives the smallest top-1 / top-2 logit gap along the greedy path, i.e.
how much error an engine may make before its greedy ids legitimately differ.

The HF path reads config.json and model.safetensors with the small reader
below and uses the Conv1D weights as they are stored, [in, out], y = x @ W + b
(no transposition); the GGUF path reads with gguf_read.py and transposes the
GGUF [out, in] matrices. Ids may be separated by spaces and/or commas.
Errors go to stderr with exit status 2.
"""

import argparse
import json
import os
import sys

import numpy as np

sys.dont_write_bytecode = True     # keep tests/reference free of __pycache__
HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import gpt2_numpy  # noqa: E402

_ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "BF16": "bf16"}


# ----------------------------------------------------------------- safetensors

def read_safetensors(path):
    """{name: float32 ndarray} for every float tensor in a .safetensors file
    (u64 LE header length | JSON header | data; offsets relative to the data)."""
    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    n = int.from_bytes(buf[:8], "little")
    if 8 + n > len(buf):
        raise ValueError("%s: header length %d runs past the end" % (path, n))
    header = json.loads(buf[8:8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, d in header.items():
        if name == "__metadata__":
            continue
        dt = d["dtype"]
        if dt not in _ST_DTYPES:
            continue                  # e.g. BOOL / U8 mask buffers: never weights
        shape = tuple(d["shape"])
        begin, end = d["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        size = 2 if dt in ("F16", "BF16") else (8 if dt == "F64" else 4)
        if not (0 <= begin <= end and base + end <= len(buf) and end - begin == count * size):
            raise ValueError("%s: tensor %s has bad data_offsets %s" % (path, name, d["data_offsets"]))
        raw = buf[base + begin:base + end]
        if dt == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtype=_ST_DTYPES[dt]).astype(np.float32)
        out[name] = a.reshape(shape)
    return out


# ----------------------------------------------------------------- HF checkpoint

def hf_config(cfg):
    """gpt2_numpy config from an HF config.json dict."""
    if cfg.get("model_type", "gpt2") != "gpt2":
        raise ValueError("model_type %r is not gpt2" % cfg.get("model_type"))
    act = cfg.get("activation_function", "gelu_new")
    if act not in ("gelu_new", "gelu_pytorch_tanh"):
        raise ValueError("activation_function %r: only the tanh GELU is supported" % act)
    for k in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if cfg.get(k):
            raise ValueError("config option %s is not supported by the reference" % k)
    if cfg.get("scale_attn_weights", True) is not True:
        raise ValueError("scale_attn_weights false is not supported by the reference")
    n_embd = int(cfg["n_embd"])
    # n_inner (null = 4 * n_embd) needs no handling: the MLP width is read
    # from the c_fc weight's shape.
    c = {
        "n_layer": int(cfg["n_layer"]),
        "n_embd": n_embd,
        "n_head": int(cfg["n_head"]),
        "n_ctx": int(cfg.get("n_positions", cfg.get("n_ctx"))),
        "n_vocab": int(cfg["vocab_size"]),
        # rounded to float32, as a GGUF file stores it (gpt2.attention.
        # layer_norm_epsilon is an f32), so both paths use the very same eps
        "eps": float(np.float32(cfg.get("layer_norm_epsilon", 1e-5))),
    }
    if c["n_embd"] % c["n_head"] != 0:
        raise ValueError("n_embd %d not divisible by n_head %d" % (c["n_embd"], c["n_head"]))
    return c


def hf_params(config, tensors):
    """Neutral params from HF-named tensors. Conv1D weights are [in, out] and
    are used as stored: y = x @ W + b. A 'transformer.' name prefix is
    accepted; lm_head.weight, when present, is the output head."""
    t = {}
    for name, a in tensors.items():
        t[name[len("transformer."):] if name.startswith("transformer.") else name] = a
    C, V = config["n_embd"], config["n_vocab"]
    F = t["h.0.mlp.c_fc.weight"].shape[1]

    def get(name, shape):
        if name not in t:
            raise KeyError("missing tensor %s" % name)
        a = t[name]
        if tuple(a.shape) != tuple(shape):
            raise ValueError("%s: shape %s, expected %s" % (name, a.shape, tuple(shape)))
        return np.array(a, dtype=np.float64)

    p = {
        "wte": get("wte.weight", (V, C)),
        "wpe": get("wpe.weight", (config["n_ctx"], C)),
        "lnf_w": get("ln_f.weight", (C,)),
        "lnf_b": get("ln_f.bias", (C,)),
        "layers": [],
    }
    p["head"] = get("lm_head.weight", (V, C)) if "lm_head.weight" in t else p["wte"]
    for i in range(config["n_layer"]):
        h = "h.%d." % i
        p["layers"].append({
            "ln1_w": get(h + "ln_1.weight", (C,)),
            "ln1_b": get(h + "ln_1.bias", (C,)),
            "qkv_w": get(h + "attn.c_attn.weight", (C, 3 * C)),
            "qkv_b": get(h + "attn.c_attn.bias", (3 * C,)),
            "proj_w": get(h + "attn.c_proj.weight", (C, C)),
            "proj_b": get(h + "attn.c_proj.bias", (C,)),
            "ln2_w": get(h + "ln_2.weight", (C,)),
            "ln2_b": get(h + "ln_2.bias", (C,)),
            "fc_w": get(h + "mlp.c_fc.weight", (C, F)),
            "fc_b": get(h + "mlp.c_fc.bias", (F,)),
            "out_w": get(h + "mlp.c_proj.weight", (F, C)),
            "out_b": get(h + "mlp.c_proj.bias", (C,)),
        })
    return p


def load_hf(dir_path):
    """(config, params) from an HF GPT-2 checkpoint directory."""
    with open(os.path.join(dir_path, "config.json"), encoding="utf-8") as f:
        config = hf_config(json.load(f))
    tensors = read_safetensors(os.path.join(dir_path, "model.safetensors"))
    return config, hf_params(config, tensors)


def load_gguf(path, q8_act=False):
    """(config, params) from a GGUF file (F32 / F16 / BF16 / Q8_0 dequantized).
    q8_act: the input of every matmul whose weight is Q8_0 in the file is
    quantized to Q8_0 too, as the engine's integer kernels do."""
    config, weights = gpt2_numpy.load_gguf_model(path)
    params = gpt2_numpy.gguf_params(config, weights)
    if q8_act:
        import gguf_read
        _, infos = gguf_read.read_gguf_infos(path)
        q8 = {n for n, t in infos.items() if t.type == 8}
        names = {"qkv": "attn_qkv", "proj": "attn_output", "fc": "ffn_up", "out": "ffn_down"}
        params["act_q"] = [tuple(k for k, g in names.items() if "blk.%d.%s.weight" % (i, g) in q8)
                           for i in range(config["n_layer"])]
        head = "output.weight" if "output.weight" in infos else "token_embd.weight"
        params["head_q"] = head in q8
    return config, params


# ----------------------------------------------------------------- CLI

def parse_ids(s):
    parts = s.replace(",", " ").split()
    try:
        return [int(x) for x in parts]
    except ValueError:
        raise ValueError("--ids must be integers separated by spaces or commas: %r" % s)


def write_logits(path, logits):
    np.ascontiguousarray(logits, dtype="<f4").tofile(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="GPT-2 reference logits (NumPy, float64)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--hf", metavar="DIR", help="Hugging Face checkpoint directory")
    src.add_argument("--gguf", metavar="FILE", help="GGUF model file")
    ap.add_argument("--ids", required=True, help='prompt token ids, e.g. "1 2 3"')
    ap.add_argument("--out", metavar="FILE", help="write float32 LE logits [T, V] here")
    ap.add_argument("--greedy", type=int, metavar="N",
                    help="print the N greedy ids after the prompt")
    ap.add_argument("--q8-act", action="store_true",
                    help="GGUF: quantize the inputs of Q8_0 matmuls to Q8_0, as the engine does")
    ap.add_argument("--kv-f16", action="store_true",
                    help="round keys and values to fp16, as the engine's fp16 KV cache (its "
                         "default) stores them")
    a = ap.parse_args(argv)
    if a.out is None and a.greedy is None:
        ap.error("give --out FILE and/or --greedy N")
    try:
        ids = parse_ids(a.ids)
        config, params = load_hf(a.hf) if a.hf else load_gguf(a.gguf, a.q8_act)
        params["kv_f16"] = a.kv_f16
        if a.out is not None:
            logits = gpt2_numpy.forward_params(config, params, ids)
            write_logits(a.out, logits)
            print("shape %d %d max_abs_logit %.9g"
                  % (logits.shape[0], logits.shape[1], float(np.abs(logits).max())))
        if a.greedy is not None:
            if a.greedy < 0:
                raise ValueError("--greedy must be >= 0")
            new = gpt2_numpy.greedy_params(config, params, ids, a.greedy)
            print(" ".join(str(i) for i in new))
            if new:
                # how safe is this fixture? the smallest top-1 / top-2 gap on the path
                rows = gpt2_numpy.forward_params(config, params, ids + new[:-1])[len(ids) - 1:]
                top2 = np.sort(rows, axis=1)[:, -2:]
                gap = float((top2[:, 1] - top2[:, 0]).min())
                print("ref_logits: greedy: %d distinct of %d, smallest top1-top2 gap %.3g "
                      "(%.2g of max|logit|)" % (len(set(new)), len(new), gap,
                                                gap / float(np.abs(rows).max())),
                      file=sys.stderr)
    except (ValueError, KeyError, OSError) as e:
        print("ref_logits: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
