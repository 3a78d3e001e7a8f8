/* Fuzz target: the config.json reader of the Hugging Face converter
 * (gpt2_hf_config_parse), then the tensor table derived from an accepted
 * config (first and last tensor).
 * Invariants: a refusal is an error status with a message naming the file;
 * an accepted config passes gpt2_config_validate. */
#include <stdint.h>
#include <string.h>

#include "fuzz_check.h"
#include "hf_config.h"
#include "model_writer.h"

#define NAME "config.json"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    gpt2_error err;
    gpt2_config cfg;
    if (gpt2_hf_config_parse((const char *)data, size, NAME, &cfg, &err) < 0) {
        FUZZ_CHECK(err.code < 0, "code %d", err.code);
        FUZZ_CHECK(strstr(err.msg, NAME) != NULL, "message does not name the file: %s", err.msg);
        return 0;
    }
    FUZZ_CHECK(gpt2_config_validate(&cfg, &err) == 0, "accepted config is invalid: %s", err.msg);
    const int n_t = gpt2_model_tensor_count(&cfg);
    FUZZ_CHECK(n_t >= 4 + GPT2_TENSORS_PER_LAYER, "%d tensors", n_t);
    gpt2_tensor_info t;
    gpt2_model_tensor_info(&cfg, 0, &t);
    gpt2_model_tensor_info(&cfg, n_t - 1, &t);
    return 0;
}
