# Tests that are not Check suites (included from CMakeLists.txt).

# The independent NumPy reference checks itself (causality, scalar loops,
# HF vs GGUF paths, sensitivity to plausible bugs) before anything trusts it.
add_test(NAME reference_selftest
  COMMAND ${GPT2C_PYTHON} ${CMAKE_SOURCE_DIR}/tests/reference/selftest.py)
set_tests_properties(reference_selftest PROPERTIES TIMEOUT 300)

# The committed tokenizer fixture is what the independent encoder produces now.
add_test(NAME tokenizer_fixture_current
  COMMAND ${GPT2C_PYTHON} ${CMAKE_SOURCE_DIR}/tests/reference/tokenizer_ref.py --check)

# test_kbench (a Check suite, added by CMakeLists.txt) also needs the kbench library.
target_link_libraries(test_kbench PRIVATE gpt2c_kbench)

# A whole quick benchmark run on a tiny model: schema, HTML, throughput isolation;
# with a few seconds of gpt2c-kbench, whose roofline the report must carry.
add_test(NAME bench_quick
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/bench_quick.sh ${CMAKE_BINARY_DIR}/bin
          ${CMAKE_SOURCE_DIR} ${GPT2C_TESTDATA}/bench_quick ${GPT2C_PYTHON})
set_tests_properties(bench_quick PROPERTIES TIMEOUT 600)

# The soak for a few seconds, SIGINT during the soak and the phases, reports
# that cannot be written.
add_test(NAME bench_soak
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/bench_soak.sh ${CMAKE_BINARY_DIR}/bin
          ${CMAKE_SOURCE_DIR} ${GPT2C_TESTDATA}/bench_soak ${GPT2C_PYTHON})
set_tests_properties(bench_soak PROPERTIES TIMEOUT 600)

# Model writes that fail (no folder, full disk, killed part-way) leave no file
# that looks valid, with the real programs.
add_test(NAME write_failures
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/write_failures.sh ${CMAKE_BINARY_DIR}/bin
          ${GPT2C_TESTDATA}/write_failures)
set_tests_properties(write_failures PROPERTIES TIMEOUT 600)

# gpt2c-generate end to end: --warmup keeps the output, --stats-json, usage errors.
add_test(NAME generate_cli
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/generate_cli.sh ${CMAKE_BINARY_DIR}/bin
          ${GPT2C_TESTDATA}/generate_cli)
set_tests_properties(generate_cli PROPERTIES TIMEOUT 300)

# The default 124M model against the NumPy reference (golden fixture).
add_test(NAME golden_default_model
  COMMAND bash ${CMAKE_SOURCE_DIR}/tests/golden_default.sh ${CMAKE_BINARY_DIR}/bin
          ${CMAKE_SOURCE_DIR} ${GPT2C_TESTDATA}/golden ${GPT2C_PYTHON})
set_tests_properties(golden_default_model PROPERTIES TIMEOUT 600)

# The CUDA suites (built only with the CUDA backend). Without a device they
# print "skipped: no CUDA device" and pass; tools/gpu_check runs them on a GPU.
if(GPT2C_CUDA_ON)
  foreach(name test_cuda_kernels test_cuda_model)
    add_executable(${name} ${CMAKE_SOURCE_DIR}/tests/${name}.c)
    target_link_libraries(${name} PRIVATE gpt2c PkgConfig::CHECK)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests)
    add_test(NAME ${name} COMMAND ${name})
    set_tests_properties(${name} PROPERTIES ENVIRONMENT
      "GPT2C_SOURCE_DIR=${CMAKE_SOURCE_DIR};GPT2C_TESTDATA=${GPT2C_TESTDATA}" TIMEOUT 900)
  endforeach()
endif()

# The fuzz targets: a replay program per target in every build, and a ctest
# test replaying its committed corpus; libFuzzer binaries with GPT2C_FUZZ.
include(${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz.cmake)
