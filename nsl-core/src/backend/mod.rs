//! The backend contract: descriptors of the primitive ops, the [`Kernels`] a backend implements,
//! and the [`Backend`] every layer and similarity calls.
//!
//! - **[`Backend`]** (`contract.rs`) is what models are written against. Each op checks its
//!   arguments once, here in nsl-core — buffer lengths against the descriptor ([`Gemm`],
//!   [`crate::Window`], [`BatchNormDims`], [`Patch`], [`CrossEntropy`]), labels, optimiser
//!   constants — and then runs the backend's kernel. A violated contract is a bug in the caller
//!   and panics with the op, the argument and the lengths.
//! - **[`Kernels`]** (`kernels.rs`) is what a backend implements: storage and one kernel per
//!   op, receiving only checked arguments (each kernel takes a [`Checked`] token that only this
//!   module can make, so no one can call a kernel past the checks). `Backend` is implemented for
//!   every `Kernels` type; a backend crate holds kernel dispatch and nothing else.
//! - **Fused variants are parameters**: [`ConvScale`] (none, per tap, per row) of one `conv2d`,
//!   [`BatchNormDims::relu`] of one batch norm. The composed references in `unfused.rs` are the
//!   default kernels and what fused kernels are tested against.
//!
//! - **Device failures are values, not panics**: an asynchronous backend records its first
//!   failure ([`BackendError`], `error.rs`) and [`Backend::status`] returns it; callers check it
//!   once per step, where they read results back.
//!
//! All tensors are `f32`, row-major, feature maps NHWC. An op writes (overwrites) its `out`/`dx`
//! arguments unless its doc says it accumulates.

pub(crate) mod contract;
mod error;
mod kernels;
mod unfused;

pub use contract::Backend;
pub use error::BackendError;
pub use kernels::{Checked, Kernels};
pub use unfused::{batch_norm_relu_backward_unfused, batch_norm_relu_eval_unfused, batch_norm_relu_train_unfused};
pub use unfused::{conv2d_backward_unfused, conv2d_unfused};

/// A row-major strided-batch matrix product `C[b] = alpha · op(A[b]) · op(B[b]) + beta · C[b]`.
///
/// `op(A)` is `m×k`, `op(B)` is `k×n`, `C` is `m×n`. With `trans_a`, `A` is stored `k×m`;
/// with `trans_b`, `B` is stored `n×k`. Batch `b` starts at `b·stride_*` in each buffer
/// (a stride of 0 broadcasts that operand).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub trans_a: bool,
    pub trans_b: bool,
    pub alpha: f32,
    pub beta: f32,
    pub batch: usize,
    pub stride_a: usize,
    pub stride_b: usize,
    pub stride_c: usize,
}

impl Gemm {
    /// A single product `C = op(A)·op(B)` (alpha 1, beta 0, batch 1).
    pub fn new(m: usize, n: usize, k: usize) -> Self {
        Gemm {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            alpha: 1.0,
            beta: 0.0,
            batch: 1,
            stride_a: 0,
            stride_b: 0,
            stride_c: 0,
        }
    }
    /// Read `A` as its transpose.
    pub fn ta(mut self) -> Self {
        self.trans_a = true;
        self
    }
    /// Read `B` as its transpose.
    pub fn tb(mut self) -> Self {
        self.trans_b = true;
        self
    }
    /// Accumulate into `C` (`beta = 1`).
    pub fn accumulate(mut self) -> Self {
        self.beta = 1.0;
        self
    }
    /// Set alpha and beta.
    pub fn scaled(mut self, alpha: f32, beta: f32) -> Self {
        self.alpha = alpha;
        self.beta = beta;
        self
    }
    /// `batch` products with contiguous operands (`stride = m·k`, `k·n`, `m·n`).
    pub fn batched(mut self, batch: usize) -> Self {
        self.batch = batch;
        self.stride_a = self.m * self.k;
        self.stride_b = self.k * self.n;
        self.stride_c = self.m * self.n;
        self
    }
}

/// Pointwise maps `out = f(x)` offered by [`Backend::map`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Map {
    /// `sqrt(x + eps)`
    SqrtEps(f32),
    /// `1 / x`
    Recip,
    /// `x²`
    Square,
    /// `sign(x)` (0 at 0): the ℓ1 subgradient.
    Sign,
    /// `a·x + b`
    Affine(f32, f32),
}

/// Batch norm over `rows` rows of `c` channels (NHWC: rows = N·H·W), followed by a ReLU when
/// `relu` (one fused op each way: `y = max(γ·(x−μ)/sqrt(σ²+eps) + β, 0)`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormDims {
    pub rows: usize,
    pub c: usize,
    pub eps: f32,
    pub relu: bool,
}

impl BatchNormDims {
    /// Batch norm without the ReLU.
    pub fn new(rows: usize, c: usize, eps: f32) -> Self {
        BatchNormDims { rows, c, eps, relu: false }
    }
    /// The same batch norm followed by a ReLU.
    pub fn with_relu(self) -> Self {
        BatchNormDims { relu: true, ..self }
    }
}

/// The patch transforms' operands: `rows` patches of `taps` taps of `c` channels
/// (`cols` is `rows×taps×c`, an im2col matrix).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Patch {
    pub rows: usize,
    pub taps: usize,
    pub c: usize,
}

impl Patch {
    /// The patches of window `g` (`rows = g.rows()`, `taps = k²`, `c` input channels).
    pub fn of(g: &crate::Window) -> Self {
        Patch { rows: g.rows(), taps: g.taps(), c: g.c }
    }
    /// `rows·taps·c`, the length of the patch matrix.
    pub fn len(&self) -> usize {
        self.rows * self.taps * self.c
    }
    /// Whether there is no patch value.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The optional scale of a convolution ([`Backend::conv2d`]):
/// `y[r,o] = q[r] · Σ_{t,ch} s[r,t] · x[src(r,t), ch] · w[t·c + ch, o]`.
#[derive(Debug)]
pub enum ConvScale<'a, Buf> {
    /// `s ≡ 1`, `q ≡ 1`: a plain convolution.
    None,
    /// `s` (`rows × k²`), one scale per position and tap: the dynamic DNS transform.
    Taps(&'a Buf),
    /// `q` (`rows`), one scale per output row: SphereConv's `w_oᵀx_r / ‖x_r‖` with `q = 1/‖x‖`.
    Rows(&'a Buf),
}

// By hand: a derive would ask `Buf: Copy` of the buffers behind the references.
impl<Buf> Clone for ConvScale<'_, Buf> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Buf> Copy for ConvScale<'_, Buf> {}

/// Label-smoothed cross-entropy with a floor inside the log (reference code spec §1):
/// `ỹ = (1-s)·onehot + s/K`, `L = mean_b −Σ_k ỹ_k · log(softmax(z_b)_k + floor)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CrossEntropy {
    pub batch: usize,
    pub classes: usize,
    /// `s` above; the reference code uses 0.01.
    pub smoothing: f32,
    /// Added to the probability, not the logit; the reference code uses 1e-4.
    pub floor: f32,
}

/// Heavy-ball SGD with coupled L2 and PyTorch-style dampening:
/// `g' = g + wd·w`; `v = g'` on the first step, else `v = momentum·v + (1−dampening)·g'`; `w −= lr·v`.
/// TF's `MomentumOptimizer` is `dampening = 0` (then `v = momentum·v + g'` from `v = 0` is the same).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    pub lr: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub weight_decay: f32,
    pub first_step: bool,
}

/// Adam with coupled L2 (`g' = g + wd·w`) and bias correction at step `t ≥ 1`:
/// `m = β1·m + (1−β1)·g'`, `v = β2·v + (1−β2)·g'²`,
/// `w −= lr · (m/(1−β1ᵗ)) / (sqrt(v/(1−β2ᵗ)) + eps)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub t: u64,
}

impl AdamStep {
    /// The bias-correction factors `(1/(1−β1ᵗ), 1/(1−β2ᵗ))`, computed in `f64` and rounded once,
    /// that every backend's kernel multiplies by (`t ≥ 1`, checked by [`Backend::adam_step`]).
    pub fn corrections(&self) -> (f32, f32) {
        let t = self.t.min(i32::MAX as u64) as i32;
        let c1 = 1.0 / (1.0 - f64::from(self.beta1).powi(t));
        let c2 = 1.0 / (1.0 - f64::from(self.beta2).powi(t));
        (c1 as f32, c2 as f32)
    }
}
