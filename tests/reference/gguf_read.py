#!/usr/bin/python3
"""Minimal, independent GGUF (v2/v3) reader for the gpt2c reference.

Written from the GGUF format description only (it shares no code with the C
engine). Everything is little-endian:

    header   u32 magic "GGUF" | u32 version | u64 n_tensors | u64 n_kv
    kv       string key | u32 value type | value
    string   u64 byte length | UTF-8 bytes (no terminator)
    array    u32 element type | u64 count | elements
    tensor   string name | u32 n_dims | u64 ne[n_dims] (ne[0] innermost)
             | u32 ggml type | u64 offset (relative to the data start)
    data     starts at align(end of tensor infos, general.alignment or 32)

Tensors come back as numpy arrays whose shape is ne reversed (row-major), so a
GGUF weight with ne = [K, N] is an array of shape [N, K]. F16, BF16 and Q8_0
are dequantized to float32; F32 is returned as float32.

Public functions:
    read_gguf(path)        -> (metadata dict, {name: np.ndarray})
    read_gguf_infos(path)  -> (metadata dict, {name: TensorInfo})
"""

import mmap
import struct
from collections import namedtuple

import numpy as np

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

# metadata value types
T_U8, T_I8, T_U16, T_I16, T_U32, T_I32, T_F32, T_BOOL, T_STRING, T_ARRAY, \
    T_U64, T_I64, T_F64 = range(13)

_SCALAR_FMT = {
    T_U8: "<B", T_I8: "<b", T_U16: "<H", T_I16: "<h", T_U32: "<I",
    T_I32: "<i", T_F32: "<f", T_U64: "<Q", T_I64: "<q", T_F64: "<d",
}
_SCALAR_NP = {
    T_U8: "<u1", T_I8: "<i1", T_U16: "<u2", T_I16: "<i2", T_U32: "<u4",
    T_I32: "<i4", T_F32: "<f4", T_U64: "<u8", T_I64: "<i8", T_F64: "<f8",
}

# ggml tensor types understood here
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16 = 0, 1, 8, 30
GGML_TYPE_NAMES = {GGML_F32: "F32", GGML_F16: "F16", GGML_Q8_0: "Q8_0",
                   GGML_BF16: "BF16"}
QK8_0 = 32                       # values per Q8_0 block
Q8_0_BLOCK = np.dtype([("d", "<f2"), ("qs", "i1", (QK8_0,))])   # 34 bytes
assert Q8_0_BLOCK.itemsize == 2 + QK8_0

TensorInfo = namedtuple("TensorInfo", "name ne type offset nbytes")


class GGUFError(ValueError):
    pass


class _Cursor:
    """Bounds-checked little-endian reader over a bytes-like buffer."""

    def __init__(self, buf):
        self.buf = buf
        self.pos = 0

    def take(self, n):
        if n < 0 or self.pos + n > len(self.buf):
            raise GGUFError("truncated GGUF: need %d bytes at offset %d, file has %d"
                            % (n, self.pos, len(self.buf)))
        b = self.buf[self.pos:self.pos + n]
        self.pos += n
        return b

    def scalar(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def u32(self):
        return self.scalar("<I")

    def u64(self):
        return self.scalar("<Q")

    def string(self):
        n = self.u64()
        return bytes(self.take(n)).decode("utf-8", errors="surrogateescape")

    def value(self, vtype):
        if vtype in _SCALAR_FMT:
            return self.scalar(_SCALAR_FMT[vtype])
        if vtype == T_BOOL:
            b = self.scalar("<B")
            if b > 1:
                raise GGUFError("bool value %d is neither 0 nor 1" % b)
            return bool(b)
        if vtype == T_STRING:
            return self.string()
        if vtype == T_ARRAY:
            etype = self.u32()
            n = self.u64()
            if etype in _SCALAR_NP:          # fast path for numeric arrays
                dt = np.dtype(_SCALAR_NP[etype])
                raw = self.take(n * dt.itemsize)
                return np.frombuffer(raw, dtype=dt).tolist()
            return [self.value(etype) for _ in range(n)]
        raise GGUFError("unknown metadata value type %d" % vtype)


def _align(x, a):
    return (x + a - 1) // a * a


def _tensor_nbytes(ne, ggml_type, name):
    n = 1
    for d in ne:
        n *= d
    if ggml_type == GGML_F32:
        return n * 4
    if ggml_type in (GGML_F16, GGML_BF16):
        return n * 2
    if ggml_type == GGML_Q8_0:
        if ne[0] % QK8_0 != 0:
            raise GGUFError("%s: Q8_0 needs ne[0] %% 32 == 0, got ne[0]=%d"
                            % (name, ne[0]))
        return n // QK8_0 * Q8_0_BLOCK.itemsize
    raise GGUFError("%s: unsupported ggml type %d" % (name, ggml_type))


def _parse(buf):
    c = _Cursor(buf)
    if bytes(c.take(4)) != GGUF_MAGIC:
        raise GGUFError("not a GGUF file (bad magic)")
    version = c.u32()
    if version not in (2, 3):
        raise GGUFError("unsupported GGUF version %d" % version)
    n_tensors = c.u64()
    n_kv = c.u64()

    meta = {}
    for _ in range(n_kv):
        key = c.string()
        vtype = c.u32()
        meta[key] = c.value(vtype)

    raw_infos = []
    for _ in range(n_tensors):
        name = c.string()
        n_dims = c.u32()
        if n_dims < 1 or n_dims > 4:
            raise GGUFError("%s: n_dims %d out of range" % (name, n_dims))
        ne = [c.u64() for _ in range(n_dims)]
        ttype = c.u32()
        offset = c.u64()
        raw_infos.append((name, ne, ttype, offset))

    alignment = meta.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        raise GGUFError("bad general.alignment %r" % (alignment,))
    data_start = _align(c.pos, alignment)

    infos = {}
    for name, ne, ttype, offset in raw_infos:
        if name in infos:
            raise GGUFError("duplicate tensor name %s" % name)
        nbytes = _tensor_nbytes(ne, ttype, name)
        if offset % alignment != 0:
            raise GGUFError("%s: offset %d not aligned to %d" % (name, offset, alignment))
        if data_start + offset + nbytes > len(buf):
            raise GGUFError("%s: data [%d, %d) runs past the end of the file (%d)"
                            % (name, data_start + offset,
                               data_start + offset + nbytes, len(buf)))
        infos[name] = TensorInfo(name, tuple(ne), ttype, data_start + offset, nbytes)
    return meta, infos


def _decode(buf, info):
    raw = buf[info.offset:info.offset + info.nbytes]
    shape = tuple(reversed(info.ne))
    if info.type == GGML_F32:
        a = np.frombuffer(raw, dtype="<f4").astype(np.float32)
    elif info.type == GGML_F16:
        a = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif info.type == GGML_BF16:
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        a = u.view(np.float32)
    elif info.type == GGML_Q8_0:
        blocks = np.frombuffer(raw, dtype=Q8_0_BLOCK)
        d = blocks["d"].astype(np.float32)
        q = blocks["qs"].astype(np.float32)
        a = (d[:, None] * q).reshape(-1)
    else:
        raise GGUFError("%s: unsupported ggml type %d" % (info.name, info.type))
    return a.reshape(shape)


def _open(path):
    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:           # empty file cannot be mapped
            return b""


def read_gguf_infos(path):
    """Metadata and tensor infos (name, ne, type, absolute offset, nbytes)."""
    buf = _open(path)
    return _parse(buf)


def read_gguf(path):
    """Metadata dict and {name: float32 ndarray (shape = ne reversed)}."""
    buf = _open(path)
    meta, infos = _parse(buf)
    tensors = {name: _decode(buf, info) for name, info in infos.items()}
    return meta, tensors


if __name__ == "__main__":
    import sys
    if len(sys.argv) != 2:
        sys.exit("usage: gguf_read.py FILE.gguf   (prints metadata and tensor infos)")
    meta, infos = read_gguf_infos(sys.argv[1])
    for k, v in meta.items():
        if isinstance(v, list) and len(v) > 8:
            v = "[%d items: %s ...]" % (len(v), ", ".join(repr(x) for x in v[:4]))
        print("%-45s %s" % (k, v))
    for name, i in infos.items():
        print("%-32s %-5s ne=%s offset=%d" % (name, GGML_TYPE_NAMES.get(i.type, i.type),
                                             list(i.ne), i.offset))
