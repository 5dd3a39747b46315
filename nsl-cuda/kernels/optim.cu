// Optimiser updates (see nsl_core::SgdStep, nsl_core::AdamStep), unfused f32 as on the CPU.
#include "common.cuh"

// g' = g + wd·w; v = g' (first step) or momentum·v + damp·g'; w −= lr·v. damp = 1 − dampening.
extern "C" __global__ void nsl_sgd_step(int n, float lr, float momentum, float damp, float wd, int first,
                                        float* __restrict__ w, const float* __restrict__ g, float* __restrict__ v) {
    int i = gid();
    if (i >= n) return;
    float wi = w[i];
    float gp = __fadd_rn(g[i], __fmul_rn(wd, wi));
    float vi = first ? gp : __fadd_rn(__fmul_rn(momentum, v[i]), __fmul_rn(damp, gp));
    v[i] = vi;
    w[i] = __fsub_rn(wi, __fmul_rn(lr, vi));
}

// Adam with coupled L2; c1 = 1/(1−β1ᵗ), c2 = 1/(1−β2ᵗ) computed on the host.
extern "C" __global__ void nsl_adam_step(int n, float lr, float b1, float b2, float eps, float wd, float c1, float c2,
                                         float* __restrict__ w, const float* __restrict__ g, float* __restrict__ m,
                                         float* __restrict__ v) {
    int i = gid();
    if (i >= n) return;
    float wi = w[i];
    float gp = __fadd_rn(g[i], __fmul_rn(wd, wi));
    float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(__fsub_rn(1.0f, b1), gp));
    float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(__fsub_rn(1.0f, b2), gp), gp));
    m[i] = mi;
    v[i] = vi;
    float num = __fmul_rn(lr, __fmul_rn(mi, c1));
    float den = __fadd_rn(sqrtf(__fmul_rn(vi, c2)), eps);
    w[i] = __fsub_rn(wi, num / den);
}
