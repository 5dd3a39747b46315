// cuBLAS SGEMM throughput at the shapes nsl's CUDA GEMM runs, FP32 and TF32 tensor-op math:
// the measurement behind nsl-cuda's "own kernel or cuBLAS" decision (nsl-bench/RESULTS.md).
// Built and run by nsl-cuda/gpu-run.sh on the GPU machine (step `cublas`):
//   nvcc -O2 -o cublas_sgemm cublas_sgemm.cu -lcublas && ./cublas_sgemm
// Row-major C[m×n] = A[m×k]·B[k×n] is computed as column-major Cᵀ = Bᵀ·Aᵀ.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cstdio>
#include <cstdlib>
#include <vector>

#define CHECK(x) do { auto s_ = (x); if (s_ != 0) { std::printf("error %d at %s:%d\n", (int)s_, __FILE__, __LINE__); std::exit(1); } } while (0)

static double time_gemm(cublasHandle_t h, int m, int n, int k, const float* a, const float* b, float* c) {
    const float one = 1.0f, zero = 0.0f;
    cudaEvent_t t0, t1;
    CHECK(cudaEventCreate(&t0));
    CHECK(cudaEventCreate(&t1));
    double best = 1e30;
    for (int rep = 0; rep < 6; ++rep) {
        CHECK(cudaEventRecord(t0));
        CHECK(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &one, b, n, a, k, &zero, c, n));
        CHECK(cudaEventRecord(t1));
        CHECK(cudaEventSynchronize(t1));
        float ms = 0;
        CHECK(cudaEventElapsedTime(&ms, t0, t1));
        if (rep > 0 && ms < best) best = ms;  // rep 0 warms up
    }
    return best * 1e-3;
}

int main() {
    // (m, n, k): squares of the FLOP counts `xtask bench` compares against, then CNN-9's
    // convolutions as im2col GEMMs at batch 128 (rows = 128·side², k = 9·c_in, n = c_out).
    const int shapes[][3] = {{1024, 1024, 1024}, {2048, 2048, 2048}, {4096, 4096, 4096},
                             {131072, 64, 27},   {131072, 128, 576}, {131072, 128, 1152},
                             {32768, 256, 1152}, {32768, 256, 2304}, {8192, 512, 2304}, {8192, 512, 4608}};
    size_t max_a = 0, max_b = 0, max_c = 0;
    for (auto& s : shapes) {
        max_a = std::max(max_a, (size_t)s[0] * s[2]);
        max_b = std::max(max_b, (size_t)s[2] * s[1]);
        max_c = std::max(max_c, (size_t)s[0] * s[1]);
    }
    float *a, *b, *c;
    CHECK(cudaMalloc(&a, max_a * 4));
    CHECK(cudaMalloc(&b, max_b * 4));
    CHECK(cudaMalloc(&c, max_c * 4));
    std::vector<float> host(std::max(max_a, max_b));
    for (size_t i = 0; i < host.size(); ++i) host[i] = (float)((i * 7919) % 1000) / 1000.0f - 0.5f;
    CHECK(cudaMemcpy(a, host.data(), max_a * 4, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(b, host.data(), max_b * 4, cudaMemcpyHostToDevice));
    cublasHandle_t h;
    CHECK(cublasCreate(&h));
    std::printf("| m | n | k | cuBLAS FP32 GFLOP/s | cuBLAS TF32 GFLOP/s |\n|---:|---:|---:|---:|---:|\n");
    for (auto& s : shapes) {
        double flops = 2.0 * s[0] * s[1] * s[2];
        CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
        double fp32 = flops / time_gemm(h, s[0], s[1], s[2], a, b, c) / 1e9;
        CHECK(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH));
        double tf32 = flops / time_gemm(h, s[0], s[1], s[2], a, b, c) / 1e9;
        std::printf("| %d | %d | %d | %.0f | %.0f |\n", s[0], s[1], s[2], fp32, tf32);
    }
    cublasDestroy(h);
    return 0;
}
