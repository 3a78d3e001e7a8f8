# The CUDA backend, included from CMakeLists.txt when nvcc exists.
#   gpt2c_cuda_kernels  the kernels (cuda/*.cu), the cuBLAS baseline and the
#                       device query: no engine code, usable by tests and kbench
#   gpt2c               gains cuda/backend_cuda.c and GPT2C_HAVE_CUDA
#   gpt2c-kbench-cuda   the kernel micro-benchmark
# Targets sm_80 and sm_90 as machine code plus compute_90 PTX for newer GPUs;
# override with -DCMAKE_CUDA_ARCHITECTURES=...
if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
  set(CMAKE_CUDA_ARCHITECTURES "80-real;90-real;90-virtual")
endif()
enable_language(CUDA)
find_package(CUDAToolkit REQUIRED)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_CUDA_STANDARD_REQUIRED ON)
set(CMAKE_CUDA_FLAGS_RELEASE "-O3 -DNDEBUG")

file(GLOB GPT2C_CUDA_KERNEL_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/cuda/*.cu)
list(FILTER GPT2C_CUDA_KERNEL_SOURCES EXCLUDE REGEX "/kbench\\.cu$")
add_library(gpt2c_cuda_kernels STATIC ${GPT2C_CUDA_KERNEL_SOURCES}
  ${CMAKE_SOURCE_DIR}/cuda/gemm_cublas.c ${CMAKE_SOURCE_DIR}/cuda/device_info.c)
# The directory's warning flags are gcc's; nvcc gets its own (it rejects -Wshadow & co).
set_target_properties(gpt2c_cuda_kernels PROPERTIES COMPILE_OPTIONS "")
target_compile_options(gpt2c_cuda_kernels PRIVATE
  $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall>
  $<$<COMPILE_LANGUAGE:C>:-Wall -Wextra -Wno-unused-parameter>)
target_include_directories(gpt2c_cuda_kernels PUBLIC ${CMAKE_SOURCE_DIR}/cuda)
# cuBLAS is opened with dlopen when --gemm cublas asks for it (gemm_cublas.h):
# linked, it would cost every process ~210 MB of resident memory. Its headers only.
target_include_directories(gpt2c_cuda_kernels PUBLIC ${CUDAToolkit_INCLUDE_DIRS})
target_link_libraries(gpt2c_cuda_kernels PUBLIC CUDA::cudart ${CMAKE_DL_LIBS})

# gpt2c was created before CUDA was enabled: give it the architectures too
set_target_properties(gpt2c PROPERTIES CUDA_ARCHITECTURES "${CMAKE_CUDA_ARCHITECTURES}")
target_sources(gpt2c PRIVATE ${CMAKE_SOURCE_DIR}/cuda/backend_cuda.c)
target_compile_definitions(gpt2c PUBLIC GPT2C_HAVE_CUDA)
target_link_libraries(gpt2c PUBLIC gpt2c_cuda_kernels)

add_executable(gpt2c-kbench-cuda ${CMAKE_SOURCE_DIR}/cuda/kbench.cu)
set_target_properties(gpt2c-kbench-cuda PROPERTIES COMPILE_OPTIONS "")
target_link_libraries(gpt2c-kbench-cuda PRIVATE gpt2c_cuda_kernels)
set(GPT2C_CUDA_ON ON)
