# Fuzz targets (included from tests/tests.cmake). Every tests/fuzz/fuzz_X.c
# defines LLVMFuzzerTestOneInput and becomes:
#   fuzz_replay_X  (every build, any compiler): the target + replay_main.c; the
#                  ctest test fuzz_corpus_X runs it over tests/fuzz/corpus/X,
#                  so the seeds and every reproducer stay regression tests
#                  (under ASan+UBSan too in build-asan/);
#   fuzz_X         (GPT2C_FUZZ=ON, clang): the libFuzzer binary; the target
#                  gpt2c_fuzz builds them all.
file(GLOB FUZZ_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
if(GPT2C_FUZZ)
  add_custom_target(gpt2c_fuzz)
endif()
foreach(src ${FUZZ_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" target ${name})
  add_executable(fuzz_replay_${target} ${src} ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
  target_link_libraries(fuzz_replay_${target} PRIVATE gpt2c_cli gpt2c)
  add_test(NAME fuzz_corpus_${target}
    COMMAND fuzz_replay_${target} ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${target})
  set_tests_properties(fuzz_corpus_${target} PROPERTIES TIMEOUT 300)
  if(GPT2C_FUZZ)
    add_executable(fuzz_${target} ${src})
    target_link_libraries(fuzz_${target} PRIVATE gpt2c_cli gpt2c)
    target_link_options(fuzz_${target} PRIVATE -fsanitize=fuzzer)
    add_dependencies(gpt2c_fuzz fuzz_${target})
  endif()
endforeach()
