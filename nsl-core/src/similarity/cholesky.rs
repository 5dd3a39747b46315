use super::SimilarityMatrix;

/// Symmetric positive-definite similarity `M_s = L Lᵀ` (paper §3.4; not in the reference code).
///
/// θ packs the lower triangle of `L` row by row (`n(n+1)/2` values). The diagonal is kept
/// positive with a **softplus**: `L_ii = ln(1 + e^{θ_ii})`; off-diagonal `L_ij = θ_ij`.
/// Init `L = I` (θ_ii = ln(e − 1)), so `M_s` starts at the identity.
/// Backward: `dL = (dM + dMᵀ)·L` on the lower triangle, times `sigmoid(θ_ii)` on the diagonal.
#[derive(Clone, Copy, Debug, Default)]
pub struct CholeskyPsd {
    /// Coupled L2 on θ (default 0).
    pub weight_decay: f32,
}

fn packed(i: usize, j: usize) -> usize {
    i * (i + 1) / 2 + j
}

fn softplus(x: f32) -> f32 {
    if x > 20.0 {
        x
    } else {
        x.exp().ln_1p()
    }
}

impl CholeskyPsd {
    /// `L` as a dense `n×n` row-major matrix.
    pub fn lower(theta: &[f32], n: usize) -> Vec<f32> {
        let mut l = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = theta[packed(i, j)];
                l[i * n + j] = if i == j { softplus(v) } else { v };
            }
        }
        l
    }
}

impl SimilarityMatrix for CholeskyPsd {
    fn name(&self) -> String {
        "static PSD (LLᵀ)".into()
    }
    fn init(&self, n: usize) -> Vec<f32> {
        let mut theta = vec![0.0; n * (n + 1) / 2];
        for i in 0..n {
            theta[packed(i, i)] = (std::f32::consts::E - 1.0).ln();
        }
        theta
    }
    fn matrix(&self, theta: &[f32], n: usize) -> Vec<f32> {
        let l = Self::lower(theta, n);
        let mut m = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                m[i * n + j] = (0..n).map(|k| l[i * n + k] * l[j * n + k]).sum();
            }
        }
        m
    }
    fn matrix_backward(&self, theta: &[f32], n: usize, dm: &[f32], dtheta: &mut [f32]) {
        let l = Self::lower(theta, n);
        for i in 0..n {
            for j in 0..=i {
                // dL[i,j] = Σ_k (dM[i,k] + dM[k,i]) · L[k,j]
                let dl: f32 = (0..n).map(|k| (dm[i * n + k] + dm[k * n + i]) * l[k * n + j]).sum();
                let chain = if i == j { 1.0 / (1.0 + (-theta[packed(i, i)]).exp()) } else { 1.0 };
                dtheta[packed(i, j)] += dl * chain;
            }
        }
    }
    fn weight_decay(&self) -> f32 {
        self.weight_decay
    }
}
