# Tests that are not Check suites (included from CMakeLists.txt).

# The independent NumPy reference checks itself (causality, scalar loops,
# HF vs GGUF paths, sensitivity to plausible bugs) before anything trusts it.
add_test(NAME reference_selftest
  COMMAND ${GPT2C_PYTHON} ${CMAKE_SOURCE_DIR}/tests/reference/selftest.py)
set_tests_properties(reference_selftest PROPERTIES TIMEOUT 300)

# The committed tokenizer fixture is what the independent encoder produces now.
add_test(NAME tokenizer_fixture_current
  COMMAND ${GPT2C_PYTHON} ${CMAKE_SOURCE_DIR}/tests/reference/tokenizer_ref.py --check)
