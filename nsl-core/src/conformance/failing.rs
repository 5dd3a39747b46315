//! [`FailingDevice`]: a backend whose device "fails" at a chosen status check, for testing that
//! callers (training loops, checkpointing, the CLI) turn a [`BackendError`] into a clear error
//! and write nothing afterwards, without a GPU to break.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::backend::{Checked, Kernels};
use crate::{AdamStep, BackendError, BatchNormDims, ConvScale, CrossEntropy, Gemm, Map, Patch, SgdStep, Window};

/// `inner`, except that [`Kernels::status`] reports a device failure from its `fail_at`-th call
/// on (1-based; every later call too, as a real device's sticky error would). The ops run
/// normally: a caller that misses the status would go on with plausible numbers, which is what a
/// test must catch.
///
/// ```
/// use nsl_core::conformance::FailingDevice;
/// use nsl_core::Backend;
/// use nsl_cpu::Cpu;
///
/// let be = FailingDevice::new(Cpu::with_threads(1), 2);
/// assert!(be.status().is_ok());
/// assert!(be.status().is_err());
/// assert!(be.status().is_err());
/// ```
#[derive(Clone, Debug)]
pub struct FailingDevice<K> {
    inner: K,
    fail_at: u64,
    calls: Arc<AtomicU64>,
}

impl<K> FailingDevice<K> {
    pub fn new(inner: K, fail_at: u64) -> Self {
        FailingDevice { inner, fail_at, calls: Arc::new(AtomicU64::new(0)) }
    }
    /// How many times `status` was asked.
    pub fn status_calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

// Delegation boilerplate: every kernel is `inner`'s.
#[allow(clippy::too_many_arguments)]
impl<K: Kernels> Kernels for FailingDevice<K> {
    type Buf = K::Buf;

    fn name(&self) -> String {
        format!("{} (failing at status check {})", self.inner.name(), self.fail_at)
    }
    fn numerics(&self) -> String {
        self.inner.numerics()
    }
    fn status(&self) -> Result<(), BackendError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.fail_at {
            return Err(BackendError::Device { op: "an injected fault".into(), message: "FailingDevice".into() });
        }
        self.inner.status()
    }
    fn synchronize(&self) {
        self.inner.synchronize()
    }
    fn zeros(&self, len: usize) -> K::Buf {
        self.inner.zeros(len)
    }
    fn alloc(&self, len: usize) -> K::Buf {
        self.inner.alloc(len)
    }
    fn upload(&self, data: &[f32]) -> K::Buf {
        self.inner.upload(data)
    }
    fn download(&self, buf: &K::Buf) -> Vec<f32> {
        self.inner.download(buf)
    }
    fn len(&self, buf: &K::Buf) -> usize {
        self.inner.len(buf)
    }
    fn copy(&self, c: Checked, src: &K::Buf, dst: &mut K::Buf) {
        self.inner.copy(c, src, dst)
    }
    fn gemm(&self, c: Checked, g: &Gemm, a: &K::Buf, b: &K::Buf, out: &mut K::Buf) {
        self.inner.gemm(c, g, a, b, out)
    }
    fn fill(&self, c: Checked, x: &mut K::Buf, value: f32) {
        self.inner.fill(c, x, value)
    }
    fn axpy(&self, c: Checked, alpha: f32, x: &K::Buf, y: &mut K::Buf) {
        self.inner.axpy(c, alpha, x, y)
    }
    fn scale(&self, c: Checked, alpha: f32, x: &mut K::Buf) {
        self.inner.scale(c, alpha, x)
    }
    fn mul(&self, c: Checked, a: &K::Buf, b: &K::Buf, out: &mut K::Buf) {
        self.inner.mul(c, a, b, out)
    }
    fn map(&self, c: Checked, f: Map, x: &K::Buf, out: &mut K::Buf) {
        self.inner.map(c, f, x, out)
    }
    fn dot(&self, c: Checked, a: &K::Buf, b: &K::Buf) -> f32 {
        self.inner.dot(c, a, b)
    }
    fn mul_rows(&self, c: Checked, x: &K::Buf, s: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        self.inner.mul_rows(c, x, s, rows, cols, out)
    }
    fn mul_cols(&self, c: Checked, x: &K::Buf, s: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        self.inner.mul_cols(c, x, s, rows, cols, out)
    }
    fn dot_rows(&self, c: Checked, a: &K::Buf, b: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        self.inner.dot_rows(c, a, b, rows, cols, out)
    }
    fn dot_cols(&self, c: Checked, a: &K::Buf, b: &K::Buf, rows: usize, cols: usize, out: &mut K::Buf) {
        self.inner.dot_cols(c, a, b, rows, cols, out)
    }
    fn im2col(&self, c: Checked, g: &Window, x: &K::Buf, cols: &mut K::Buf) {
        self.inner.im2col(c, g, x, cols)
    }
    fn col2im(&self, c: Checked, g: &Window, dcols: &K::Buf, dx: &mut K::Buf) {
        self.inner.col2im(c, g, dcols, dx)
    }
    fn conv2d(
        &self,
        c: Checked,
        g: &Window,
        n: usize,
        x: &K::Buf,
        w: &K::Buf,
        scale: ConvScale<'_, K::Buf>,
        y: &mut K::Buf,
    ) {
        self.inner.conv2d(c, g, n, x, w, scale, y)
    }
    fn conv2d_backward(
        &self,
        c: Checked,
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
        self.inner.conv2d_backward(c, g, n, x, w, scale, dy, dx, dw, dscale)
    }
    fn patch_scale(&self, c: Checked, p: &Patch, cols: &K::Buf, m: &K::Buf, out: &mut K::Buf) {
        self.inner.patch_scale(c, p, cols, m, out)
    }
    fn patch_scale_backward(
        &self,
        c: Checked,
        p: &Patch,
        cols: &K::Buf,
        m: &K::Buf,
        dout: &K::Buf,
        dcols: &mut K::Buf,
        dm: &mut K::Buf,
    ) {
        self.inner.patch_scale_backward(c, p, cols, m, dout, dcols, dm)
    }
    fn patch_matmul(&self, c: Checked, p: &Patch, cols: &K::Buf, m: &K::Buf, out: &mut K::Buf) {
        self.inner.patch_matmul(c, p, cols, m, out)
    }
    fn patch_matmul_backward(
        &self,
        c: Checked,
        p: &Patch,
        cols: &K::Buf,
        m: &K::Buf,
        dout: &K::Buf,
        dcols: &mut K::Buf,
        dm: &mut K::Buf,
    ) {
        self.inner.patch_matmul_backward(c, p, cols, m, dout, dcols, dm)
    }
    fn window_norm(&self, c: Checked, g: &Window, x: &K::Buf, eps: f32, n: &mut K::Buf) {
        self.inner.window_norm(c, g, x, eps, n)
    }
    fn window_norm_backward(&self, c: Checked, g: &Window, x: &K::Buf, n: &K::Buf, dn: &K::Buf, dx: &mut K::Buf) {
        self.inner.window_norm_backward(c, g, x, n, dn, dx)
    }
    fn batch_norm_train(
        &self,
        c: Checked,
        d: &BatchNormDims,
        x: &K::Buf,
        gamma: &K::Buf,
        beta: &K::Buf,
        y: &mut K::Buf,
        mean: &mut K::Buf,
        var: &mut K::Buf,
    ) {
        self.inner.batch_norm_train(c, d, x, gamma, beta, y, mean, var)
    }
    fn batch_norm_eval(
        &self,
        c: Checked,
        d: &BatchNormDims,
        x: &K::Buf,
        gamma: &K::Buf,
        beta: &K::Buf,
        mean: &K::Buf,
        var: &K::Buf,
        y: &mut K::Buf,
    ) {
        self.inner.batch_norm_eval(c, d, x, gamma, beta, mean, var, y)
    }
    fn batch_norm_backward(
        &self,
        c: Checked,
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
        self.inner.batch_norm_backward(c, d, x, gamma, beta, mean, var, y, dy, dx, dgamma, dbeta)
    }
    fn relu(&self, c: Checked, x: &K::Buf, y: &mut K::Buf) {
        self.inner.relu(c, x, y)
    }
    fn relu_backward(&self, c: Checked, y: &K::Buf, dy: &K::Buf, dx: &mut K::Buf) {
        self.inner.relu_backward(c, y, dy, dx)
    }
    fn max_pool(&self, c: Checked, g: &Window, x: &K::Buf, y: &mut K::Buf) {
        self.inner.max_pool(c, g, x, y)
    }
    fn max_pool_backward(&self, c: Checked, g: &Window, x: &K::Buf, y: &K::Buf, dy: &K::Buf, dx: &mut K::Buf) {
        self.inner.max_pool_backward(c, g, x, y, dy, dx)
    }
    fn softmax_rows(&self, c: Checked, x: &K::Buf, rows: usize, cols: usize, y: &mut K::Buf) {
        self.inner.softmax_rows(c, x, rows, cols, y)
    }
    fn softmax_rows_backward(&self, c: Checked, y: &K::Buf, dy: &K::Buf, rows: usize, cols: usize, dx: &mut K::Buf) {
        self.inner.softmax_rows_backward(c, y, dy, rows, cols, dx)
    }
    fn cross_entropy(
        &self,
        c: Checked,
        d: &CrossEntropy,
        logits: &K::Buf,
        labels: &[u32],
        dlogits: &mut K::Buf,
    ) -> f32 {
        self.inner.cross_entropy(c, d, logits, labels, dlogits)
    }
    fn sgd_step(&self, c: Checked, s: &SgdStep, w: &mut K::Buf, g: &K::Buf, v: &mut K::Buf) {
        self.inner.sgd_step(c, s, w, g, v)
    }
    fn adam_step(&self, c: Checked, s: &AdamStep, w: &mut K::Buf, g: &K::Buf, m: &mut K::Buf, v: &mut K::Buf) {
        self.inner.adam_step(c, s, w, g, m, v)
    }
}
