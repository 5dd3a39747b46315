// Label-smoothed cross-entropy with a floor inside the log (see nsl_core::CrossEntropy and
// nsl-cpu's loss.rs for the gradient derivation). With p = softmax(z), ỹ = (1−s)·onehot + s/K,
// w_k = ỹ_k·p_k/(p_k + floor): L_b = −Σ_k ỹ_k·log(p_k + floor),
// ∂L/∂z_j = (1/B)·(p_j·Σ_k w_k − w_j). Everything per row in f64, like the CPU backend.
#include "common.cuh"

// One warp per example b: writes dlogits[b,:] and row_loss[b] (f64). Labels are validated
// on the host before the launch.
extern "C" __global__ void nsl_cross_entropy_rows(int batch, int k, float smoothing, float floor_, const float* __restrict__ logits,
                                                  const float* __restrict__ labels, float* __restrict__ dlogits,
                                                  double* __restrict__ row_loss) {
    int b = blockIdx.x * (NSL_THREADS / 32) + threadIdx.x / 32;
    int lane = threadIdx.x % 32;
    if (b >= batch) return;
    const float* z = logits + (size_t)b * k;
    float* dz = dlogits + (size_t)b * k;
    const int label = (int)labels[b];
    const double s = (double)smoothing, fl = (double)floor_;
    const double inv_b = 1.0 / (double)(batch > 1 ? batch : 1);

    double mx = -INFINITY;
    for (int j = lane; j < k; j += 32) mx = fmax(mx, (double)z[j]);
    mx = warp_maxd(mx);
    double sum = 0.0;
    for (int j = lane; j < k; j += 32) sum += exp((double)z[j] - mx);
    sum = warp_sum(sum);

    double loss = 0.0, wsum = 0.0;
    for (int j = lane; j < k; j += 32) {
        double p = exp((double)z[j] - mx) / sum;
        double yt = s / (double)k + (j == label ? 1.0 - s : 0.0);
        loss -= yt * log(p + fl);
        wsum += yt * p / (p + fl);
    }
    loss = warp_sum(loss);
    wsum = warp_sum(wsum);
    for (int j = lane; j < k; j += 32) {
        double p = exp((double)z[j] - mx) / sum;
        double yt = s / (double)k + (j == label ? 1.0 - s : 0.0);
        double w = yt * p / (p + fl);
        dz[j] = (float)((p * wsum - w) * inv_b);
    }
    if (lane == 0) row_loss[b] = loss;
}
