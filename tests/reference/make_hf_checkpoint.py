#!/usr/bin/python3
"""Write a small random GPT-2 checkpoint directory the way Hugging Face's
GPT2LMHeadModel.save_pretrained() + GPT2Tokenizer.save_pretrained() lay it out:

    DIR/config.json        model_type gpt2, n_embd, n_head, n_layer, n_positions,
                           n_ctx, vocab_size, layer_norm_epsilon,
                           activation_function "gelu_new", n_inner null, ...
    DIR/model.safetensors  written by hand (see write_safetensors)
    DIR/vocab.json         the real GPT-2 vocabulary, ids < vocab_size
    DIR/merges.txt         "#version: 0.2" + the merges whose parts and result are kept

Tensor names and shapes (HF GPT-2; Conv1D weights are [in, out], y = x @ W + b):

    wte.weight [V, C]            wpe.weight [n_ctx, C]
    h.{i}.ln_1.weight/bias [C]
    h.{i}.attn.c_attn.weight [C, 3C]  h.{i}.attn.c_attn.bias [3C]   (columns q | k | v)
    h.{i}.attn.c_proj.weight [C, C]   h.{i}.attn.c_proj.bias [C]
    h.{i}.ln_2.weight/bias [C]
    h.{i}.mlp.c_fc.weight [C, 4C]     h.{i}.mlp.c_fc.bias [4C]
    h.{i}.mlp.c_proj.weight [4C, C]   h.{i}.mlp.c_proj.bias [C]
    ln_f.weight/bias [C]
    h.{i}.attn.bias [1, 1, n_ctx, n_ctx]  float32 lower-triangular causal mask buffer
                                          (carried by real checkpoints; not a weight,
                                          a converter must ignore it)

Weights are random from a numpy seed and non-trivial everywhere: matrices
normal(0, std) (std 0.02 by default), LayerNorm weights 1 + normal(0, 0.1),
LayerNorm biases and all linear biases normal(0, 0.05), so a dropped bias, a
dropped LayerNorm weight or a swapped tensor changes the logits visibly.

CLI:
    make_hf_checkpoint.py --out DIR --layers L --embd C --heads H --ctx N
                          --vocab V --seed S [--dtype f32|f16]
                          [--std 0.02] [--eps 1e-5] [--prefix transformer.]
                          [--untied] [--ascii-json]
"""

import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
VOCAB_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "weights", "vocab"))

ST_DTYPES = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16"}


# ----------------------------------------------------------------- safetensors

def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: ndarray (float32 or float16)}. Layout:
    u64 LE header length N | N bytes of JSON header padded with spaces to a
    multiple of 8 | raw little-endian data; header entries are sorted by name,
    data_offsets are [begin, end) relative to the start of the data."""
    names = sorted(tensors)
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs = []
    pos = 0
    for name in names:
        a = np.ascontiguousarray(tensors[name])
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        if a.dtype not in ST_DTYPES:
            raise ValueError("%s: unsupported dtype %s" % (name, a.dtype))
        raw = a.tobytes()
        header[name] = {"dtype": ST_DTYPES[a.dtype], "shape": list(a.shape),
                        "data_offsets": [pos, pos + len(raw)]}
        blobs.append(raw)
        pos += len(raw)
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((-len(hjson)) % 8)
    with open(path, "wb") as f:
        f.write(len(hjson).to_bytes(8, "little"))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)


# ----------------------------------------------------------------- weights

def random_gpt2_tensors(n_layer, n_embd, n_head, n_ctx, n_vocab, seed,
                        std=0.02, untied=False):
    """HF-named float32 weights (without the mask buffers)."""
    if n_embd % n_head != 0:
        raise ValueError("embd %d not divisible by heads %d" % (n_embd, n_head))
    rng = np.random.default_rng(seed)
    C, F = n_embd, 4 * n_embd

    def mat(*shape):
        return (rng.standard_normal(shape) * std).astype(np.float32)

    def ln_w(n):
        return (1.0 + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def bias(n):
        return (0.05 * rng.standard_normal(n)).astype(np.float32)

    t = {"wte.weight": mat(n_vocab, C), "wpe.weight": mat(n_ctx, C)}
    for i in range(n_layer):
        h = "h.%d." % i
        t[h + "ln_1.weight"] = ln_w(C)
        t[h + "ln_1.bias"] = bias(C)
        t[h + "attn.c_attn.weight"] = mat(C, 3 * C)
        t[h + "attn.c_attn.bias"] = bias(3 * C)
        t[h + "attn.c_proj.weight"] = mat(C, C)
        t[h + "attn.c_proj.bias"] = bias(C)
        t[h + "ln_2.weight"] = ln_w(C)
        t[h + "ln_2.bias"] = bias(C)
        t[h + "mlp.c_fc.weight"] = mat(C, F)
        t[h + "mlp.c_fc.bias"] = bias(F)
        t[h + "mlp.c_proj.weight"] = mat(F, C)
        t[h + "mlp.c_proj.bias"] = bias(C)
    t["ln_f.weight"] = ln_w(C)
    t["ln_f.bias"] = bias(C)
    if untied:
        t["lm_head.weight"] = mat(n_vocab, C)
    return t


# ----------------------------------------------------------------- vocabulary

def cut_vocab(n_vocab, vocab_dir=VOCAB_DIR):
    """(vocab {token: id} with ids < n_vocab, merges [(a, b)] in rank order whose
    parts and concatenation are all kept)."""
    with open(os.path.join(vocab_dir, "encoder.json"), encoding="utf-8") as f:
        full = json.load(f)
    vocab = {tok: i for tok, i in full.items() if i < n_vocab}
    merges = []
    with open(os.path.join(vocab_dir, "vocab.bpe"), encoding="utf-8") as f:
        lines = f.read().split("\n")
    if not lines[0].startswith("#version"):
        raise ValueError("vocab.bpe lacks its '#version' first line")
    for line in lines[1:]:
        if not line:
            continue
        a, b = line.split(" ")
        if a in vocab and b in vocab and (a + b) in vocab:
            merges.append((a, b))
    return vocab, merges


def write_tokenizer(out_dir, n_vocab, ascii_json=False):
    vocab, merges = cut_vocab(n_vocab)
    with open(os.path.join(out_dir, "vocab.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=ascii_json) + "\n")
    with open(os.path.join(out_dir, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
    return vocab, merges


# ----------------------------------------------------------------- checkpoint

def make_checkpoint(out_dir, n_layer, n_embd, n_head, n_ctx, n_vocab, seed,
                    dtype="f32", std=0.02, eps=1e-5, prefix="", untied=False,
                    ascii_json=False):
    """Write the checkpoint directory; returns the HF-named float32 weights
    (before any f16 rounding) for callers that want them."""
    if dtype not in ("f32", "f16"):
        raise ValueError("dtype must be f32 or f16")
    for name, v in (("layers", n_layer), ("embd", n_embd), ("heads", n_head),
                    ("ctx", n_ctx), ("vocab", n_vocab)):
        if v < 1:
            raise ValueError("--%s must be >= 1" % name)
    if n_vocab > 50257:
        raise ValueError("vocab %d exceeds the GPT-2 vocabulary (50257)" % n_vocab)
    os.makedirs(out_dir, exist_ok=True)

    weights = random_gpt2_tensors(n_layer, n_embd, n_head, n_ctx, n_vocab, seed,
                                  std=std, untied=untied)
    st = {}
    for name, a in weights.items():
        st[(prefix if name != "lm_head.weight" else "") + name] = \
            a.astype(np.float16) if dtype == "f16" else a
    mask = np.tril(np.ones((n_ctx, n_ctx), dtype=np.float32)).reshape(1, 1, n_ctx, n_ctx)
    for i in range(n_layer):
        st[prefix + "h.%d.attn.bias" % i] = mask
    write_safetensors(os.path.join(out_dir, "model.safetensors"), st,
                      metadata={"format": "pt"})

    config = {
        "activation_function": "gelu_new",
        "architectures": ["GPT2LMHeadModel"],
        "attn_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "initializer_range": std,
        "layer_norm_epsilon": eps,
        "model_type": "gpt2",
        "n_ctx": n_ctx,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_inner": None,
        "n_layer": n_layer,
        "n_positions": n_ctx,
        "resid_pdrop": 0.1,
        "scale_attn_weights": True,
        "tie_word_embeddings": not untied,
        "torch_dtype": "float16" if dtype == "f16" else "float32",
        "vocab_size": n_vocab,
    }
    if n_vocab > 50256:              # <|endoftext|> is only present in the full vocabulary
        config["bos_token_id"] = 50256
        config["eos_token_id"] = 50256
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        f.write(json.dumps(config, indent=2, sort_keys=True) + "\n")

    write_tokenizer(out_dir, n_vocab, ascii_json=ascii_json)
    return weights


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created)")
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--embd", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--vocab", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--dtype", choices=("f32", "f16"), default="f32")
    ap.add_argument("--std", type=float, default=0.02, help="std of weight matrices")
    ap.add_argument("--eps", type=float, default=1e-5, help="layer_norm_epsilon")
    ap.add_argument("--prefix", default="",
                    help="name prefix for model tensors, e.g. 'transformer.'")
    ap.add_argument("--untied", action="store_true",
                    help="also write a separate random lm_head.weight [V, C]")
    ap.add_argument("--ascii-json", action="store_true",
                    help="write vocab.json with \\uXXXX escapes instead of UTF-8")
    a = ap.parse_args(argv)
    try:
        make_checkpoint(a.out, a.layers, a.embd, a.heads, a.ctx, a.vocab, a.seed,
                        dtype=a.dtype, std=a.std, eps=a.eps, prefix=a.prefix,
                        untied=a.untied, ascii_json=a.ascii_json)
    except (ValueError, OSError) as e:
        print("make_hf_checkpoint: error: %s" % e, file=sys.stderr)
        return 2
    if a.vocab < 256:
        print("make_hf_checkpoint: warning: vocab %d < 256 leaves some bytes without a "
              "token" % a.vocab, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
