//! The [`Backend`] trait: device storage plus a small fixed set of primitive ops.
//!
//! Every layer and every [`crate::Similarity`] is written against these ops only, so a new
//! backend implements this trait once and runs every model; a new similarity composes these
//! ops and runs on every backend. All tensors are `f32`, row-major, feature maps NHWC.
//!
//! Conventions: an op writes (overwrites) its `out`/`dx` arguments unless its doc says it
//! accumulates. Sizes are passed explicitly; backends may assume buffers are large enough
//! (callers in this crate check shapes before calling).

use crate::Window;

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

/// Batch-norm statistics over `rows` rows of `c` channels (NHWC: rows = N·H·W).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNormDims {
    pub rows: usize,
    pub c: usize,
    pub eps: f32,
}

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

/// A compute backend: where buffers live and how the primitive ops run.
///
/// Implementations: `nsl_cpu::Cpu`, `nsl_cuda::Cuda` (feature `cuda`).
pub trait Backend: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// A device buffer of `f32`.
    type Buf: Send + Sync;

    /// Human-readable name with the device, e.g. `cpu (2 threads, avx512f)`.
    fn name(&self) -> String;

    /// Waits until every op issued so far has finished, for timing (a backend that queues work
    /// asynchronously, like a GPU stream, overrides it). The default does nothing: ops of a
    /// synchronous backend are done when they return.
    fn synchronize(&self) {}

    // ---- storage -------------------------------------------------------------------------
    /// A zero-filled buffer of `len` elements.
    fn zeros(&self, len: usize) -> Self::Buf;
    /// A buffer of `len` elements with unspecified contents (a backend may hand back stale
    /// values of a recycled buffer), for outputs that an op overwrites entirely. Default: zeros.
    fn alloc(&self, len: usize) -> Self::Buf {
        self.zeros(len)
    }
    /// Copy host data to a new device buffer.
    fn upload(&self, data: &[f32]) -> Self::Buf;
    /// Copy a device buffer to the host.
    fn download(&self, buf: &Self::Buf) -> Vec<f32>;
    /// Number of elements in `buf`.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// `dst[..] = src[..]` (same length).
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf);

    // ---- dense algebra -------------------------------------------------------------------
    /// Strided-batch GEMM, see [`Gemm`].
    fn gemm(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf);
    /// `out = x` with every element set to `value`.
    fn fill(&self, x: &mut Self::Buf, value: f32);
    /// `y += alpha · x`
    fn axpy(&self, alpha: f32, x: &Self::Buf, y: &mut Self::Buf);
    /// `x *= alpha`
    fn scale(&self, alpha: f32, x: &mut Self::Buf);
    /// `out = a ⊙ b` (elementwise product)
    fn mul(&self, a: &Self::Buf, b: &Self::Buf, out: &mut Self::Buf);
    /// `out = f(x)`, see [`Map`].
    fn map(&self, f: Map, x: &Self::Buf, out: &mut Self::Buf);
    /// `Σ_i a_i·b_i` returned to the host.
    fn dot(&self, a: &Self::Buf, b: &Self::Buf) -> f32;
    /// `out[r,c] = x[r,c] · s[r]` for an `rows×cols` matrix.
    fn mul_rows(&self, x: &Self::Buf, s: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);
    /// `out[r,c] = x[r,c] · s[c]` for an `rows×cols` matrix.
    fn mul_cols(&self, x: &Self::Buf, s: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);
    /// `out[r] = Σ_c a[r,c]·b[r,c]` for `rows×cols` matrices.
    fn dot_rows(&self, a: &Self::Buf, b: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);
    /// `out[c] = Σ_r a[r,c]·b[r,c]` for `rows×cols` matrices.
    fn dot_cols(&self, a: &Self::Buf, b: &Self::Buf, rows: usize, cols: usize, out: &mut Self::Buf);

    // ---- convolution geometry ------------------------------------------------------------
    /// im2col: `cols[r, t·c + ch] = x[b, oy·s + t/k − pad_top, ox·s + t%k − pad_left, ch]`
    /// (zero outside the map), `r = (b·ho + oy)·wo + ox`; `cols` is `rows × k²c`.
    fn im2col(&self, g: &Window, x: &Self::Buf, cols: &mut Self::Buf);
    /// col2im, the adjoint of im2col: `dx = Σ` of every `dcols` entry at the input element it was read from.
    /// Overwrites `dx`.
    fn col2im(&self, g: &Window, dcols: &Self::Buf, dx: &mut Self::Buf);
    /// Convolution with an optional per-position, per-tap patch scale `s` (`rows × k²`, the
    /// dynamic DNS transform; `s ≡ 1` without it):
    /// `y[r,o] = Σ_{t,ch} s[r,t] · x[src(r,t), ch] · w[t·c + ch, o]`, i.e.
    /// `y = patch_scale(im2col(x), s) · w` with `w` `k²c × n` and `y` `rows × n` (overwritten).
    /// Default: exactly that composition ([`conv2d_unfused`]); a backend may fuse it so that
    /// the patch matrix is never materialised.
    #[allow(clippy::too_many_arguments)]
    fn conv2d(&self, g: &Window, n: usize, x: &Self::Buf, w: &Self::Buf, scale: Option<&Self::Buf>, y: &mut Self::Buf) {
        conv2d_unfused(self, g, n, x, w, scale, y)
    }
    /// Backward of [`Backend::conv2d`]: with `P = im2col(x)` and `dP = dy · wᵀ`,
    /// `dw += (s ⊙ P)ᵀ · dy` (**accumulates**), `dx = col2im(s ⊙ dP)` (overwrites) and, with a
    /// scale, `ds[r,t] = Σ_ch P[r,t,ch] · dP[r,t,ch]` (overwrites). Default:
    /// [`conv2d_backward_unfused`].
    #[allow(clippy::too_many_arguments)]
    fn conv2d_backward(
        &self,
        g: &Window,
        n: usize,
        x: &Self::Buf,
        w: &Self::Buf,
        scale: Option<&Self::Buf>,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dw: &mut Self::Buf,
        dscale: Option<&mut Self::Buf>,
    ) {
        conv2d_backward_unfused(self, g, n, x, w, scale, dy, dx, dw, dscale)
    }
    /// Convolution with a per-output-row scale `q` (`rows`, no patch scale):
    /// `y[r,o] = q[r] · Σ_{t,ch} x[src(r,t), ch] · w[t·c + ch, o]` — SphereConv's
    /// `w_oᵀx_r / ‖x_r‖` with `q = 1/‖x‖`. Default: [`conv2d_rows_scaled_unfused`]
    /// ([`Backend::conv2d`], then [`Backend::mul_rows`]); a backend may scale rows as it writes them.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_rows_scaled(&self, g: &Window, n: usize, x: &Self::Buf, w: &Self::Buf, q: &Self::Buf, y: &mut Self::Buf) {
        conv2d_rows_scaled_unfused(self, g, n, x, w, q, y)
    }
    /// Backward of [`Backend::conv2d_rows_scaled`] for `x` and `w`: [`Backend::conv2d_backward`]
    /// of `dy` with its rows times `q` (`dw` **accumulates**, `dx` overwritten). Default:
    /// [`conv2d_rows_scaled_backward_unfused`]; a backend may scale rows as it reads them.
    #[allow(clippy::too_many_arguments)]
    fn conv2d_rows_scaled_backward(
        &self,
        g: &Window,
        n: usize,
        x: &Self::Buf,
        w: &Self::Buf,
        q: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dw: &mut Self::Buf,
    ) {
        conv2d_rows_scaled_backward_unfused(self, g, n, x, w, q, dy, dx, dw)
    }
    /// DNS patch transform: `out[r,t,c] = m[r,t] · cols[r,t,c]` (`cols` is `rows×taps×c`, `m` is `rows×taps`).
    fn patch_scale(&self, rows: usize, taps: usize, c: usize, cols: &Self::Buf, m: &Self::Buf, out: &mut Self::Buf);
    /// Backward of [`Backend::patch_scale`]: `dcols[r,t,c] = m[r,t]·dout[r,t,c]`,
    /// `dm[r,t] = Σ_c cols[r,t,c]·dout[r,t,c]`. Overwrites both.
    #[allow(clippy::too_many_arguments)]
    fn patch_scale_backward(
        &self,
        rows: usize,
        taps: usize,
        c: usize,
        cols: &Self::Buf,
        m: &Self::Buf,
        dout: &Self::Buf,
        dcols: &mut Self::Buf,
        dm: &mut Self::Buf,
    );
    /// UNS patch transform: `out[r,a,c] = Σ_q M[r,a,q] · cols[r,q,c]` (`M` is `rows×taps×taps`).
    fn patch_matmul(&self, rows: usize, taps: usize, c: usize, cols: &Self::Buf, m: &Self::Buf, out: &mut Self::Buf);
    /// Backward of [`Backend::patch_matmul`]: `dcols[r,q,c] = Σ_a M[r,a,q]·dout[r,a,c]`,
    /// `dM[r,a,q] = Σ_c dout[r,a,c]·cols[r,q,c]`. Overwrites both.
    #[allow(clippy::too_many_arguments)]
    fn patch_matmul_backward(
        &self,
        rows: usize,
        taps: usize,
        c: usize,
        cols: &Self::Buf,
        m: &Self::Buf,
        dout: &Self::Buf,
        dcols: &mut Self::Buf,
        dm: &mut Self::Buf,
    );
    /// Window L2 norm: `n[r] = sqrt(Σ_{t,ch} x[src(r,t), ch]² + eps)` over the zero-padded k×k×C window.
    fn window_norm(&self, g: &Window, x: &Self::Buf, eps: f32, n: &mut Self::Buf);
    /// Backward of [`Backend::window_norm`]: `dx[i] += Σ_{r reading i} dn[r] · x[i] / n[r]`.
    /// **Accumulates** into `dx`.
    fn window_norm_backward(&self, g: &Window, x: &Self::Buf, n: &Self::Buf, dn: &Self::Buf, dx: &mut Self::Buf);

    // ---- normalisation, activations, pooling --------------------------------------------
    /// Training batch norm: per channel `μ`, biased `σ²` over rows;
    /// `y = γ·(x−μ)/sqrt(σ²+eps) + β`. Writes `y`, `mean`, `var`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_train(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        y: &mut Self::Buf,
        mean: &mut Self::Buf,
        var: &mut Self::Buf,
    );
    /// Inference batch norm with given statistics: `y = γ·(x−μ)/sqrt(σ²+eps) + β`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_eval(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        mean: &Self::Buf,
        var: &Self::Buf,
        y: &mut Self::Buf,
    );
    /// Backward of [`Backend::batch_norm_train`] (statistics depend on `x`):
    /// with `x̂ = (x−μ)/σ`, `dβ += Σ dy`, `dγ += Σ dy·x̂`,
    /// `dx = γ/σ · (dy − mean(dy) − x̂·mean(dy·x̂))`. Overwrites `dx`, **accumulates** `dγ`, `dβ`.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_backward(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        mean: &Self::Buf,
        var: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    );
    /// [`Backend::batch_norm_train`] followed by ReLU: `y = max(γ·(x−μ)/sqrt(σ²+eps) + β, 0)`.
    /// Default: the two ops through a temporary; a backend may fuse them (one pass less over
    /// the activations, no temporary).
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu_train(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        y: &mut Self::Buf,
        mean: &mut Self::Buf,
        var: &mut Self::Buf,
    ) {
        let mut t = self.alloc(self.len(y));
        self.batch_norm_train(d, x, gamma, beta, &mut t, mean, var);
        self.relu(&t, y);
    }
    /// [`Backend::batch_norm_eval`] followed by ReLU. Default: the two ops.
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu_eval(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        mean: &Self::Buf,
        var: &Self::Buf,
        y: &mut Self::Buf,
    ) {
        let mut t = self.alloc(self.len(y));
        self.batch_norm_eval(d, x, gamma, beta, mean, var, &mut t);
        self.relu(&t, y);
    }
    /// Backward of [`Backend::batch_norm_relu_train`] given its output `y` (and its shift `β`):
    /// the batch-norm backward of `dy·1[y > 0]`. Overwrites `dx`, **accumulates** `dγ`, `dβ`.
    /// A backend may read the mask from `y` or recompute it from `x`, `γ`, `β`, `μ`, `σ²` exactly
    /// as its forward computed `y` (the CPU backend does, one read of the activations less).
    /// Default: [`Backend::relu_backward`] then [`Backend::batch_norm_backward`].
    #[allow(clippy::too_many_arguments)]
    fn batch_norm_relu_backward(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf,
        y: &Self::Buf,
        gamma: &Self::Buf,
        _beta: &Self::Buf,
        mean: &Self::Buf,
        var: &Self::Buf,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    ) {
        let mut t = self.alloc(self.len(dy));
        self.relu_backward(y, dy, &mut t);
        self.batch_norm_backward(d, x, gamma, mean, var, &t, dx, dgamma, dbeta);
    }
    /// `y = max(x, 0)`
    fn relu(&self, x: &Self::Buf, y: &mut Self::Buf);
    /// `dx = dy · 1[y > 0]`
    fn relu_backward(&self, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    /// Max-pool over each k×k window of `g` per channel (padding never wins): `y` is `batch×ho×wo×c`.
    fn max_pool(&self, g: &Window, x: &Self::Buf, y: &mut Self::Buf);
    /// Backward of [`Backend::max_pool`]: each `dy` goes to the first (row-major) input in its
    /// window equal to the max. Overwrites `dx`.
    fn max_pool_backward(&self, g: &Window, x: &Self::Buf, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    /// Row softmax of a `rows×cols` matrix: `y[r,c] = exp(x[r,c] − max_r) / Σ exp(x[r,·] − max_r)`.
    fn softmax_rows(&self, x: &Self::Buf, rows: usize, cols: usize, y: &mut Self::Buf);
    /// Backward of [`Backend::softmax_rows`]: `dx[r,c] = y[r,c]·(dy[r,c] − Σ_j dy[r,j]·y[r,j])`.
    fn softmax_rows_backward(&self, y: &Self::Buf, dy: &Self::Buf, rows: usize, cols: usize, dx: &mut Self::Buf);
    /// Smoothed cross-entropy, see [`CrossEntropy`]. `labels` holds class indices as `f32`.
    /// Returns the mean loss and writes `dlogits = ∂L/∂logits`.
    fn cross_entropy(&self, d: &CrossEntropy, logits: &Self::Buf, labels: &Self::Buf, dlogits: &mut Self::Buf) -> f32;

    // ---- optimisers ----------------------------------------------------------------------
    /// One SGD-momentum update in place, see [`SgdStep`].
    fn sgd_step(&self, s: &SgdStep, w: &mut Self::Buf, g: &Self::Buf, v: &mut Self::Buf);
    /// One Adam update in place, see [`AdamStep`].
    fn adam_step(&self, s: &AdamStep, w: &mut Self::Buf, g: &Self::Buf, m: &mut Self::Buf, v: &mut Self::Buf);
}

/// [`Backend::conv2d`] composed of `im2col`, `patch_scale` and `gemm` (the default, and the
/// reference the fused kernels are tested against).
pub fn conv2d_unfused<B: Backend>(
    be: &B,
    g: &Window,
    n: usize,
    x: &B::Buf,
    w: &B::Buf,
    scale: Option<&B::Buf>,
    y: &mut B::Buf,
) {
    let (rows, pl) = (g.rows(), g.patch_len());
    let mut cols = be.alloc(rows * pl);
    be.im2col(g, x, &mut cols);
    if let Some(s) = scale {
        let mut scaled = be.alloc(rows * pl);
        be.patch_scale(rows, g.taps(), g.c, &cols, s, &mut scaled);
        cols = scaled;
    }
    be.gemm(&Gemm::new(rows, n, pl), &cols, w, y);
}

/// [`Backend::conv2d_rows_scaled`] as [`Backend::conv2d`] then [`Backend::mul_rows`] (the
/// default, and the reference for fused versions).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_rows_scaled_unfused<B: Backend>(
    be: &B,
    g: &Window,
    n: usize,
    x: &B::Buf,
    w: &B::Buf,
    q: &B::Buf,
    y: &mut B::Buf,
) {
    let mut raw = be.alloc(g.rows() * n);
    be.conv2d(g, n, x, w, None, &mut raw);
    be.mul_rows(&raw, q, g.rows(), n, y);
}

/// [`Backend::conv2d_rows_scaled_backward`] as [`Backend::mul_rows`] of `dy` then
/// [`Backend::conv2d_backward`] (the default, and the reference for fused versions).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_rows_scaled_backward_unfused<B: Backend>(
    be: &B,
    g: &Window,
    n: usize,
    x: &B::Buf,
    w: &B::Buf,
    q: &B::Buf,
    dy: &B::Buf,
    dx: &mut B::Buf,
    dw: &mut B::Buf,
) {
    let mut dy_q = be.alloc(g.rows() * n);
    be.mul_rows(dy, q, g.rows(), n, &mut dy_q);
    be.conv2d_backward(g, n, x, w, None, &dy_q, dx, dw, None);
}

/// [`Backend::conv2d_backward`] composed of `im2col`, `patch_scale(_backward)`, `gemm` and
/// `col2im` (the default, and the reference the fused kernels are tested against).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward_unfused<B: Backend>(
    be: &B,
    g: &Window,
    n: usize,
    x: &B::Buf,
    w: &B::Buf,
    scale: Option<&B::Buf>,
    dy: &B::Buf,
    dx: &mut B::Buf,
    dw: &mut B::Buf,
    dscale: Option<&mut B::Buf>,
) {
    let (rows, pl, taps) = (g.rows(), g.patch_len(), g.taps());
    let mut cols = be.alloc(rows * pl);
    be.im2col(g, x, &mut cols);
    let mut dcols = be.alloc(rows * pl);
    be.gemm(&Gemm::new(rows, pl, n).tb(), dy, w, &mut dcols);
    if let Some(s) = scale {
        let mut scaled = be.alloc(rows * pl);
        be.patch_scale(rows, taps, g.c, &cols, s, &mut scaled);
        be.gemm(&Gemm::new(pl, n, rows).ta().accumulate(), &scaled, dy, dw);
        let mut ds_local;
        let ds = match dscale {
            Some(ds) => ds,
            None => {
                ds_local = be.alloc(rows * taps);
                &mut ds_local
            }
        };
        be.patch_scale_backward(rows, taps, g.c, &cols, s, &dcols, &mut scaled, ds);
        dcols = scaled;
    } else {
        be.gemm(&Gemm::new(pl, n, rows).ta().accumulate(), &cols, dy, dw);
    }
    be.col2im(g, &dcols, dx);
}
