use super::SimilarityMatrix;

/// Unconstrained neural similarity (static UNS): `M_s` is a free `n×n` matrix starting at `I`,
/// with L2 decay 5e-3 by default (reference code; pulls `M_s` towards 0, not `I`).
#[derive(Clone, Copy, Debug)]
pub struct Unconstrained {
    pub weight_decay: f32,
}

impl Default for Unconstrained {
    fn default() -> Self {
        Unconstrained { weight_decay: 5e-3 }
    }
}

impl SimilarityMatrix for Unconstrained {
    fn name(&self) -> String {
        "static UNS".into()
    }
    fn init(&self, n: usize) -> Vec<f32> {
        (0..n * n).map(|i| f32::from(i / n == i % n)).collect()
    }
    fn matrix(&self, theta: &[f32], _n: usize) -> Vec<f32> {
        theta.to_vec()
    }
    fn matrix_backward(&self, _theta: &[f32], _n: usize, dm: &[f32], dtheta: &mut [f32]) {
        for (d, g) in dtheta.iter_mut().zip(dm) {
            *d += g;
        }
    }
    fn weight_decay(&self) -> f32 {
        self.weight_decay
    }
}
