/* GGUF v3 reader and writer.
 *
 * File layout (little-endian):
 *   u32 magic "GGUF", u32 version (3), u64 n_tensors, u64 n_kv
 *   n_kv x { string key, u32 value_type, value }
 *   n_tensors x { string name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset }
 *   padding to general.alignment (default 32), then the data region; each
 *   tensor's offset is relative to the data region start and aligned.
 *   string = u64 length + bytes (no NUL); array = u32 elem_type, u64 n, elems.
 *
 * The reader mmaps the whole file read-only and checks every length, count,
 * offset and size against the file size before anything is used. Errors name
 * the file, the key or tensor, and what was expected. */
#ifndef GPT2C_GGUF_H
#define GPT2C_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"

#define GGUF_MAGIC 0x46554747u /* "GGUF" */
#define GGUF_VERSION 3u
#define GGUF_DEFAULT_ALIGNMENT 32u
#define GGUF_MAX_DIMS 4

/* engine-specific key: array of UINT32, one CRC-32 (zlib) per tensor, in
 * tensor-info order, over the tensor's data bytes */
#define GGUF_KEY_CRC32 "gpt2c.tensor_crc32"

typedef enum {
    GGUF_VT_UINT8 = 0,
    GGUF_VT_INT8 = 1,
    GGUF_VT_UINT16 = 2,
    GGUF_VT_INT16 = 3,
    GGUF_VT_UINT32 = 4,
    GGUF_VT_INT32 = 5,
    GGUF_VT_FLOAT32 = 6,
    GGUF_VT_BOOL = 7,
    GGUF_VT_STRING = 8,
    GGUF_VT_ARRAY = 9,
    GGUF_VT_UINT64 = 10,
    GGUF_VT_INT64 = 11,
    GGUF_VT_FLOAT64 = 12,
    GGUF_VT_COUNT
} gguf_vtype;

/* ggml tensor types we know (values are the ggml enum). */
typedef enum { GGML_T_F32 = 0, GGML_T_F16 = 1, GGML_T_Q8_0 = 8 } ggml_type;

#define QK8_0 32 /* Q8_0 block: fp16 scale + 32 int8 = 34 bytes */

const char *gguf_vtype_name(uint32_t t);
const char *ggml_type_name(uint32_t t); /* "unknown" for types we do not know */
/* Bytes for n elements of a known tensor type (n must be a multiple of the block
 * size for block types); 0 for unknown types or a ragged block count. */
size_t ggml_row_bytes(uint32_t type, uint64_t n);
/* Elements per block (1 for F32/F16, 32 for Q8_0); 0 if unknown. */
int ggml_block_size(uint32_t type);

/* ---- reader ---------------------------------------------------------- */

typedef struct gguf_tensor {
    const char *name; /* NUL-terminated copy */
    uint32_t type;    /* ggml_type */
    int n_dims;
    uint64_t ne[GGUF_MAX_DIMS]; /* ne[0] is the innermost (contiguous) dimension */
    uint64_t n_elements;
    uint64_t offset; /* relative to the data region */
    size_t n_bytes;
    const void *data; /* into the mapping */
} gguf_tensor;

typedef struct gguf_file gguf_file;

/* Opens, mmaps and fully validates the header, metadata and tensor table
 * (bounds, alignment, known types, duplicate names, overlaps). */
gguf_file *gguf_open(const char *path, gpt2_error *err);
/* The same checks over bytes already in memory (fuzzing, tests): data must
 * stay valid until gguf_close, which does not free it; name stands for the
 * path in messages and gguf_path. */
gguf_file *gguf_open_mem(const void *data, size_t size, const char *name, gpt2_error *err);
void gguf_close(gguf_file *f);
/* Drops the whole pages inside [p, p + n) of the file's mapping from the
 * resident set (a later read faults them in again from the file); p NULL:
 * the whole mapping. Nothing for gguf_open_mem bytes, which are the caller's.
 * Advisory: failure is ignored. */
void gguf_release_pages(const gguf_file *f, const void *p, size_t n);

const char *gguf_path(const gguf_file *f);
uint32_t gguf_version(const gguf_file *f);
uint32_t gguf_alignment(const gguf_file *f);
size_t gguf_file_size(const gguf_file *f);

int64_t gguf_n_kv(const gguf_file *f);
const char *gguf_kv_key(const gguf_file *f, int64_t i);
uint32_t gguf_kv_type(const gguf_file *f, int64_t i);
int64_t gguf_find_key(const gguf_file *f, const char *key); /* -1 if absent */

/* Typed getters. Each returns 0 on success; on a missing key or wrong type it
 * fills err ("<file>: key '<key>': expected <type>, found <type>") and returns
 * a negative status. get_uint accepts any integer type whose value fits. */
int gguf_get_uint(const gguf_file *f, const char *key, uint64_t *out, gpt2_error *err);
int gguf_get_int(const gguf_file *f, const char *key, int64_t *out, gpt2_error *err);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, gpt2_error *err);
int gguf_get_bool(const gguf_file *f, const char *key, int *out, gpt2_error *err);
/* String value: pointer into the mapping (not NUL-terminated) and length. */
int gguf_get_str(const gguf_file *f, const char *key, const char **s, size_t *len,
                 gpt2_error *err);
/* Array: element type and count. */
int gguf_get_arr(const gguf_file *f, const char *key, uint32_t *elem_type, uint64_t *n,
                 gpt2_error *err);
/* Raw elements of a non-string array (pointer into the mapping; may be unaligned,
 * read with memcpy). */
const void *gguf_arr_data(const gguf_file *f, const char *key);
/* Element j of a string array; NULL if out of range or not a string array. */
const char *gguf_arr_str(const gguf_file *f, const char *key, uint64_t j, size_t *len);

/* By index value accessors for generic dumps (any type). */
uint64_t gguf_kv_arr_n(const gguf_file *f, int64_t i);
uint32_t gguf_kv_arr_type(const gguf_file *f, int64_t i);

int64_t gguf_n_tensors(const gguf_file *f);
const gguf_tensor *gguf_tensor_at(const gguf_file *f, int64_t i);
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name); /* NULL if absent */
int64_t gguf_tensor_index(const gguf_file *f, const char *name);          /* -1 if absent */

/* ---- writer ---------------------------------------------------------- */

/* Produces one tensor's bytes into buf (exactly n_bytes). Return 0 or a
 * negative gpt2_status (with err filled). Called once per tensor, in order, so
 * a converter never needs every tensor in memory at once. */
typedef int (*gguf_fill_fn)(void *buf, size_t n_bytes, void *user, gpt2_error *err);

typedef struct gguf_writer gguf_writer;

gguf_writer *gguf_writer_create(void);
void gguf_writer_free(gguf_writer *w);

/* Metadata, written in the order set. Setting an existing key replaces it.
 * Each returns 0 or GPT2_ERR_NOMEM / GPT2_ERR_INVALID. */
int gguf_set_u8(gguf_writer *w, const char *key, uint8_t v);
int gguf_set_i8(gguf_writer *w, const char *key, int8_t v);
int gguf_set_u16(gguf_writer *w, const char *key, uint16_t v);
int gguf_set_i16(gguf_writer *w, const char *key, int16_t v);
int gguf_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_set_i64(gguf_writer *w, const char *key, int64_t v);
int gguf_set_f32(gguf_writer *w, const char *key, float v);
int gguf_set_f64(gguf_writer *w, const char *key, double v);
int gguf_set_bool(gguf_writer *w, const char *key, int v);
int gguf_set_str(gguf_writer *w, const char *key, const char *v);
/* Array of scalars (elem_type not STRING/ARRAY); data copied. */
int gguf_set_arr(gguf_writer *w, const char *key, uint32_t elem_type, const void *data, uint64_t n);
/* Array of strings with explicit lengths (lens may be NULL: NUL-terminated). */
int gguf_set_arr_str(gguf_writer *w, const char *key, const char *const *strs,
                     const size_t *lens, uint64_t n);

/* Tensor: name, type, dims (ne[0] innermost), and either a data pointer that
 * stays valid until gguf_writer_write returns, or a fill callback. */
int gguf_add_tensor(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                    const uint64_t *ne, const void *data);
int gguf_add_tensor_fill(gguf_writer *w, const char *name, uint32_t type, int n_dims,
                         const uint64_t *ne, gguf_fill_fn fill, void *user);

/* Writes the file: header, metadata (plus GGUF_KEY_CRC32 with one CRC-32 per
 * tensor when with_crc), tensor table, aligned data. Writes to a temporary
 * file in the same directory, fsyncs, renames over path; on any failure the
 * temporary is removed and path is untouched. progress (may be NULL) is
 * called after each tensor. */
typedef void (*gguf_progress_fn)(int64_t done, int64_t total, const char *name, void *user);
int gguf_writer_write(gguf_writer *w, const char *path, int with_crc, gguf_progress_fn progress,
                      void *user, gpt2_error *err);

/* CRC-32 (zlib) of a buffer of any size; _update continues a running CRC
 * (start from 0). */
uint32_t gguf_crc32(const void *data, size_t n);
uint32_t gguf_crc32_update(uint32_t crc, const void *data, size_t n);

#endif
