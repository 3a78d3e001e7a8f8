#!/usr/bin/python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

    make_corpus.py --bin BUILD/bin [--out tests/fuzz/corpus]

Valid seeds come from the project's own writers: tiny synthetic GGUF models
from gpt2c-convert (f32, f16) and gpt2c-quantize (q8_0), and a tiny Hugging
Face checkpoint from tests/reference/make_hf_checkpoint.py (safetensors,
config.json, vocab.json + merges.txt). Edge cases are derived from them here,
byte by byte: truncations, wrong magic and version, counts and lengths far
past the file, dimensions whose product overflows, offsets past the end,
unknown types, odd strings. Files are named seed-* (valid) and edge-*
(expected to be refused or to stress a limit); reproducers that fuzzing
found are added by hand as crash-* / leak-* / oom-* with what they found.

Deterministic: the same build writes the same bytes. Only seed-* and edge-*
files are rewritten; everything else in the corpus directories is kept.
"""

import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TARGETS = ["gguf", "safetensors", "hf_config", "vocab", "tokenizer", "cli_ids"]

U64_MAX = (1 << 64) - 1


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


# ---- GGUF ---------------------------------------------------------------------


class GgufLayout:
    """Byte positions of the fields of a GGUF v3 file (for precise edits)."""

    def __init__(self, b):
        self.b = b
        pos = 8
        self.n_tensors_at = pos
        self.n_t = struct.unpack_from("<Q", b, pos)[0]
        self.n_kv_at = pos + 8
        n_kv = struct.unpack_from("<Q", b, pos + 8)[0]
        pos += 16
        self.kv = {}  # key -> (start of entry, position of value type)
        for _ in range(n_kv):
            start = pos
            klen = struct.unpack_from("<Q", b, pos)[0]
            key = b[pos + 8:pos + 8 + klen].decode()
            pos += 8 + klen
            self.kv[key] = (start, pos)
            pos = self._skip_value(pos)
        self.kv_end = pos
        self.tensors = {}  # name -> dict of field positions
        for _ in range(self.n_t):
            start = pos
            nlen = struct.unpack_from("<Q", b, pos)[0]
            name = b[pos + 8:pos + 8 + nlen].decode()
            pos += 8 + nlen
            nd = struct.unpack_from("<I", b, pos)[0]
            t = {"start": start, "n_dims_at": pos, "ne_at": pos + 4}
            pos += 4 + 8 * nd
            t["type_at"] = pos
            t["offset_at"] = pos + 4
            pos += 12
            self.tensors[name] = t
        self.table_end = pos

    def _skip_value(self, pos):
        b = self.b
        vt = struct.unpack_from("<I", b, pos)[0]
        pos += 4
        sizes = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
        if vt == 8:
            return pos + 8 + struct.unpack_from("<Q", b, pos)[0]
        if vt == 9:
            et, n = struct.unpack_from("<IQ", b, pos)
            pos += 12
            if et == 8:
                for _ in range(n):
                    pos += 8 + struct.unpack_from("<Q", b, pos)[0]
                return pos
            return pos + n * sizes[et]
        return pos + sizes[vt]

    def value_at(self, key):
        """Position of the value of a scalar key (after its type)."""
        return self.kv[key][1] + 4


def patch(b, pos, fmt, *vals):
    b = bytearray(b)
    struct.pack_into(fmt, b, pos, *vals)
    return bytes(b)


def gguf_edges(valid, q8):
    """Edge cases derived from a valid tiny f32 model (and a q8_0 one)."""
    L = GgufLayout(valid)
    e = {}
    e["empty"] = b""
    e["magic-only"] = valid[:4]
    e["header-only"] = valid[:24]
    e["truncated-in-metadata"] = valid[:L.kv_end // 2]
    e["truncated-in-tensor-table"] = valid[:(L.kv_end + L.table_end) // 2]
    data_start = (L.table_end + 31) // 32 * 32  # the writer's default alignment
    embd_off = struct.unpack_from("<Q", valid, L.tensors["token_embd.weight"]["offset_at"])[0]
    e["truncated-in-data"] = valid[:data_start + embd_off + 6]
    e["wrong-magic"] = b"GGML" + valid[4:]
    e["version-2"] = patch(valid, 4, "<I", 2)
    e["version-big-endian"] = patch(valid, 4, "<I", 3 << 24)
    e["n-tensors-2e62"] = patch(valid, L.n_tensors_at, "<Q", 1 << 62)
    e["n-tensors-max"] = patch(valid, L.n_tensors_at, "<Q", U64_MAX)
    e["n-kv-max"] = patch(valid, L.n_kv_at, "<Q", U64_MAX)
    start, vt_at = L.kv["general.architecture"]
    e["key-length-2e63"] = patch(valid, start, "<Q", 1 << 63)
    e["string-length-2e63"] = patch(valid, vt_at + 4, "<Q", 1 << 63)
    e["value-type-99"] = patch(valid, vt_at, "<I", 99)
    start, vt_at = L.kv["tokenizer.ggml.tokens"]
    e["string-array-count-max"] = patch(valid, vt_at + 8, "<Q", U64_MAX)
    e["string-array-count-2e40"] = patch(valid, vt_at + 8, "<Q", 1 << 40)
    e["array-of-arrays"] = patch(valid, vt_at + 4, "<I", 9)
    e["block-count-2e24"] = patch(valid, L.value_at("gpt2.block_count"), "<I", 1 << 24)
    e["block-count-0"] = patch(valid, L.value_at("gpt2.block_count"), "<I", 0)
    e["context-length-2e24"] = patch(valid, L.value_at("gpt2.context_length"), "<I", 1 << 24)
    e["head-count-3"] = patch(valid, L.value_at("gpt2.attention.head_count"), "<I", 3)
    e["alignment-3"] = patch(valid, L.value_at("general.alignment"), "<I", 3) \
        if "general.alignment" in L.kv else None
    t = L.tensors["token_embd.weight"]
    e["n-dims-5"] = patch(valid, t["n_dims_at"], "<I", 5)
    e["ne-zero"] = patch(valid, t["ne_at"], "<Q", 0)
    e["ne-product-overflows"] = patch(patch(valid, t["ne_at"], "<Q", 1 << 40),
                                      t["ne_at"] + 8, "<Q", 1 << 40)
    e["ne-product-2e63"] = patch(patch(valid, t["ne_at"], "<Q", 1 << 32),
                                 t["ne_at"] + 8, "<Q", 1 << 31)
    e["type-unknown"] = patch(valid, t["type_at"], "<I", 2)
    e["offset-past-end"] = patch(valid, t["offset_at"], "<Q", 1 << 40)
    e["offset-max"] = patch(valid, t["offset_at"], "<Q", U64_MAX - 31)
    e["offset-unaligned"] = patch(valid, t["offset_at"], "<Q",
                                  struct.unpack_from("<Q", valid, t["offset_at"])[0] + 4)
    last = L.tensors["output_norm.bias"]
    e["offset-overlap"] = patch(valid, last["offset_at"], "<Q", 0)
    name_at = L.tensors["output_norm.bias"]["start"] + 8
    e["tensor-name-nul"] = patch(valid, name_at, "<B", 0)
    a, b = "blk.0.ffn_norm.bias", "blk.0.ffn_down.bias"  # same length: rename b to a
    at = L.tensors[b]["start"] + 8
    e["tensor-name-duplicate"] = valid[:at] + a.encode() + valid[at + len(b):]
    flip = data_start + embd_off + 5
    e["crc-mismatch"] = valid[:flip] + bytes([valid[flip] ^ 0x55]) + valid[flip + 1:]
    Q = GgufLayout(q8)
    t = Q.tensors["blk.0.attn_qkv.weight"]
    e["q8_0-ragged-row"] = patch(q8, t["ne_at"], "<Q", 31)
    return {k: v for k, v in e.items() if v is not None}


def make_gguf(bin_dir, tmp, out):
    conv = os.path.join(bin_dir, "gpt2c-convert")
    quant = os.path.join(bin_dir, "gpt2c-quantize")
    tiny = ["--synthetic", "custom", "--layers", "1", "--embd", "4", "--heads", "1", "--ctx",
            "4", "--vocab", "260", "--ff", "4", "--seed", "1", "-q", "--force"]
    f32 = os.path.join(tmp, "tiny-f32.gguf")
    f16 = os.path.join(tmp, "tiny-f16.gguf")
    w32 = os.path.join(tmp, "w32-f32.gguf")
    q8 = os.path.join(tmp, "w32-q8_0.gguf")
    run([conv] + tiny + ["--out", f32])
    run([conv] + tiny + ["--dtype", "f16", "--out", f16])
    # Q8_0 needs rows that are whole 32-element blocks
    run([conv, "--synthetic", "custom", "--layers", "1", "--embd", "32", "--heads", "2",
         "--ctx", "4", "--vocab", "257", "--ff", "32", "--seed", "1", "-q", "--force",
         "--out", w32])
    run([quant, w32, q8, "q8_0"])
    seeds = {}
    for name, p in [("tiny-f32", f32), ("tiny-f16", f16), ("tiny-q8_0", q8)]:
        with open(p, "rb") as fh:
            seeds[name] = fh.read()
    write_set(out, "gguf", seeds, gguf_edges(seeds["tiny-f32"], seeds["tiny-q8_0"]))


# ---- Hugging Face checkpoint: safetensors, config.json, vocab ------------------


def st_file(header, data=b""):
    """A .safetensors file from a header (dict or raw bytes)."""
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h)) + h + data


def safetensors_edges(valid):
    hlen = struct.unpack_from("<Q", valid, 0)[0]
    header = json.loads(valid[8:8 + hlen])
    data = valid[8 + hlen:]
    one = {"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}
    e = {}
    e["empty"] = b""
    e["short"] = b"\x02\x00\x00"
    e["header-length-max"] = struct.pack("<Q", U64_MAX) + b"{}"
    e["header-length-past-end"] = struct.pack("<Q", 1 << 20) + b"{}"
    e["header-not-json"] = st_file(b"{\"x\": [1, 2")
    e["header-array"] = st_file(b"[1, 2, 3]")
    e["header-empty-object"] = st_file(b"{}")
    e["header-trailing-bytes"] = st_file(b"{}   xyz")
    e["header-nul-padding"] = st_file(b"{}\x00\x00\x00\x00\x00\x00")
    e["header-deep-nesting"] = st_file(b"[" * 2000 + b"]" * 2000)
    e["truncated-data"] = valid[:len(valid) - 5]
    e["metadata-only"] = st_file({"__metadata__": {"format": "pt"}})
    e["one-f32"] = st_file(one, struct.pack("<2f", 1.0, -2.0))
    e["unknown-dtype"] = st_file({"x": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}},
                                 b"\0")
    e["bool-dtype"] = st_file({"x": {"dtype": "BOOL", "shape": [3], "data_offsets": [0, 3]}},
                              b"\1\0\1")
    e["bf16-dtype"] = st_file({"x": {"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]}},
                              b"\x80\x3f\x00\xc0")
    e["shape-9-dims"] = st_file({"x": {"dtype": "U8", "shape": [1] * 9,
                                       "data_offsets": [0, 1]}}, b"\0")
    e["shape-overflows"] = st_file({"x": {"dtype": "F32", "shape": [1 << 40, 1 << 40],
                                          "data_offsets": [0, 8]}}, b"\0" * 8)
    e["shape-2e53"] = st_file({"x": {"dtype": "F64", "shape": [1 << 53, 1 << 53],
                                     "data_offsets": [0, 8]}}, b"\0" * 8)
    e["shape-negative"] = st_file({"x": {"dtype": "F32", "shape": [-2],
                                         "data_offsets": [0, 8]}}, b"\0" * 8)
    e["shape-fraction"] = st_file({"x": {"dtype": "F32", "shape": [2.5],
                                         "data_offsets": [0, 8]}}, b"\0" * 8)
    e["shape-zero"] = st_file({"x": {"dtype": "F32", "shape": [0, 5],
                                     "data_offsets": [0, 0]}})
    e["offsets-past-end"] = st_file({"x": {"dtype": "F32", "shape": [2],
                                           "data_offsets": [0, 1 << 40]}}, b"\0" * 8)
    e["offsets-reversed"] = st_file({"x": {"dtype": "F32", "shape": [2],
                                           "data_offsets": [8, 0]}}, b"\0" * 8)
    e["offsets-size-mismatch"] = st_file({"x": {"dtype": "F32", "shape": [3],
                                                "data_offsets": [0, 8]}}, b"\0" * 8)
    e["duplicate-name"] = st_file(b'{"x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},'
                                  b' "x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}',
                                  b"\0")
    e["entry-not-object"] = st_file({"x": [1, 2]})
    e["name-with-nul"] = st_file(b'{"a\\u0000b": {"dtype": "U8", "shape": [1], '
                                 b'"data_offsets": [0, 1]}}', b"\0")
    name = sorted(k for k in header if k != "__metadata__")[0]
    bad = dict(header)
    bad[name] = dict(bad[name], data_offsets=[0, 1 << 60])
    e["real-offset-past-end"] = st_file(bad, data)
    return e


def config_edges(valid):
    cfg = json.loads(valid)
    e = {}

    def with_(**kw):
        c = dict(cfg)
        for k, v in kw.items():
            if v is None:
                c.pop(k, None)
            else:
                c[k] = v
        return json.dumps(c).encode()

    e["empty"] = b""
    e["not-object"] = b"[1, 2]"
    e["truncated"] = valid[:len(valid) // 2]
    e["minimal"] = json.dumps({"n_embd": 4, "n_head": 1, "n_layer": 1, "vocab_size": 260,
                               "n_ctx": 4}).encode()
    e["n-layer-1e9"] = with_(n_layer=1000000000)
    e["n-layer-2e31"] = with_(n_layer=2147483647)
    e["n-embd-huge"] = with_(n_embd=1 << 30, n_head=1)
    e["n-embd-not-multiple"] = with_(n_head=3)
    e["n-head-zero"] = with_(n_head=0)
    e["n-layer-negative"] = with_(n_layer=-1)
    e["n-layer-fraction"] = with_(n_layer=1.5)
    e["n-layer-string"] = with_(n_layer="1")
    e["n-positions-missing"] = with_(n_positions=None, n_ctx=None)
    e["n-inner-set"] = with_(n_inner=24)
    e["eps-zero"] = with_(layer_norm_epsilon=0)
    e["eps-nan"] = valid.replace(b'"layer_norm_epsilon": 1e-05', b'"layer_norm_epsilon": NaN')
    e["model-type-llama"] = with_(model_type="llama")
    e["activation-relu"] = with_(activation_function="relu")
    e["scale-by-layer"] = with_(scale_attn_by_inverse_layer_idx=True)
    e["deep-nesting"] = b'{"x": ' + b"[" * 2000 + b"]" * 2000 + b"}"
    e["number-1e400"] = with_(n_layer=None) [:-1] + b', "n_layer": 1e400}'
    return e


def vocab_edges(json_b, merges_b):
    vocab = json.loads(json_b)
    e = {}
    e["empty"] = b""
    e["json-only"] = json_b
    e["no-version-line"] = json_b + b"\0" + b"\n".join(merges_b.split(b"\n")[1:])
    e["id-gap"] = json.dumps({"a": 0, "b": 2}).encode() + b"\0#version: 0.2\n"
    e["id-duplicate"] = json.dumps({"a": 0, "b": 0}).encode() + b"\0#version: 0.2\n"
    e["id-negative"] = json.dumps({"a": -1}).encode() + b"\0#version: 0.2\n"
    e["id-huge"] = json.dumps({"a": 1 << 40}).encode() + b"\0#version: 0.2\n"
    e["id-fraction"] = json.dumps({"a": 0.5}).encode() + b"\0#version: 0.2\n"
    e["not-object"] = b"[0, 1]\0#version: 0.2\n"
    e["token-not-byte-form"] = json.dumps(dict(vocab, **{"\u00ff\u4e00": len(vocab)})).encode() \
        + b"\0" + merges_b
    e["merge-one-part"] = json_b + b"\0#version: 0.2\nabc\n"
    e["merge-three-parts"] = json_b + b"\0#version: 0.2\na b c\n"
    e["merge-unknown-part"] = json_b + b"\0#version: 0.2\nzz qq\n"
    e["merge-result-missing"] = json_b + b"\0#version: 0.2\n! !\n"
    e["merges-crlf"] = json_b + b"\0" + merges_b.replace(b"\n", b"\r\n")
    e["token-empty"] = json.dumps(dict(vocab, **{"": len(vocab)})).encode() + b"\0" + merges_b
    return e


def make_hf(tmp, out):
    ck = os.path.join(tmp, "hf")
    run([sys.executable, os.path.join(ROOT, "tests", "reference", "make_hf_checkpoint.py"),
         "--out", ck, "--layers", "1", "--embd", "4", "--heads", "1", "--ctx", "4",
         "--vocab", "260", "--seed", "1"])
    read = lambda n: open(os.path.join(ck, n), "rb").read()
    st, cfg, vj, mt = (read("model.safetensors"), read("config.json"), read("vocab.json"),
                       read("merges.txt"))
    write_set(out, "safetensors", {"tiny-hf": st}, safetensors_edges(st))
    write_set(out, "hf_config", {"tiny-hf": cfg}, config_edges(cfg))
    write_set(out, "vocab", {"tiny-hf": vj + b"\0" + mt}, vocab_edges(vj, mt))


# ---- tokenizer, CLI ids --------------------------------------------------------


def make_tokenizer(out):
    seeds = {}
    with open(os.path.join(ROOT, "tests", "fixtures", "tokenizer_corpus.txt"), "rb") as fh:
        cases = [ln[ln.index(b" ") + 1:] for ln in fh.read().split(b"\n")
                 if ln and not ln.startswith(b"#") and b" " in ln]
    # a handful of the fixture's cases, spread over it (kinds as written there)
    for i in range(0, len(cases), max(1, len(cases) // 12)):
        seeds["fixture-%03d" % i] = cases[i]
    seeds["english"] = b"The quick brown fox jumps over the lazy dog. It's 2024, isn't it?"
    edges = {
        "empty": b"",
        "endoftext": b"<|endoftext|>Hello<|endoftext|>",
        "invalid-utf8": b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xed\xa0\x80",
        "nul-bytes": b"a\0b\0\0c",
        "whitespace-runs": b"   \t\t\n\n\n  x  \r\n\u3000".decode("unicode_escape")
        .encode("utf-8"),
        "emoji-zwj": "\U0001F469\u200D\U0001F4BB \U0001F1FA\U0001F1F8 e\u0301".encode("utf-8"),
        "long-word": b"a" * 2000,
        "long-digits": b"9" * 1000,
        "contractions": b"'s't're've'm'll'd 'S 'T",
        "ids-max": struct.pack("<4i", 0, 50256, 50257, -1),
        "ids-int-min": struct.pack("<2i", -(1 << 31), (1 << 31) - 1),
    }
    write_set(out, "tokenizer", seeds, edges)


def make_cli_ids(out):
    seeds = {"readme": b"464 2068 7586", "commas": b"15496,995", "lines": b"1\n2\r\n3\t4\n"}
    edges = {
        "empty": b"",
        "blank": b" \t\r\n,,",
        "negative": b"5 -1",
        "vocab-size": b"50257",
        "last-id": b"50256",
        "overflow": b"99999999999999999999999",
        "trailing-letters": b"12abc",
        "hex": b"0x10",
        "plus": b"+5 +6",
        "nul-inside": b"1 2\0 3",
        "long": b"1 " * 5000,
    }
    write_set(out, "cli_ids", seeds, edges)


# ---- output ----------------------------------------------------------------------


def write_set(out, target, seeds, edges):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if f.startswith("seed-") or f.startswith("edge-"):
            os.remove(os.path.join(d, f))
    for prefix, items in (("seed-", seeds), ("edge-", edges)):
        for name, data in sorted(items.items()):
            with open(os.path.join(d, prefix + name), "wb") as fh:
                fh.write(data)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True, help="build/bin with gpt2c-convert, gpt2c-quantize")
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="gpt2c-corpus-")
    try:
        make_gguf(a.bin, tmp, a.out)
        make_hf(tmp, a.out)
        make_tokenizer(a.out)
        make_cli_ids(a.out)
    finally:
        shutil.rmtree(tmp)
    total = 0
    for t in TARGETS:
        d = os.path.join(a.out, t)
        sizes = [os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)]
        total += sum(sizes)
        print("%-12s %3d files, %7d bytes" % (t, len(sizes), sum(sizes)))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
