/* Fuzz target: the .safetensors reader of the Hugging Face converter. Bytes
 * go through safetensors_open_mem (header length, JSON, every entry's dtype,
 * shape and data offsets); then every tensor is looked up by name and its
 * first, middle and last elements converted to fp32.
 * Invariants: a refusal is an error status with a message naming the file;
 * every tensor's data lies inside the input and matches its shape;
 * conversion works exactly for the convertible dtypes. */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "safetensors.h"

#define NAME "model.safetensors"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gpt2_error err;
    safetensors_file *f = safetensors_open_mem(data, size, NAME, &err);
    if (!f) {
        FUZZ_CHECK(err.code < 0, "code %d", err.code);
        FUZZ_CHECK(strstr(err.msg, NAME) != NULL, "message does not name the file: %s", err.msg);
        return 0;
    }
    for (int i = 0; i < safetensors_count(f); i++) {
        const safetensors_tensor *t = safetensors_at(f, i);
        FUZZ_CHECK(safetensors_find(f, t->name) == t, "tensor '%s' found elsewhere", t->name);
        const uint8_t *p = t->data;
        FUZZ_CHECK(p >= data && t->n_bytes <= size && (size_t)(p - data) <= size - t->n_bytes,
                   "tensor '%s' outside the input", t->name);
        FUZZ_CHECK(t->n_bytes == t->n_elements * safetensors_dtype_size(t->dtype),
                   "tensor '%s': %zu bytes for %llu elements", t->name, t->n_bytes,
                   (unsigned long long)t->n_elements);
        char shape[160];
        safetensors_shape_str(t, shape, sizeof shape);
        const uint64_t n = t->n_elements;
        const uint64_t pick[3] = {0, n / 2, n ? n - 1 : 0};
        for (int k = 0; k < 3; k++) {
            float v[2];
            const uint64_t count = n - pick[k] < 2 ? n - pick[k] : 2;
            int rc = safetensors_to_f32(t, pick[k], count, v, &err);
            if (safetensors_dtype_convertible(t->dtype))
                FUZZ_CHECK(rc == 0, "tensor '%s': %s", t->name, err.msg);
            else
                FUZZ_CHECK(rc == GPT2_ERR_UNSUPPORTED, "tensor '%s': status %d", t->name, rc);
        }
        float v;
        FUZZ_CHECK(safetensors_to_f32(t, n, 1, &v, &err) < 0, "element past the end of '%s'",
                   t->name);
    }
    safetensors_close(f);
    return 0;
}
