//! [`Backend`]: the ops every layer and similarity calls, each checked once here before it runs
//! the backend's [`Kernels`] entry.
//!
//! A failed check is a bug in the caller (layers check user-facing shapes before they get
//! here) and panics naming the op, the argument and both lengths.

use super::{
    AdamStep, BackendError, BatchNormDims, Checked, ConvScale, CrossEntropy, Gemm, Kernels, Map, Patch, SgdStep,
};
use crate::Window;

/// Panic unless `buf` holds at least `need` values.
fn at_least(op: &str, what: &str, len: usize, need: usize) {
    assert!(len >= need, "{op}: `{what}` holds {len} values, {need} needed");
}

/// Panic unless `a` and `b` hold the same number of values.
fn same(op: &str, (an, a): (&str, usize), (bn, b): (&str, usize)) {
    assert!(a == b, "{op}: `{an}` holds {a} values but `{bn}` holds {b}");
}

/// Minimum buffer length for `batch` operands of `len` values at stride `stride`.
pub(crate) fn strided(batch: usize, stride: usize, len: usize) -> usize {
    if len == 0 || batch == 0 {
        0
    } else {
        (batch - 1) * stride + len
    }
}

fn check_window(op: &str, g: &Window) {
    assert!(
        g.k >= 1 && g.stride >= 1 && g.pad_top < g.k.max(1) && g.pad_left < g.k.max(1),
        "{op}: window {g:?} needs k ≥ 1, stride ≥ 1 and padding below k"
    );
}

/// A compute backend: storage plus the primitive ops, each with its formula. Every layer and
/// every [`crate::Similarity`] is written against these ops only. Implemented for every
/// [`Kernels`] type: the methods below check their arguments, then run the kernel.
///
/// ```
/// use nsl_core::{Backend, Gemm};
/// use nsl_cpu::Cpu;
///
/// let be = Cpu::with_threads(1);
/// let (a, b) = (be.upload(&[1., 2., 3., 4.]), be.upload(&[1., 0., 0., 1.]));
/// let mut c = be.zeros(4);
/// be.gemm(&Gemm::new(2, 2, 2), &a, &b, &mut c); // C = A·I
/// assert_eq!(be.download(&c), vec![1., 2., 3., 4.]);
/// // a short output is the caller's bug, caught before any kernel runs:
/// let short = std::panic::AssertUnwindSafe(|| be.gemm(&Gemm::new(2, 2, 2), &a, &b, &mut be.zeros(3)));
/// assert!(std::panic::catch_unwind(short).is_err());
/// ```
#[allow(clippy::too_many_arguments)]
pub trait Backend: Clone + Send + Sync + std::fmt::Debug + 'static {
    /// A device buffer of `f32`.
    type Buf: Send + Sync;

    /// Human-readable name with the device, e.g. `cpu (2 threads, avx512f)`.
    fn name(&self) -> String;
    /// What decides this backend's results besides the ops' inputs, e.g. `cpu (avx2+fma+avx512f)`
    /// (not the thread count: the CPU backend's chunking does not depend on it): two backends
    /// with the same `numerics` compute the same bits. Checkpoints record it, and a resume on a
    /// different one warns that it will not equal an uninterrupted run.
    fn numerics(&self) -> String;
    /// Waits until every op issued so far has finished, for timing (a GPU stream is
    /// asynchronous); a synchronous backend's ops are done when they return.
    fn synchronize(&self);
    /// `Err` with the first device failure since the backend was made (then every later one
    /// too), else `Ok`. Ops do not fail one by one: a failed allocation or kernel is recorded,
    /// later kernels are skipped and their outputs are placeholders, so check this where results
    /// are read back (the training step does, after the loss) and before anything is saved.
    fn status(&self) -> Result<(), BackendError>;

    // ---- storage -------------------------------------------------------------------------
    /// A zero-filled buffer of `len` values.
    fn zeros(&self, len: usize) -> Self::Buf;
    /// A buffer of `len` values with unspecified contents (possibly a recycled buffer's), for
    /// outputs an op overwrites entirely.
    fn alloc(&self, len: usize) -> Self::Buf;
    /// Copy host data to a new device buffer.
    fn upload(&self, data: &[f32]) -> Self::Buf;
    /// Copy a device buffer to the host.
    fn download(&self, buf: &Self::Buf) -> Vec<f32>;
    /// Number of values in `buf`.
    fn len(&self, buf: &Self::Buf) -> usize;
    /// `dst = src` (same length).
    fn copy(&self, src: &Self::Buf, dst: &mut Self::Buf);

    // ---- dense algebra -------------------------------------------------------------------
    /// Strided-batch GEMM, see [`Gemm`]. Each operand holds at least `(batch−1)·stride + size`.
    fn gemm(&self, g: &Gemm, a: &Self::Buf, b: &Self::Buf, c: &mut Self::Buf);
    /// Every value of `x` set to `value`.
    fn fill(&self, x: &mut Self::Buf, value: f32);
    /// `y += alpha · x` (same length).
    fn axpy(&self, alpha: f32, x: &Self::Buf, y: &mut Self::Buf);
    /// `x *= alpha`
    fn scale(&self, alpha: f32, x: &mut Self::Buf);
    /// `out = a ⊙ b` (elementwise; same lengths).
    fn mul(&self, a: &Self::Buf, b: &Self::Buf, out: &mut Self::Buf);
    /// `out = f(x)`, see [`Map`] (same length).
    fn map(&self, f: Map, x: &Self::Buf, out: &mut Self::Buf);
    /// `Σ_i a_i·b_i` returned to the host (same length).
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
    /// col2im, the adjoint of im2col: `dx = Σ` of every `dcols` entry at the input value it was
    /// read from. Overwrites `dx`.
    fn col2im(&self, g: &Window, dcols: &Self::Buf, dx: &mut Self::Buf);
    /// Convolution `y = q ⊙_rows (patch_scale(im2col(x), s) · w)`, `w` `k²c × n`, `y` `rows × n`
    /// (overwritten), with `s` and `q` from [`ConvScale`]:
    /// `y[r,o] = q[r] · Σ_{t,ch} s[r,t] · x[src(r,t), ch] · w[t·c + ch, o]`.
    fn conv2d(
        &self,
        g: &Window,
        n: usize,
        x: &Self::Buf,
        w: &Self::Buf,
        scale: ConvScale<'_, Self::Buf>,
        y: &mut Self::Buf,
    );
    /// Backward of [`Backend::conv2d`]: with `P = im2col(x)`, `dy' = q ⊙_rows dy` and
    /// `dP = dy'·wᵀ`: `dw += (s ⊙ P)ᵀ·dy'` (**accumulates**), `dx = col2im(s ⊙ dP)`
    /// (overwrites) and, for [`ConvScale::Taps`] only, `ds[r,t] = Σ_ch P[r,t,ch]·dP[r,t,ch]`
    /// into `dscale` (overwrites).
    fn conv2d_backward(
        &self,
        g: &Window,
        n: usize,
        x: &Self::Buf,
        w: &Self::Buf,
        scale: ConvScale<'_, Self::Buf>,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dw: &mut Self::Buf,
        dscale: Option<&mut Self::Buf>,
    );
    /// DNS patch transform: `out[r,t,c] = m[r,t] · cols[r,t,c]` (`m` is `rows×taps`).
    fn patch_scale(&self, p: &Patch, cols: &Self::Buf, m: &Self::Buf, out: &mut Self::Buf);
    /// Backward of [`Backend::patch_scale`]: `dcols[r,t,c] = m[r,t]·dout[r,t,c]`,
    /// `dm[r,t] = Σ_c cols[r,t,c]·dout[r,t,c]`. Overwrites both.
    fn patch_scale_backward(
        &self,
        p: &Patch,
        cols: &Self::Buf,
        m: &Self::Buf,
        dout: &Self::Buf,
        dcols: &mut Self::Buf,
        dm: &mut Self::Buf,
    );
    /// UNS patch transform: `out[r,a,c] = Σ_q M[r,a,q] · cols[r,q,c]` (`M` is `rows×taps×taps`).
    fn patch_matmul(&self, p: &Patch, cols: &Self::Buf, m: &Self::Buf, out: &mut Self::Buf);
    /// Backward of [`Backend::patch_matmul`]: `dcols[r,q,c] = Σ_a M[r,a,q]·dout[r,a,c]`,
    /// `dM[r,a,q] = Σ_c dout[r,a,c]·cols[r,q,c]`. Overwrites both.
    fn patch_matmul_backward(
        &self,
        p: &Patch,
        cols: &Self::Buf,
        m: &Self::Buf,
        dout: &Self::Buf,
        dcols: &mut Self::Buf,
        dm: &mut Self::Buf,
    );
    /// Window L2 norm: `n[r] = sqrt(Σ_{t,ch} x[src(r,t), ch]² + eps)` over the zero-padded
    /// k×k×C window.
    fn window_norm(&self, g: &Window, x: &Self::Buf, eps: f32, n: &mut Self::Buf);
    /// Backward of [`Backend::window_norm`]: `dx[i] += Σ_{r reading i} dn[r] · x[i] / n[r]`.
    /// **Accumulates** into `dx`.
    fn window_norm_backward(&self, g: &Window, x: &Self::Buf, n: &Self::Buf, dn: &Self::Buf, dx: &mut Self::Buf);

    // ---- normalisation, activations, pooling --------------------------------------------
    /// Training batch norm: per channel `μ`, biased `σ²` over rows;
    /// `y = γ·(x−μ)/sqrt(σ²+eps) + β`, then `max(y, 0)` with `d.relu`. Writes `y`, `mean`, `var`.
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
    /// Inference batch norm with given statistics: `y = γ·(x−μ)/sqrt(σ²+eps) + β` (then
    /// `max(y, 0)` with `d.relu`).
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
    /// Backward of [`Backend::batch_norm_train`] (statistics depend on `x`): with
    /// `x̂ = (x−μ)/σ` and `g = dy` (`dy·1[y > 0]` with `d.relu`, where `y`, the forward's
    /// output, must be given), `dβ += Σ g`, `dγ += Σ g·x̂`, `dx = γ/σ · (g − mean(g) − x̂·mean(g·x̂))`.
    /// Overwrites `dx`, **accumulates** `dγ`, `dβ`. A backend may recompute the ReLU mask from
    /// `x`, `γ`, `β`, `μ`, `σ²` exactly as its forward computed `y`.
    fn batch_norm_backward(
        &self,
        d: &BatchNormDims,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        mean: &Self::Buf,
        var: &Self::Buf,
        y: Option<&Self::Buf>,
        dy: &Self::Buf,
        dx: &mut Self::Buf,
        dgamma: &mut Self::Buf,
        dbeta: &mut Self::Buf,
    );
    /// `y = max(x, 0)` (same length).
    fn relu(&self, x: &Self::Buf, y: &mut Self::Buf);
    /// `dx = dy · 1[y > 0]` (same lengths).
    fn relu_backward(&self, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    /// Max-pool over each k×k window of `g` per channel (padding never wins): `y` is
    /// `batch×ho×wo×c`.
    fn max_pool(&self, g: &Window, x: &Self::Buf, y: &mut Self::Buf);
    /// Backward of [`Backend::max_pool`]: each `dy` goes to the first (row-major) input in its
    /// window equal to the max. Overwrites `dx`.
    fn max_pool_backward(&self, g: &Window, x: &Self::Buf, y: &Self::Buf, dy: &Self::Buf, dx: &mut Self::Buf);
    /// Row softmax of a `rows×cols` matrix: `y[r,c] = exp(x[r,c] − max_r) / Σ exp(x[r,·] − max_r)`.
    fn softmax_rows(&self, x: &Self::Buf, rows: usize, cols: usize, y: &mut Self::Buf);
    /// Backward of [`Backend::softmax_rows`]: `dx[r,c] = y[r,c]·(dy[r,c] − Σ_j dy[r,j]·y[r,j])`.
    fn softmax_rows_backward(&self, y: &Self::Buf, dy: &Self::Buf, rows: usize, cols: usize, dx: &mut Self::Buf);
    /// Smoothed cross-entropy, see [`CrossEntropy`], of class indices `labels` (host, each
    /// `< d.classes`). Returns the mean loss and writes `dlogits = ∂L/∂logits`.
    fn cross_entropy(&self, d: &CrossEntropy, logits: &Self::Buf, labels: &[u32], dlogits: &mut Self::Buf) -> f32;

    // ---- optimisers ----------------------------------------------------------------------
    /// One SGD-momentum update in place, see [`SgdStep`] (same lengths).
    fn sgd_step(&self, s: &SgdStep, w: &mut Self::Buf, g: &Self::Buf, v: &mut Self::Buf);
    /// One Adam update in place, see [`AdamStep`] (`t ≥ 1`, `β1, β2 ∈ [0, 1)`; same lengths).
    fn adam_step(&self, s: &AdamStep, w: &mut Self::Buf, g: &Self::Buf, m: &mut Self::Buf, v: &mut Self::Buf);
}

const OK: Checked = Checked(());

// Check-then-forward boilerplate: each method below runs its op's checks (the `check_*`
// helpers at the end of this file hold that logic) and calls the `Kernels` method of the same
// name with the `Checked` proof. The signatures are `Backend`'s, so they repeat the trait's.
impl<K: Kernels> Backend for K {
    type Buf = K::Buf;

    fn name(&self) -> String {
        Kernels::name(self)
    }
    fn numerics(&self) -> String {
        Kernels::numerics(self)
    }
    fn synchronize(&self) {
        Kernels::synchronize(self)
    }
    fn status(&self) -> Result<(), BackendError> {
        Kernels::status(self)
    }
    fn zeros(&self, len: usize) -> K::Buf {
        Kernels::zeros(self, len)
    }
    fn alloc(&self, len: usize) -> K::Buf {
        Kernels::alloc(self, len)
    }
    fn upload(&self, data: &[f32]) -> K::Buf {
        Kernels::upload(self, data)
    }
    fn download(&self, buf: &K::Buf) -> Vec<f32> {
        Kernels::download(self, buf)
    }
    fn len(&self, buf: &K::Buf) -> usize {
        Kernels::len(self, buf)
    }
    fn copy(&self, src: &K::Buf, dst: &mut K::Buf) {
        same("copy", ("src", Kernels::len(self, src)), ("dst", Kernels::len(self, dst)));
        Kernels::copy(self, OK, src, dst)
    }

    fn gemm(&self, g: &Gemm, a: &K::Buf, b: &K::Buf, c: &mut K::Buf) {
        let op = "gemm";
        at_least(op, "C", Kernels::len(self, c), strided(g.batch, g.stride_c, g.m * g.n));
        if g.m * g.n > 0 {
            at_least(op, "A", Kernels::len(self, a), strided(g.batch, g.stride_a, g.m * g.k));
            at_least(op, "B", Kernels::len(self, b), strided(g.batch, g.stride_b, g.k * g.n));
        }
        Kernels::gemm(self, OK, g, a, b, c)
    }
    fn fill(&self, x: &mut K::Buf, value: f32) {
        Kernels::fill(self, OK, x, value)
    }
    fn axpy(&self, alpha: f32, x: &K::Buf, y: &mut K::Buf) {
        same("axpy", ("x", Kernels::len(self, x)), ("y", Kernels::len(self, y)));
        Kernels::axpy(self, OK, alpha, x, y)
    }
    fn scale(&self, alpha: f32, x: &mut K::Buf) {
        Kernels::scale(self, OK, alpha, x)
    }
    fn mul(&self, a: &K::Buf, b: &K::Buf, out: &mut K::Buf) {
        same("mul", ("a", Kernels::len(self, a)), ("out", Kernels::len(self, out)));
        same("mul", ("b", Kernels::len(self, b)), ("out", Kernels::len(self, out)));
        Kernels::mul(self, OK, a, b, out)
    }
    fn map(&self, f: Map, x: &K::Buf, out: &mut K::Buf) {
        same("map", ("x", Kernels::len(self, x)), ("out", Kernels::len(self, out)));
        Kernels::map(self, OK, f, x, out)
    }
    fn dot(&self, a: &K::Buf, b: &K::Buf) -> f32 {
        same("dot", ("a", Kernels::len(self, a)), ("b", Kernels::len(self, b)));
        Kernels::dot(self, OK, a, b)
    }
    fn mul_rows(&self, x: &K::Buf, s: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        matrix_op(self, "mul_rows", [("x", x), ("out", &*out)], rows * cols, ("s", s, rows));
        Kernels::mul_rows(self, OK, x, s, rows, cols, out)
    }
    fn mul_cols(&self, x: &K::Buf, s: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        matrix_op(self, "mul_cols", [("x", x), ("out", &*out)], rows * cols, ("s", s, cols));
        Kernels::mul_cols(self, OK, x, s, rows, cols, out)
    }
    fn dot_rows(&self, a: &K::Buf, b: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        matrix_op(self, "dot_rows", [("a", a), ("b", b)], rows * cols, ("out", &*out, rows));
        Kernels::dot_rows(self, OK, a, b, rows, cols, out)
    }
    fn dot_cols(&self, a: &K::Buf, b: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        matrix_op(self, "dot_cols", [("a", a), ("b", b)], rows * cols, ("out", &*out, cols));
        Kernels::dot_cols(self, OK, a, b, rows, cols, out)
    }

    fn im2col(&self, g: &Window, x: &K::Buf, cols: &mut K::Buf) {
        check_window("im2col", g);
        at_least("im2col", "x", Kernels::len(self, x), g.input_len());
        at_least("im2col", "cols", Kernels::len(self, cols), g.rows() * g.patch_len());
        Kernels::im2col(self, OK, g, x, cols)
    }
    fn col2im(&self, g: &Window, dcols: &K::Buf, dx: &mut K::Buf) {
        check_window("col2im", g);
        at_least("col2im", "dcols", Kernels::len(self, dcols), g.rows() * g.patch_len());
        at_least("col2im", "dx", Kernels::len(self, dx), g.input_len());
        Kernels::col2im(self, OK, g, dcols, dx)
    }
    fn conv2d(&self, g: &Window, n: usize, x: &K::Buf, w: &K::Buf, scale: ConvScale<'_, K::Buf>, y: &mut K::Buf) {
        check_conv(self, "conv2d", g, n, x, w, scale);
        at_least("conv2d", "y", Kernels::len(self, y), g.rows() * n);
        Kernels::conv2d(self, OK, g, n, x, w, scale, y)
    }
    fn conv2d_backward(
        &self,
        g: &Window,
        n: usize,
        x: &K::Buf,
        w: &K::Buf,
        scale: ConvScale<'_, K::Buf>,
        dy: &K::Buf,
        dx: &mut K::Buf,
        dw: &mut K::Buf,
        dscale: Option<&mut K::Buf>,
    ) {
        let op = "conv2d_backward";
        check_conv(self, op, g, n, x, w, scale);
        at_least(op, "dy", Kernels::len(self, dy), g.rows() * n);
        at_least(op, "dx", Kernels::len(self, dx), g.input_len());
        at_least(op, "dw", Kernels::len(self, dw), g.patch_len() * n);
        if let Some(ds) = &dscale {
            assert!(matches!(scale, ConvScale::Taps(_)), "{op}: `dscale` is only computed for a per-tap scale");
            at_least(op, "dscale", Kernels::len(self, ds), g.rows() * g.taps());
        }
        Kernels::conv2d_backward(self, OK, g, n, x, w, scale, dy, dx, dw, dscale)
    }
    fn patch_scale(&self, p: &Patch, cols: &K::Buf, m: &K::Buf, out: &mut K::Buf) {
        check_patch(self, "patch_scale", p, [("cols", cols), ("out", &*out)], ("m", m, p.rows * p.taps));
        Kernels::patch_scale(self, OK, p, cols, m, out)
    }
    fn patch_scale_backward(
        &self,
        p: &Patch,
        cols: &K::Buf,
        m: &K::Buf,
        dout: &K::Buf,
        dcols: &mut K::Buf,
        dm: &mut K::Buf,
    ) {
        let op = "patch_scale_backward";
        check_patch(self, op, p, [("cols", cols), ("dout", dout)], ("m", m, p.rows * p.taps));
        check_patch(self, op, p, [("dcols", &*dcols), ("cols", cols)], ("dm", &*dm, p.rows * p.taps));
        Kernels::patch_scale_backward(self, OK, p, cols, m, dout, dcols, dm)
    }
    fn patch_matmul(&self, p: &Patch, cols: &K::Buf, m: &K::Buf, out: &mut K::Buf) {
        let mlen = p.rows * p.taps * p.taps;
        check_patch(self, "patch_matmul", p, [("cols", cols), ("out", &*out)], ("m", m, mlen));
        Kernels::patch_matmul(self, OK, p, cols, m, out)
    }
    fn patch_matmul_backward(
        &self,
        p: &Patch,
        cols: &K::Buf,
        m: &K::Buf,
        dout: &K::Buf,
        dcols: &mut K::Buf,
        dm: &mut K::Buf,
    ) {
        let (op, mlen) = ("patch_matmul_backward", p.rows * p.taps * p.taps);
        check_patch(self, op, p, [("cols", cols), ("dout", dout)], ("m", m, mlen));
        check_patch(self, op, p, [("dcols", &*dcols), ("cols", cols)], ("dm", &*dm, mlen));
        Kernels::patch_matmul_backward(self, OK, p, cols, m, dout, dcols, dm)
    }
    fn window_norm(&self, g: &Window, x: &K::Buf, eps: f32, n: &mut K::Buf) {
        check_window("window_norm", g);
        at_least("window_norm", "x", Kernels::len(self, x), g.input_len());
        at_least("window_norm", "n", Kernels::len(self, n), g.rows());
        Kernels::window_norm(self, OK, g, x, eps, n)
    }
    fn window_norm_backward(&self, g: &Window, x: &K::Buf, n: &K::Buf, dn: &K::Buf, dx: &mut K::Buf) {
        let op = "window_norm_backward";
        check_window(op, g);
        at_least(op, "x", Kernels::len(self, x), g.input_len());
        at_least(op, "n", Kernels::len(self, n), g.rows());
        at_least(op, "dn", Kernels::len(self, dn), g.rows());
        at_least(op, "dx", Kernels::len(self, dx), g.input_len());
        Kernels::window_norm_backward(self, OK, g, x, n, dn, dx)
    }

    fn batch_norm_train(
        &self,
        d: &BatchNormDims,
        x: &K::Buf,
        gamma: &K::Buf,
        beta: &K::Buf,
        y: &mut K::Buf,
        mean: &mut K::Buf,
        var: &mut K::Buf,
    ) {
        let op = "batch_norm_train";
        check_bn(
            self,
            op,
            d,
            [("x", x), ("y", &*y)],
            [("gamma", gamma), ("beta", beta), ("mean", &*mean), ("var", &*var)],
        );
        Kernels::batch_norm_train(self, OK, d, x, gamma, beta, y, mean, var)
    }
    fn batch_norm_eval(
        &self,
        d: &BatchNormDims,
        x: &K::Buf,
        gamma: &K::Buf,
        beta: &K::Buf,
        mean: &K::Buf,
        var: &K::Buf,
        y: &mut K::Buf,
    ) {
        let op = "batch_norm_eval";
        check_bn(self, op, d, [("x", x), ("y", &*y)], [("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)]);
        Kernels::batch_norm_eval(self, OK, d, x, gamma, beta, mean, var, y)
    }
    fn batch_norm_backward(
        &self,
        d: &BatchNormDims,
        x: &K::Buf,
        gamma: &K::Buf,
        beta: &K::Buf,
        mean: &K::Buf,
        var: &K::Buf,
        y: Option<&K::Buf>,
        dy: &K::Buf,
        dx: &mut K::Buf,
        dgamma: &mut K::Buf,
        dbeta: &mut K::Buf,
    ) {
        let op = "batch_norm_backward";
        let channels = [("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)];
        check_bn(self, op, d, [("x", x), ("dy", dy)], channels);
        check_bn(self, op, d, [("dx", &*dx), ("dy", dy)], [("dgamma", &*dgamma), ("dbeta", &*dbeta)]);
        assert!(y.is_some() == d.relu, "{op}: the forward's output `y` is needed exactly when `relu` is set");
        if let Some(y) = y {
            at_least(op, "y", Kernels::len(self, y), d.rows * d.c);
        }
        Kernels::batch_norm_backward(self, OK, d, x, gamma, beta, mean, var, y, dy, dx, dgamma, dbeta)
    }
    fn relu(&self, x: &K::Buf, y: &mut K::Buf) {
        same("relu", ("x", Kernels::len(self, x)), ("y", Kernels::len(self, y)));
        Kernels::relu(self, OK, x, y)
    }
    fn relu_backward(&self, y: &K::Buf, dy: &K::Buf, dx: &mut K::Buf) {
        same("relu_backward", ("y", Kernels::len(self, y)), ("dx", Kernels::len(self, dx)));
        same("relu_backward", ("dy", Kernels::len(self, dy)), ("dx", Kernels::len(self, dx)));
        Kernels::relu_backward(self, OK, y, dy, dx)
    }
    fn max_pool(&self, g: &Window, x: &K::Buf, y: &mut K::Buf) {
        check_window("max_pool", g);
        at_least("max_pool", "x", Kernels::len(self, x), g.input_len());
        at_least("max_pool", "y", Kernels::len(self, y), g.rows() * g.c);
        Kernels::max_pool(self, OK, g, x, y)
    }
    fn max_pool_backward(&self, g: &Window, x: &K::Buf, y: &K::Buf, dy: &K::Buf, dx: &mut K::Buf) {
        let op = "max_pool_backward";
        check_window(op, g);
        at_least(op, "x", Kernels::len(self, x), g.input_len());
        at_least(op, "y", Kernels::len(self, y), g.rows() * g.c);
        at_least(op, "dy", Kernels::len(self, dy), g.rows() * g.c);
        at_least(op, "dx", Kernels::len(self, dx), g.input_len());
        Kernels::max_pool_backward(self, OK, g, x, y, dy, dx)
    }
    fn softmax_rows(&self, x: &K::Buf, rows: usize, cols: usize, y: &mut K::Buf) {
        at_least("softmax_rows", "x", Kernels::len(self, x), rows * cols);
        at_least("softmax_rows", "y", Kernels::len(self, y), rows * cols);
        Kernels::softmax_rows(self, OK, x, rows, cols, y)
    }
    fn softmax_rows_backward(&self, y: &K::Buf, dy: &K::Buf, rows: usize, cols: usize, dx: &mut K::Buf) {
        let op = "softmax_rows_backward";
        for (what, b) in [("y", y), ("dy", dy), ("dx", &*dx)] {
            at_least(op, what, Kernels::len(self, b), rows * cols);
        }
        Kernels::softmax_rows_backward(self, OK, y, dy, rows, cols, dx)
    }
    fn cross_entropy(&self, d: &CrossEntropy, logits: &K::Buf, labels: &[u32], dlogits: &mut K::Buf) -> f32 {
        let op = "cross_entropy";
        assert!(d.classes > 0, "{op}: needs at least one class");
        same(op, ("labels", labels.len()), ("batch", d.batch));
        if let Some((b, l)) = labels.iter().enumerate().find(|&(_, &l)| l as usize >= d.classes) {
            panic!("{op}: label {l} of example {b} is out of range for K = {} classes", d.classes);
        }
        at_least(op, "logits", Kernels::len(self, logits), d.batch * d.classes);
        at_least(op, "dlogits", Kernels::len(self, dlogits), d.batch * d.classes);
        Kernels::cross_entropy(self, OK, d, logits, labels, dlogits)
    }

    fn sgd_step(&self, s: &SgdStep, w: &mut K::Buf, g: &K::Buf, v: &mut K::Buf) {
        same("sgd_step", ("g", Kernels::len(self, g)), ("w", Kernels::len(self, w)));
        same("sgd_step", ("v", Kernels::len(self, v)), ("w", Kernels::len(self, w)));
        Kernels::sgd_step(self, OK, s, w, g, v)
    }
    fn adam_step(&self, s: &AdamStep, w: &mut K::Buf, g: &K::Buf, m: &mut K::Buf, v: &mut K::Buf) {
        let op = "adam_step";
        assert!(s.t >= 1, "{op}: step t must be >= 1, got {}", s.t);
        assert!(
            (0.0..1.0).contains(&s.beta1) && (0.0..1.0).contains(&s.beta2),
            "{op}: β1 = {} and β2 = {} must lie in [0, 1)",
            s.beta1,
            s.beta2
        );
        for (what, b) in [("g", g), ("m", &*m), ("v", &*v)] {
            same(op, (what, Kernels::len(self, b)), ("w", Kernels::len(self, w)));
        }
        Kernels::adam_step(self, OK, s, w, g, m, v)
    }
}

/// `full` buffers hold at least `len` values, `small` at least its count.
fn matrix_op<K: Kernels>(be: &K, op: &str, full: [(&str, &K::Buf); 2], len: usize, small: (&str, &K::Buf, usize)) {
    for (what, b) in full {
        at_least(op, what, Kernels::len(be, b), len);
    }
    at_least(op, small.0, Kernels::len(be, small.1), small.2);
}

fn check_conv<K: Kernels>(
    be: &K,
    op: &str,
    g: &Window,
    n: usize,
    x: &K::Buf,
    w: &K::Buf,
    scale: ConvScale<'_, K::Buf>,
) {
    check_window(op, g);
    at_least(op, "x", Kernels::len(be, x), g.input_len());
    at_least(op, "w", Kernels::len(be, w), g.patch_len() * n);
    match scale {
        ConvScale::None => {}
        ConvScale::Taps(s) => at_least(op, "scale (per tap)", Kernels::len(be, s), g.rows() * g.taps()),
        ConvScale::Rows(q) => at_least(op, "scale (per row)", Kernels::len(be, q), g.rows()),
    }
}

fn check_patch<K: Kernels>(be: &K, op: &str, p: &Patch, full: [(&str, &K::Buf); 2], m: (&str, &K::Buf, usize)) {
    matrix_op(be, op, full, p.len(), m)
}

fn check_bn<K: Kernels, const N: usize>(
    be: &K,
    op: &str,
    d: &BatchNormDims,
    full: [(&str, &K::Buf); 2],
    channels: [(&str, &K::Buf); N],
) {
    for (what, b) in full {
        at_least(op, what, Kernels::len(be, b), d.rows * d.c);
    }
    for (what, b) in channels {
        at_least(op, what, Kernels::len(be, b), d.c);
    }
}
