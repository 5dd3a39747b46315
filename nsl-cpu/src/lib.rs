//! # nsl-cpu
//!
//! The CPU implementation of [`nsl_core::Backend`]: buffers are pooled `f32` vectors
//! ([`CpuBuf`]); matrix products go through our own register-blocked kernels for the skinny
//! convolution shapes (`gemm/kernels.rs`) and [`matrixmultiply`]'s packed kernels otherwise,
//! AVX-512 / AVX2+FMA / SSE2 chosen at run time (no `target-cpu=native` needed); convolutions
//! (`conv2d.rs`) feed windows straight into those kernels, read in place from a zero-padded
//! input or gathered per tile of rows, and unscaled stride-1 3×3 ones run as Winograd
//! F(4×4, 3×3) convolutions (`winograd.rs`, see [`Cpu::with_winograd`]) whose tile transforms
//! use the same explicit vectors as the GEMM kernels; everything else is plain loops over
//! contiguous slices that LLVM auto-vectorises (batch norm's `f64` sums compiled for the widest
//! vectors at run time), parallelised with [`rayon`].
//!
//! **Subnormals.** [`Cpu::with_flush_denormals`] (or `NSL_CPU_FLUSH_DENORMALS=1`) makes the
//! backend's threads flush subnormal floats to zero (`float_mode.rs`), which avoids the
//! several-fold slowdown of x86 cores on them at the cost of exact IEEE results; off by default.
//!
//! **Determinism.** Every reduction uses a fixed chunking that depends only on the problem
//! size (never on the thread count or on work stealing) and combines partial results in a
//! fixed order, and scatters (`col2im`, max-pool backward) are rewritten as gathers or run
//! sequentially per image. Results are therefore bitwise reproducible run to run and, on a
//! given machine, independent of the number of threads.

mod activation;
mod buffer;
mod conv;
mod conv2d;
mod elementwise;
pub mod float_mode;
mod gemm;
mod loss;
mod norm;
mod optim;
mod par;
mod patch;
mod winograd;

use std::sync::Arc;

use nsl_core::backend::{conv2d_backward_unfused, conv2d_unfused, Checked};
use nsl_core::{AdamStep, BatchNormDims, ConvScale, CrossEntropy, Gemm, Kernels, Map, Patch, SgdStep, Window};
use rayon::ThreadPool;

pub use buffer::CpuBuf;

/// The CPU backend.
///
/// [`Cpu::new`] runs parallel work on rayon's global pool; [`Cpu::with_threads`] owns a
/// dedicated pool, so the thread count is fixed and independent of other users of rayon.
/// Cloning is cheap (the pool is shared).
///
/// ```
/// use nsl_core::{Backend, Gemm};
/// use nsl_cpu::Cpu;
///
/// let be = Cpu::with_threads(2);
/// assert!(be.name().starts_with("cpu (2 threads"));
/// // C = A·B for A = [[1, 2], [3, 4]] and B = I.
/// let a = be.upload(&[1., 2., 3., 4.]);
/// let b = be.upload(&[1., 0., 0., 1.]);
/// let mut c = be.zeros(4);
/// be.gemm(&Gemm::new(2, 2, 2), &a, &b, &mut c);
/// assert_eq!(be.download(&c), vec![1., 2., 3., 4.]);
/// ```
#[derive(Clone, Debug)]
pub struct Cpu {
    pool: Option<Arc<ThreadPool>>,
    winograd: bool,
    flush_denormals: bool,
}

impl Default for Cpu {
    fn default() -> Self {
        Cpu::new()
    }
}

/// Whether the Winograd path is on by default: unless `NSL_CPU_WINOGRAD=0`.
fn winograd_default() -> bool {
    std::env::var("NSL_CPU_WINOGRAD").map_or(true, |v| v.trim() != "0")
}

/// Whether subnormals are flushed by default: only if `NSL_CPU_FLUSH_DENORMALS=1`.
fn flush_denormals_default() -> bool {
    std::env::var("NSL_CPU_FLUSH_DENORMALS").is_ok_and(|v| v.trim() == "1")
}

impl Cpu {
    /// A backend using rayon's global thread pool.
    pub fn new() -> Self {
        Cpu { pool: None, winograd: winograd_default(), flush_denormals: false }.with_env_float_mode()
    }

    /// A backend owning a pool of `threads` worker threads (at least 1); all parallel work of
    /// this backend (and of its clones) runs inside it.
    pub fn with_threads(threads: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("nsl-cpu-{i}"))
            .build()
            .expect("failed to build the rayon thread pool");
        Cpu { pool: Some(Arc::new(pool)), winograd: winograd_default(), flush_denormals: false }.with_env_float_mode()
    }

    /// Flush subnormals if the environment asks for it (`NSL_CPU_FLUSH_DENORMALS=1`); leave the
    /// threads' mode alone otherwise.
    fn with_env_float_mode(self) -> Self {
        if flush_denormals_default() {
            self.with_flush_denormals(true)
        } else {
            self
        }
    }

    /// The same backend with subnormal floats (|x| < 2⁻¹²⁶) flushed to zero (`on`) or computed
    /// exactly (`!on`, the IEEE default and the default here unless the environment sets
    /// `NSL_CPU_FLUSH_DENORMALS=1`), like `torch.set_flush_denormal`.
    ///
    /// x86 cores take a microcode assist for every instruction that meets a subnormal, so a
    /// network whose activations or gradients drift into that range trains several times
    /// slower (measured in the README: a collapsed dynamic NSN 1.8× faster flushed).
    /// Flushing changes results below 2⁻¹²⁶ and so the bits of a run; it stays reproducible.
    ///
    /// The mode is a property of threads, not of this value: it is set on every worker of the
    /// pool this backend runs on (rayon's global pool for [`Cpu::new`], shared with the rest of
    /// the process) and on the calling thread, which runs the small ops; run the model on that
    /// thread. Where the target cannot flush ([`float_mode::SUPPORTED`]), nothing changes.
    ///
    /// ```
    /// use nsl_core::Backend;
    /// use nsl_cpu::Cpu;
    ///
    /// let be = Cpu::with_threads(2).with_flush_denormals(true);
    /// assert!(be.flushes_denormals() && be.name().contains("subnormals flushed"));
    /// let mut x = be.upload(&[1e-19; 4]);
    /// be.scale(1e-19, &mut x); // 1e-38 is subnormal in f32
    /// assert_eq!(be.download(&x), vec![0.0; 4]);
    /// ```
    pub fn with_flush_denormals(mut self, on: bool) -> Self {
        if !float_mode::SUPPORTED {
            return self;
        }
        float_mode::set_flush_denormals(on);
        match &self.pool {
            Some(p) => p.broadcast(|_| float_mode::set_flush_denormals(on)),
            None => rayon::broadcast(|_| float_mode::set_flush_denormals(on)),
        };
        self.flush_denormals = on;
        self
    }

    /// Whether this backend's threads flush subnormals to zero (see
    /// [`Cpu::with_flush_denormals`]).
    pub fn flushes_denormals(&self) -> bool {
        self.flush_denormals
    }

    /// The same backend with the Winograd F(4×4, 3×3) convolution on or off (default: on,
    /// unless the environment sets `NSL_CPU_WINOGRAD=0`). With it, unscaled stride-1 3×3
    /// convolutions with at least 8 input and output channels (see [`Cpu::uses_winograd`]) do
    /// 36 multiplies per 4×4 output tile and channel pair instead of 144; results differ from
    /// the direct convolution by f32 rounding (a few 1e-6 of the output scale), still bitwise
    /// reproducible.
    ///
    /// ```
    /// use nsl_core::Window;
    /// use nsl_cpu::Cpu;
    ///
    /// let g = Window::same(1, 8, 8, 16, 3, 1);
    /// assert!(Cpu::with_threads(1).uses_winograd(&g, 16, false));
    /// assert!(!Cpu::with_threads(1).with_winograd(false).uses_winograd(&g, 16, false));
    /// ```
    pub fn with_winograd(mut self, on: bool) -> Self {
        self.winograd = on;
        self
    }

    /// Whether `conv2d` / `conv2d_backward` of window `g` with `n` outputs (and a patch scale
    /// or not) run as a Winograd convolution on this backend.
    pub fn uses_winograd(&self, g: &Window, n: usize, scaled: bool) -> bool {
        self.winograd
            && matches!(gemm::kernels::mode(), gemm::kernels::Mode::Tiles(_))
            && winograd::applies(g, n, scaled)
    }

    /// Whether the `conv2d` forward of window `g` with a patch scale sums each tap's product
    /// on its own before scaling it (`Σ_t s_t·(Σ_c x·w)`, windows read in place: maps at least
    /// 32 columns wide) rather than as one chain over the scaled patch (`Σ_{t,c} (s_t·x)·w`,
    /// like the unfused `im2col` → `patch_scale` → `gemm`): the two differ by rounding.
    pub fn sums_scaled_taps_separately(&self, g: &Window) -> bool {
        matches!(gemm::kernels::mode(), gemm::kernels::Mode::Tiles(_)) && conv2d::forward_in_place(g, true)
    }

    /// Number of threads parallel work runs on.
    pub fn threads(&self) -> usize {
        match &self.pool {
            Some(p) => p.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    /// Run `f` inside this backend's pool (directly when it uses the global pool).
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// What decides the results: the SIMD extensions, the GEMM tiles when `NSL_CPU_GEMM` lowered
    /// them, flushing of subnormals, e.g. `avx2+fma+avx512f, gemm avx2, subnormals flushed`.
    fn numerics_detail(&self) -> String {
        let gemm = gemm::kernels::lowered().map(|k| format!(", gemm {k}")).unwrap_or_default();
        let flush = if self.flush_denormals { ", subnormals flushed" } else { "" };
        format!("{}{gemm}{flush}", simd_features())
    }
}

/// SIMD extensions detected at run time, e.g. `avx2+fma+avx512f`.
fn simd_features() -> String {
    #[allow(unused_mut)]
    let mut found: Vec<&str> = Vec::new();
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        if is_x86_feature_detected!("avx2") {
            found.push("avx2");
        }
        if is_x86_feature_detected!("fma") {
            found.push("fma");
        }
        if is_x86_feature_detected!("avx512f") {
            found.push("avx512f");
        }
    }
    #[cfg(target_arch = "aarch64")]
    found.push("neon");
    if found.is_empty() {
        "scalar".to_string()
    } else {
        found.join("+")
    }
}

// Dispatch boilerplate: one forwarding line per `Kernels` op; the signatures are the trait's,
// so every backend (and every op with the same buffers) repeats this shape.
impl Kernels for Cpu {
    type Buf = CpuBuf;

    fn name(&self) -> String {
        let t = self.threads();
        format!("cpu ({t} thread{}, {})", if t == 1 { "" } else { "s" }, self.numerics_detail())
    }
    fn numerics(&self) -> String {
        format!("cpu ({})", self.numerics_detail())
    }

    fn zeros(&self, len: usize) -> CpuBuf {
        CpuBuf::zeros(len)
    }
    fn alloc(&self, len: usize) -> CpuBuf {
        CpuBuf::recycled(len)
    }
    fn upload(&self, data: &[f32]) -> CpuBuf {
        CpuBuf::from_slice(data)
    }
    fn download(&self, buf: &CpuBuf) -> Vec<f32> {
        buf.to_vec()
    }
    fn len(&self, buf: &CpuBuf) -> usize {
        buf.len()
    }
    fn copy(&self, _: Checked, src: &CpuBuf, dst: &mut CpuBuf) {
        dst.copy_from_slice(src);
    }

    fn gemm(&self, checked: Checked, g: &Gemm, a: &CpuBuf, b: &CpuBuf, c: &mut CpuBuf) {
        gemm::gemm(checked, self, g, a, b, c)
    }
    fn fill(&self, _: Checked, x: &mut CpuBuf, value: f32) {
        elementwise::fill(self, x, value)
    }
    fn axpy(&self, _: Checked, alpha: f32, x: &CpuBuf, y: &mut CpuBuf) {
        elementwise::axpy(self, alpha, x, y)
    }
    fn scale(&self, _: Checked, alpha: f32, x: &mut CpuBuf) {
        elementwise::scale(self, alpha, x)
    }
    fn mul(&self, _: Checked, a: &CpuBuf, b: &CpuBuf, out: &mut CpuBuf) {
        elementwise::mul(self, a, b, out)
    }
    fn map(&self, _: Checked, f: Map, x: &CpuBuf, out: &mut CpuBuf) {
        elementwise::map(self, f, x, out)
    }
    fn dot(&self, _: Checked, a: &CpuBuf, b: &CpuBuf) -> f32 {
        elementwise::dot(self, a, b)
    }
    fn mul_rows(&self, _: Checked, x: &CpuBuf, s: &CpuBuf, rows: usize, cols: usize, out: &mut CpuBuf) {
        elementwise::mul_rows(self, x, s, rows, cols, out)
    }
    fn mul_cols(&self, _: Checked, x: &CpuBuf, s: &CpuBuf, rows: usize, cols: usize, out: &mut CpuBuf) {
        elementwise::mul_cols(self, x, s, rows, cols, out)
    }
    fn dot_rows(&self, _: Checked, a: &CpuBuf, b: &CpuBuf, rows: usize, cols: usize, out: &mut CpuBuf) {
        elementwise::dot_rows(self, a, b, rows, cols, out)
    }
    fn dot_cols(&self, _: Checked, a: &CpuBuf, b: &CpuBuf, rows: usize, cols: usize, out: &mut CpuBuf) {
        elementwise::dot_cols(self, a, b, rows, cols, out)
    }

    fn im2col(&self, _: Checked, g: &Window, x: &CpuBuf, cols: &mut CpuBuf) {
        conv::im2col(self, g, x, cols)
    }
    fn col2im(&self, _: Checked, g: &Window, dcols: &CpuBuf, dx: &mut CpuBuf) {
        conv::col2im(self, g, dcols, dx)
    }
    fn conv2d(
        &self,
        _: Checked,
        g: &Window,
        n: usize,
        x: &CpuBuf,
        w: &CpuBuf,
        scale: ConvScale<'_, CpuBuf>,
        y: &mut CpuBuf,
    ) {
        match gemm::kernels::mode() {
            gemm::kernels::Mode::Tiles(ks) => conv2d::conv2d(self, ks, g, n, x, w, taps(scale), rows(scale), y),
            gemm::kernels::Mode::Off => conv2d_unfused(self, g, n, x, w, scale, y),
        }
    }
    fn conv2d_backward(
        &self,
        _: Checked,
        g: &Window,
        n: usize,
        x: &CpuBuf,
        w: &CpuBuf,
        scale: ConvScale<'_, CpuBuf>,
        dy: &CpuBuf,
        dx: &mut CpuBuf,
        dw: &mut CpuBuf,
        dscale: Option<&mut CpuBuf>,
    ) {
        match gemm::kernels::mode() {
            gemm::kernels::Mode::Tiles(ks) => {
                let ds = dscale.map(|d| &mut d[..]);
                conv2d::conv2d_backward(self, ks, g, n, x, w, taps(scale), dy, rows(scale), dx, dw, ds)
            }
            gemm::kernels::Mode::Off => conv2d_backward_unfused(self, g, n, x, w, scale, dy, dx, dw, dscale),
        }
    }
    fn patch_scale(&self, _: Checked, p: &Patch, cols: &CpuBuf, m: &CpuBuf, out: &mut CpuBuf) {
        patch::patch_scale(self, p.rows, p.taps, p.c, cols, m, out)
    }
    fn patch_scale_backward(
        &self,
        _: Checked,
        p: &Patch,
        cols: &CpuBuf,
        m: &CpuBuf,
        dout: &CpuBuf,
        dcols: &mut CpuBuf,
        dm: &mut CpuBuf,
    ) {
        patch::patch_scale_backward(self, p.rows, p.taps, p.c, cols, m, dout, dcols, dm)
    }
    fn patch_matmul(&self, _: Checked, p: &Patch, cols: &CpuBuf, m: &CpuBuf, out: &mut CpuBuf) {
        patch::patch_matmul(self, p.rows, p.taps, p.c, cols, m, out)
    }
    fn patch_matmul_backward(
        &self,
        _: Checked,
        p: &Patch,
        cols: &CpuBuf,
        m: &CpuBuf,
        dout: &CpuBuf,
        dcols: &mut CpuBuf,
        dm: &mut CpuBuf,
    ) {
        patch::patch_matmul_backward(self, p.rows, p.taps, p.c, cols, m, dout, dcols, dm)
    }
    fn window_norm(&self, _: Checked, g: &Window, x: &CpuBuf, eps: f32, n: &mut CpuBuf) {
        norm::window_norm(self, g, x, eps, n)
    }
    fn window_norm_backward(&self, _: Checked, g: &Window, x: &CpuBuf, n: &CpuBuf, dn: &CpuBuf, dx: &mut CpuBuf) {
        norm::window_norm_backward(self, g, x, n, dn, dx)
    }

    fn batch_norm_train(
        &self,
        _: Checked,
        d: &BatchNormDims,
        x: &CpuBuf,
        gamma: &CpuBuf,
        beta: &CpuBuf,
        y: &mut CpuBuf,
        mean: &mut CpuBuf,
        var: &mut CpuBuf,
    ) {
        norm::batch_norm_train(self, d, x, gamma, beta, y, mean, var)
    }
    fn batch_norm_eval(
        &self,
        _: Checked,
        d: &BatchNormDims,
        x: &CpuBuf,
        gamma: &CpuBuf,
        beta: &CpuBuf,
        mean: &CpuBuf,
        var: &CpuBuf,
        y: &mut CpuBuf,
    ) {
        norm::batch_norm_eval(self, d, x, gamma, beta, mean, var, y)
    }
    /// With `d.relu`, the ReLU mask is recomputed from `x` and `β` (as the forward computed
    /// `y`); `y` is not read.
    fn batch_norm_backward(
        &self,
        _: Checked,
        d: &BatchNormDims,
        x: &CpuBuf,
        gamma: &CpuBuf,
        beta: &CpuBuf,
        mean: &CpuBuf,
        var: &CpuBuf,
        _y: Option<&CpuBuf>,
        dy: &CpuBuf,
        dx: &mut CpuBuf,
        dgamma: &mut CpuBuf,
        dbeta: &mut CpuBuf,
    ) {
        norm::batch_norm_backward(self, d, x, gamma, beta, mean, var, dy, dx, dgamma, dbeta)
    }
    fn relu(&self, _: Checked, x: &CpuBuf, y: &mut CpuBuf) {
        activation::relu(self, x, y)
    }
    fn relu_backward(&self, _: Checked, y: &CpuBuf, dy: &CpuBuf, dx: &mut CpuBuf) {
        activation::relu_backward(self, y, dy, dx)
    }
    fn max_pool(&self, _: Checked, g: &Window, x: &CpuBuf, y: &mut CpuBuf) {
        activation::max_pool(self, g, x, y)
    }
    fn max_pool_backward(&self, _: Checked, g: &Window, x: &CpuBuf, y: &CpuBuf, dy: &CpuBuf, dx: &mut CpuBuf) {
        activation::max_pool_backward(self, g, x, y, dy, dx)
    }
    fn softmax_rows(&self, _: Checked, x: &CpuBuf, rows: usize, cols: usize, y: &mut CpuBuf) {
        activation::softmax_rows(self, x, rows, cols, y)
    }
    fn softmax_rows_backward(&self, _: Checked, y: &CpuBuf, dy: &CpuBuf, rows: usize, cols: usize, dx: &mut CpuBuf) {
        activation::softmax_rows_backward(self, y, dy, rows, cols, dx)
    }
    fn cross_entropy(
        &self,
        _: Checked,
        d: &CrossEntropy,
        logits: &CpuBuf,
        labels: &[u32],
        dlogits: &mut CpuBuf,
    ) -> f32 {
        loss::cross_entropy(self, d, logits, labels, dlogits)
    }

    fn sgd_step(&self, _: Checked, s: &SgdStep, w: &mut CpuBuf, g: &CpuBuf, v: &mut CpuBuf) {
        optim::sgd_step(self, s, w, g, v)
    }
    fn adam_step(&self, _: Checked, s: &AdamStep, w: &mut CpuBuf, g: &CpuBuf, m: &mut CpuBuf, v: &mut CpuBuf) {
        optim::adam_step(self, s, w, g, m, v)
    }
}

/// The per-tap scale of a [`ConvScale`], as the convolution kernels take it.
fn taps<'a>(scale: ConvScale<'a, CpuBuf>) -> Option<&'a [f32]> {
    match scale {
        ConvScale::Taps(s) => Some(s),
        _ => None,
    }
}

/// The per-row scale of a [`ConvScale`].
fn rows<'a>(scale: ConvScale<'a, CpuBuf>) -> Option<&'a [f32]> {
    match scale {
        ConvScale::Rows(q) => Some(q),
        _ => None,
    }
}
