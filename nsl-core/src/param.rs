//! [`Param`]: a named tensor with its gradient and its regularisation settings.

use crate::{Backend, Gemm, Map, Tensor};

/// What a parameter is: code that treats kinds of parameters differently (ℓ1 on similarities,
/// few-shot adaptation, parameter counts, the predictors' output scale) asks this, never the
/// name, which is only the checkpoint key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A convolution's or fully connected layer's kernel (predictors' included).
    Weight,
    /// The parameters `θ` of a static similarity `M_s(θ)` (a DNS diagonal, a UNS matrix, a
    /// Cholesky factor) or of a global similarity mask.
    Similarity,
    /// The joint kernel shape's `D_r` (trained by a straight-through estimator).
    ShapeMask,
    /// A batch norm's `γ`; `predictor_output` marks the `γ` of a dynamic predictor's output batch
    /// norm, whose start sets how far `M` begins from `I`.
    BnScale {
        predictor_output: bool,
    },
    /// A batch norm's `β`.
    BnShift,
    /// Batch-norm running statistics (buffers).
    RunningMean,
    RunningVar,
    EmaCount,
    /// Self-attention's mixing weight `γ`.
    AttentionScale,
}

/// A learnable tensor (or a non-learnable buffer such as batch-norm running statistics).
///
/// Regularisation is per parameter, as in the reference code:
/// coupled L2 `λ/2·‖w‖²` (applied by the optimiser as `g += λ·w`), an optional ℓ1 term
/// `μ·‖w‖₁` (paper §3.4) and an optional orthogonality term `c/2·‖WᵀW − I‖²_F` with `W` the
/// value viewed as `[rows, cols]` (SphereNet, spec §3.6).
pub struct Param<B: Backend> {
    /// Hierarchical name, e.g. `conv2_1.sim.mask`: the checkpoint key.
    pub name: String,
    pub role: Role,
    pub value: Tensor<B>,
    /// Same shape as `value` when trainable, empty for buffers.
    pub grad: Tensor<B>,
    pub trainable: bool,
    /// Excluded from updates for now (few-shot fine-tuning of a subset).
    pub frozen: bool,
    pub weight_decay: f32,
    pub l1: f32,
    pub orthogonality: f32,
}

impl<B: Backend> Param<B> {
    /// A trainable parameter with zero gradient and no regularisation.
    pub fn new(be: &B, name: impl Into<String>, role: Role, value: Tensor<B>) -> Self {
        let grad = value.zeros_like(be);
        Param {
            name: name.into(),
            role,
            value,
            grad,
            trainable: true,
            frozen: false,
            weight_decay: 0.0,
            l1: 0.0,
            orthogonality: 0.0,
        }
    }
    /// A non-trainable buffer (saved in checkpoints, never updated by an optimiser).
    pub fn buffer(be: &B, name: impl Into<String>, role: Role, value: Tensor<B>) -> Self {
        Param {
            name: name.into(),
            role,
            value,
            grad: Tensor::zeros(be, &[0]),
            trainable: false,
            frozen: false,
            weight_decay: 0.0,
            l1: 0.0,
            orthogonality: 0.0,
        }
    }
    /// Set the coupled L2 coefficient λ.
    pub fn with_decay(mut self, weight_decay: f32) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    /// Whether an optimiser should update it.
    pub fn learnable(&self) -> bool {
        self.trainable && !self.frozen
    }
    /// `grad = 0`.
    pub fn zero_grad(&mut self, be: &B) {
        if self.trainable {
            be.fill(self.grad.buf_mut(), 0.0);
        }
    }

    /// Add the ℓ1 and orthogonality gradients to `grad` and return their penalty value
    /// (`μ·‖w‖₁ + c/2·‖WᵀW − I‖²_F`). L2 is left to the optimiser (coupled decay).
    pub fn add_regularizer_grads(&mut self, be: &B) -> f32 {
        let mut penalty = 0.0;
        if self.l1 > 0.0 {
            let mut sign = be.zeros(self.value.numel());
            be.map(Map::Sign, self.value.buf(), &mut sign);
            penalty += self.l1 * be.dot(&sign, self.value.buf());
            be.axpy(self.l1, &sign, self.grad.buf_mut());
        }
        if self.orthogonality > 0.0 {
            // W: [rows, cols]; G = WᵀW − I; penalty c/2·‖G‖²; grad 2c·W·G.
            let cols = *self.value.shape().last().expect("orthogonality needs a matrix");
            let rows = self.value.numel() / cols;
            let mut gram = be.zeros(cols * cols);
            be.gemm(&Gemm::new(cols, cols, rows).ta(), self.value.buf(), self.value.buf(), &mut gram);
            let mut eye = vec![0.0; cols * cols];
            for i in 0..cols {
                eye[i * cols + i] = 1.0;
            }
            be.axpy(-1.0, &be.upload(&eye), &mut gram);
            penalty += 0.5 * self.orthogonality * be.dot(&gram, &gram);
            let g = Gemm::new(rows, cols, cols).scaled(2.0 * self.orthogonality, 1.0);
            be.gemm(&g, self.value.buf(), &gram, self.grad.buf_mut());
        }
        penalty
    }

    /// The L2 penalty value `λ/2·‖w‖²` (for loss reporting).
    pub fn l2_penalty(&self, be: &B) -> f32 {
        if self.trainable && self.weight_decay > 0.0 {
            0.5 * self.weight_decay * be.dot(self.value.buf(), self.value.buf())
        } else {
            0.0
        }
    }
}
