/* Reader for .safetensors files (Hugging Face):
 *   u64 little-endian header length N, N bytes of JSON, then the data area.
 *   JSON: { "<name>": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 *           ..., "__metadata__": {..} }  offsets relative to the data area.
 *
 * The file is mmapped read-only. At open every entry is checked: known dtype,
 * non-negative integer shape, begin <= end <= data size, and
 * end - begin == product(shape) * dtype size (overflow-checked). Errors name
 * the file and the tensor. Every dtype of the format is accepted at open
 * (a checkpoint may carry e.g. a BOOL mask buffer nobody reads); only F32, F16
 * and BF16 convert to fp32, and asking for another names the tensor. */
#ifndef GPT2C_SAFETENSORS_H
#define GPT2C_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "gpt2.h"

/* Largest JSON header accepted (the format's own readers use 100 MB). */
#define SAFETENSORS_MAX_HEADER (100u * 1000u * 1000u)
#define SAFETENSORS_MAX_DIMS 8

typedef enum {
    ST_F32 = 0,
    ST_F16,
    ST_BF16,
    /* known to the format, not convertible here */
    ST_F64,
    ST_I64,
    ST_I32,
    ST_I16,
    ST_I8,
    ST_U64,
    ST_U32,
    ST_U16,
    ST_U8,
    ST_BOOL,
    ST_F8_E4M3,
    ST_F8_E5M2,
    ST_DTYPE_COUNT
} st_dtype;

typedef struct safetensors_tensor {
    const char *name;
    st_dtype dtype;
    int n_dims;                              /* 0 for a scalar */
    uint64_t shape[SAFETENSORS_MAX_DIMS];    /* outermost first, as in PyTorch */
    uint64_t n_elements;
    const void *data;                        /* into the mapping; may be unaligned */
    size_t n_bytes;
} safetensors_tensor;

typedef struct safetensors_file safetensors_file;

safetensors_file *safetensors_open(const char *path, gpt2_error *err);
/* The same checks over bytes already in memory (fuzzing, tests): data stays
 * the caller's and must outlive the handle; name stands for the path. */
safetensors_file *safetensors_open_mem(const void *data, size_t size, const char *name,
                                       gpt2_error *err);
void safetensors_close(safetensors_file *f);

const char *safetensors_path(const safetensors_file *f);
/* Tensors in header order ("__metadata__" excluded). */
int safetensors_count(const safetensors_file *f);
const safetensors_tensor *safetensors_at(const safetensors_file *f, int i);
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);

const char *safetensors_dtype_name(st_dtype t);
size_t safetensors_dtype_size(st_dtype t);
/* 1 for F32, F16, BF16 */
int safetensors_dtype_convertible(st_dtype t);

/* Writes "[d0, d1, ...]" into buf. */
void safetensors_shape_str(const safetensors_tensor *t, char *buf, size_t cap);

/* Elements [first, first + count) (flat, row-major) of t as fp32.
 * GPT2_ERR_UNSUPPORTED for a dtype that does not convert, GPT2_ERR_INVALID
 * for a range past the end; err names the tensor. */
int safetensors_to_f32(const safetensors_tensor *t, uint64_t first, uint64_t count, float *out,
                       gpt2_error *err);

#endif
