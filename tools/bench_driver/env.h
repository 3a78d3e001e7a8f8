/* The machine part of a report's "environment" object (reports/README.md).
 * Collected once per run; allocation is fine here. */
#ifndef GPT2C_BENCH_ENV_H
#define GPT2C_BENCH_ENV_H

#include <cjson/cJSON.h>

/* A new object with: cpu_model, cpu_flags (array of strings, first processor
 * of /proc/cpuinfo), cores_online, memory_total_mb, os (PRETTY_NAME of
 * os-release), kernel ("<uname -r> <uname -v>"), hostname, compiler, cflags,
 * build_type, git_commit, git_dirty, gpt2c_version (generated/build_info.h),
 * and gpu: {"name", "memory_mb", "driver", "clocks_mhz" (max SM clock)} of
 * GPU 0 (or of the first of CUDA_VISIBLE_DEVICES) when nvidia-smi is on PATH
 * and answers within a few seconds, else null. A fact that cannot be read is
 * null, never a guess. The caller adds threads_used, isa, isa_available, gemm
 * and model, and owns the result (cJSON_Delete). NULL only when out of memory. */
cJSON *bench_env_collect(void);

/* The gpu object from one line of
 * `nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm
 *  --format=csv,noheader,nounits`; fields nvidia-smi reports as "[N/A]" or
 * "[Not Supported]" are null. NULL if the line does not have the four fields
 * or has no name. Exposed for tests. */
cJSON *bench_env_parse_gpu_csv(const char *line);

#endif
