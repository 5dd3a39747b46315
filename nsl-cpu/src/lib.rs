//! # nsl-cpu
//!
//! The CPU implementation of [`nsl_core::Backend`]: buffers are `Vec<f32>`, matrix products go
//! through [`matrixmultiply`]'s packed SIMD kernels (AVX/FMA/AVX-512 chosen at run time, no
//! `target-cpu=native` needed) and everything else is plain loops over contiguous slices that
//! LLVM auto-vectorises, parallelised with [`rayon`].
//!
//! **Determinism.** Every reduction uses a fixed chunking that depends only on the problem
//! size (never on the thread count or on work stealing) and combines partial results in a
//! fixed order, and scatters (`col2im`, max-pool backward) are rewritten as gathers or run
//! sequentially per image. Results are therefore bitwise reproducible run to run and, on a
//! given machine, independent of the number of threads.

mod activation;
mod conv;
mod elementwise;
mod gemm;
mod loss;
mod norm;
mod optim;
mod par;
mod patch;

use std::sync::Arc;

use nsl_core::{AdamStep, Backend, BatchNormDims, CrossEntropy, Gemm, Map, SgdStep, Window};
use rayon::ThreadPool;

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
#[derive(Clone, Debug, Default)]
pub struct Cpu {
    pool: Option<Arc<ThreadPool>>,
}

impl Cpu {
    /// A backend using rayon's global thread pool.
    pub fn new() -> Self {
        Cpu { pool: None }
    }

    /// A backend owning a pool of `threads` worker threads (at least 1); all parallel work of
    /// this backend (and of its clones) runs inside it.
    pub fn with_threads(threads: usize) -> Self {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("nsl-cpu-{i}"))
            .build()
            .expect("failed to build the rayon thread pool");
        Cpu { pool: Some(Arc::new(pool)) }
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

fn same_len(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}: buffer lengths differ ({} vs {})", a.len(), b.len());
}

impl Backend for Cpu {
    type Buf = Vec<f32>;

    fn name(&self) -> String {
        let t = self.threads();
        format!("cpu ({t} thread{}, {})", if t == 1 { "" } else { "s" }, simd_features())
    }

    fn zeros(&self, len: usize) -> Vec<f32> {
        vec![0.0; len]
    }
    fn upload(&self, data: &[f32]) -> Vec<f32> {
        data.to_vec()
    }
    fn download(&self, buf: &Vec<f32>) -> Vec<f32> {
        buf.clone()
    }
    fn len(&self, buf: &Vec<f32>) -> usize {
        buf.len()
    }
    fn copy(&self, src: &Vec<f32>, dst: &mut Vec<f32>) {
        same_len("copy", src, dst);
        dst.copy_from_slice(src);
    }

    fn gemm(&self, g: &Gemm, a: &Vec<f32>, b: &Vec<f32>, c: &mut Vec<f32>) {
        gemm::gemm(self, g, a, b, c)
    }
    fn fill(&self, x: &mut Vec<f32>, value: f32) {
        elementwise::fill(self, x, value)
    }
    fn axpy(&self, alpha: f32, x: &Vec<f32>, y: &mut Vec<f32>) {
        same_len("axpy", x, y);
        elementwise::axpy(self, alpha, x, y)
    }
    fn scale(&self, alpha: f32, x: &mut Vec<f32>) {
        elementwise::scale(self, alpha, x)
    }
    fn mul(&self, a: &Vec<f32>, b: &Vec<f32>, out: &mut Vec<f32>) {
        same_len("mul", a, out);
        same_len("mul", b, out);
        elementwise::mul(self, a, b, out)
    }
    fn map(&self, f: Map, x: &Vec<f32>, out: &mut Vec<f32>) {
        same_len("map", x, out);
        elementwise::map(self, f, x, out)
    }
    fn dot(&self, a: &Vec<f32>, b: &Vec<f32>) -> f32 {
        same_len("dot", a, b);
        elementwise::dot(self, a, b)
    }
    fn mul_rows(&self, x: &Vec<f32>, s: &Vec<f32>, rows: usize, cols: usize, out: &mut Vec<f32>) {
        elementwise::mul_rows(self, x, s, rows, cols, out)
    }
    fn mul_cols(&self, x: &Vec<f32>, s: &Vec<f32>, rows: usize, cols: usize, out: &mut Vec<f32>) {
        elementwise::mul_cols(self, x, s, rows, cols, out)
    }
    fn dot_rows(&self, a: &Vec<f32>, b: &Vec<f32>, rows: usize, cols: usize, out: &mut Vec<f32>) {
        elementwise::dot_rows(self, a, b, rows, cols, out)
    }
    fn dot_cols(&self, a: &Vec<f32>, b: &Vec<f32>, rows: usize, cols: usize, out: &mut Vec<f32>) {
        elementwise::dot_cols(self, a, b, rows, cols, out)
    }

    fn im2col(&self, g: &Window, x: &Vec<f32>, cols: &mut Vec<f32>) {
        conv::im2col(self, g, x, cols)
    }
    fn col2im(&self, g: &Window, dcols: &Vec<f32>, dx: &mut Vec<f32>) {
        conv::col2im(self, g, dcols, dx)
    }
    fn patch_scale(&self, rows: usize, taps: usize, c: usize, cols: &Vec<f32>, m: &Vec<f32>, out: &mut Vec<f32>) {
        patch::patch_scale(self, rows, taps, c, cols, m, out)
    }
    fn patch_scale_backward(
        &self,
        rows: usize,
        taps: usize,
        c: usize,
        cols: &Vec<f32>,
        m: &Vec<f32>,
        dout: &Vec<f32>,
        dcols: &mut Vec<f32>,
        dm: &mut Vec<f32>,
    ) {
        patch::patch_scale_backward(self, rows, taps, c, cols, m, dout, dcols, dm)
    }
    fn patch_matmul(&self, rows: usize, taps: usize, c: usize, cols: &Vec<f32>, m: &Vec<f32>, out: &mut Vec<f32>) {
        patch::patch_matmul(self, rows, taps, c, cols, m, out)
    }
    fn patch_matmul_backward(
        &self,
        rows: usize,
        taps: usize,
        c: usize,
        cols: &Vec<f32>,
        m: &Vec<f32>,
        dout: &Vec<f32>,
        dcols: &mut Vec<f32>,
        dm: &mut Vec<f32>,
    ) {
        patch::patch_matmul_backward(self, rows, taps, c, cols, m, dout, dcols, dm)
    }
    fn window_norm(&self, g: &Window, x: &Vec<f32>, eps: f32, n: &mut Vec<f32>) {
        norm::window_norm(self, g, x, eps, n)
    }
    fn window_norm_backward(&self, g: &Window, x: &Vec<f32>, n: &Vec<f32>, dn: &Vec<f32>, dx: &mut Vec<f32>) {
        norm::window_norm_backward(self, g, x, n, dn, dx)
    }

    fn batch_norm_train(
        &self,
        d: &BatchNormDims,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        y: &mut Vec<f32>,
        mean: &mut Vec<f32>,
        var: &mut Vec<f32>,
    ) {
        norm::batch_norm_train(self, d, x, gamma, beta, y, mean, var)
    }
    fn batch_norm_eval(
        &self,
        d: &BatchNormDims,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        beta: &Vec<f32>,
        mean: &Vec<f32>,
        var: &Vec<f32>,
        y: &mut Vec<f32>,
    ) {
        norm::batch_norm_eval(self, d, x, gamma, beta, mean, var, y)
    }
    fn batch_norm_backward(
        &self,
        d: &BatchNormDims,
        x: &Vec<f32>,
        gamma: &Vec<f32>,
        mean: &Vec<f32>,
        var: &Vec<f32>,
        dy: &Vec<f32>,
        dx: &mut Vec<f32>,
        dgamma: &mut Vec<f32>,
        dbeta: &mut Vec<f32>,
    ) {
        norm::batch_norm_backward(self, d, x, gamma, mean, var, dy, dx, dgamma, dbeta)
    }
    fn relu(&self, x: &Vec<f32>, y: &mut Vec<f32>) {
        same_len("relu", x, y);
        activation::relu(self, x, y)
    }
    fn relu_backward(&self, y: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        same_len("relu_backward", y, dx);
        same_len("relu_backward", dy, dx);
        activation::relu_backward(self, y, dy, dx)
    }
    fn max_pool(&self, g: &Window, x: &Vec<f32>, y: &mut Vec<f32>) {
        activation::max_pool(self, g, x, y)
    }
    fn max_pool_backward(&self, g: &Window, x: &Vec<f32>, y: &Vec<f32>, dy: &Vec<f32>, dx: &mut Vec<f32>) {
        activation::max_pool_backward(self, g, x, y, dy, dx)
    }
    fn softmax_rows(&self, x: &Vec<f32>, rows: usize, cols: usize, y: &mut Vec<f32>) {
        activation::softmax_rows(self, x, rows, cols, y)
    }
    fn softmax_rows_backward(&self, y: &Vec<f32>, dy: &Vec<f32>, rows: usize, cols: usize, dx: &mut Vec<f32>) {
        activation::softmax_rows_backward(self, y, dy, rows, cols, dx)
    }
    fn cross_entropy(&self, d: &CrossEntropy, logits: &Vec<f32>, labels: &Vec<f32>, dlogits: &mut Vec<f32>) -> f32 {
        loss::cross_entropy(self, d, logits, labels, dlogits)
    }

    fn sgd_step(&self, s: &SgdStep, w: &mut Vec<f32>, g: &Vec<f32>, v: &mut Vec<f32>) {
        same_len("sgd_step", g, w);
        same_len("sgd_step", v, w);
        optim::sgd_step(self, s, w, g, v)
    }
    fn adam_step(&self, s: &AdamStep, w: &mut Vec<f32>, g: &Vec<f32>, m: &mut Vec<f32>, v: &mut Vec<f32>) {
        same_len("adam_step", g, w);
        same_len("adam_step", m, w);
        same_len("adam_step", v, w);
        optim::adam_step(self, s, w, g, m, v)
    }
}
