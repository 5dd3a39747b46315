use super::SimilarityMatrix;

/// How a static DNS mask starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagonalInit {
    /// All ones: the identity similarity (paper's intent; used for few-shot and new work).
    Ones,
    /// The reference code's `np.eye(3).reshape(1, 9)` = `[1,0,0,0,1,0,0,0,1]` (spec §3.1):
    /// for a k×k window, 1 on taps `(i, i)`, 0 elsewhere. Default for Table 4 parity.
    CodeEye,
}

/// Diagonal neural similarity (static DNS): `M_s = diag(d)`, so `ŵ[t,c,o] = d_t · w[t,c,o]`.
/// No weight decay on `d` (spec §1).
///
/// ```
/// use nsl_core::similarity::{Diagonal, SimilarityMatrix};
/// let dns = Diagonal::new(nsl_core::similarity::DiagonalInit::CodeEye);
/// assert_eq!(dns.init(9), vec![1., 0., 0., 0., 1., 0., 0., 0., 1.]);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Diagonal {
    pub init: DiagonalInit,
}

impl Diagonal {
    pub fn new(init: DiagonalInit) -> Self {
        Diagonal { init }
    }
}

impl SimilarityMatrix for Diagonal {
    fn name(&self) -> String {
        "static DNS".into()
    }
    fn init(&self, n: usize) -> Vec<f32> {
        let k = (n as f64).sqrt().round() as usize;
        (0..n)
            .map(|t| match self.init {
                DiagonalInit::Ones => 1.0,
                DiagonalInit::CodeEye => f32::from(t / k == t % k),
            })
            .collect()
    }
    fn matrix(&self, theta: &[f32], n: usize) -> Vec<f32> {
        let mut m = vec![0.0; n * n];
        for (t, d) in theta.iter().enumerate() {
            m[t * n + t] = *d;
        }
        m
    }
    fn matrix_backward(&self, _theta: &[f32], n: usize, dm: &[f32], dtheta: &mut [f32]) {
        for (t, d) in dtheta.iter_mut().enumerate() {
            *d += dm[t * n + t];
        }
    }
}
