//! # nsl-cuda
//!
//! The CUDA implementation of [`nsl_core::Backend`], behind the cargo feature **`cuda`** (off
//! by default). Without the feature this crate only exposes [`available`], so
//! `cargo build --workspace` needs no CUDA toolkit and no GPU.
//!
//! With `--features cuda`:
//! * the build script compiles `kernels/*.cu` to PTX with `nvcc` (virtual architecture
//!   `compute_80` unless `NSL_CUDA_ARCH` says otherwise) and the PTX is embedded in the crate;
//!   the driver JIT-compiles it for the GPU at hand when the backend starts;
//! * the binding to the driver is `cust` 0.3, whose build script needs a CUDA installation
//!   (set `CUDA_LIBRARY_PATH` to the toolkit root, e.g. `/usr/lib/cuda` on Debian, if it reports
//!   "Could not find a cuda installation"); binaries link `libcuda.so.1`, the driver library;
//! * `Cuda` holds the device's primary context, one stream and the loaded kernels.
//!   `Cuda::new` fails with a clear `CudaError` when there is no GPU or driver, when the PTX
//!   cannot be loaded, or when memory runs out; every launch is checked against the kernel's
//!   parameter list in the PTX.
//!
//! With `--features emulate` (tests only, no toolkit needed) the same kernel sources are
//! compiled as C++ and run on a CPU emulator of CUDA's thread model (`kernels/emu/emu.hpp`),
//! through the same op code and launch arguments. The CPU≡CUDA tests run there on any machine;
//! it says nothing about GPU-only behaviour (speed, memory model, the driver, PTX JIT).
//!
//! The convolution (`conv2d`, with or without a DNS patch scale) and its backward are fused:
//! the tiled GEMM reads its patch matrix straight from `x` (forward, weight gradient), the
//! input gradient is one product over (tap, output channel) per input pixel, and the scale
//! gradient one thread per (row, tap); no patch matrix is materialised. The fused batch norm +
//! ReLU still uses `nsl_core`'s default composition of the two ops.
//!
//! Every op has its own kernel, written to compute the formula in the [`nsl_core::Backend`]
//! rustdoc with the CPU backend's semantics (which outputs are overwritten and which
//! accumulated, max-pool ties, the cross-entropy floor). **Determinism:** no float atomics
//! anywhere; reductions use fixed-shape trees that depend only on the problem size, and
//! scatters (`col2im`, `window_norm_backward`, max-pool backward) are written as gathers, so
//! repeated runs give bitwise identical results on a given GPU and PTX.
//!
//! | file | kernels |
//! |---|---|
//! | `gemm.rs` | tiled SGEMM (128×64 tiles, 8×4 per thread, split-k), 4 transpose variants, batch on `gridDim.z` |
//! | `elementwise.rs` | axpy, scale, mul, map, dot (2-pass), mul_rows/cols, dot_rows (warp/row), dot_cols (2-pass) |
//! | `conv.rs` | im2col, col2im (gather) |
//! | `patch.rs` | patch_scale, patch_matmul and their fused backwards |
//! | `norm.rs` | window_norm (+ gather backward), batch norm train / eval / backward |
//! | `activation.rs` | relu, max_pool (+ gather backward), softmax_rows (+ backward) |
//! | `loss.rs` | smoothed cross-entropy with the log floor (warp per example) |
//! | `optim.rs` | SGD-momentum, Adam |
//!
//! `fill`, `zeros` and `copy` are driver memsets/copies. The CPU≡CUDA property tests
//! (`tests/cpu_equals_cuda.rs`) compare every op and every similarity's forward and gradients
//! against `nsl_cpu::Cpu`; on a machine without a GPU they print
//! `skipped: no CUDA device (...)` and pass.

// The op files and what they share compile in both kernel runners: the CUDA driver (feature
// `cuda`) and the CPU emulator (feature `emulate`, tests on machines without a GPU).
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod activation;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod conv;
#[cfg(feature = "cuda")]
mod device;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod elementwise;
#[cfg(all(feature = "emulate", not(feature = "cuda")))]
mod emulated;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod error;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod gemm;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod launch;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod loss;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod norm;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod optim;
#[cfg(any(feature = "cuda", feature = "emulate"))]
mod patch;
#[cfg(feature = "cuda")]
mod profile;

#[cfg(feature = "cuda")]
use device::DevMem;
#[cfg(feature = "cuda")]
pub use device::{Cuda, PTX_ARCH};
#[cfg(all(feature = "emulate", not(feature = "cuda")))]
use emulated::DevMem;
#[cfg(all(feature = "emulate", not(feature = "cuda")))]
pub use emulated::{Cuda, PTX_ARCH};
#[cfg(any(feature = "cuda", feature = "emulate"))]
pub use error::{CudaError, DriverError};
#[cfg(any(feature = "cuda", feature = "emulate"))]
pub use launch::{CudaBuf, MAX_ELEMS};

/// Whether this build can run on CUDA: `Ok(())` when it was built with the `cuda` feature and a
/// device can be opened, otherwise the reason.
///
/// ```
/// match nsl_cuda::available() {
///     Ok(()) => println!("CUDA is available"),
///     Err(why) => println!("CPU only: {why}"),
/// }
/// ```
pub fn available() -> Result<(), String> {
    #[cfg(feature = "cuda")]
    {
        Cuda::new().map(|_| ()).map_err(|e| e.to_string())
    }
    #[cfg(all(feature = "emulate", not(feature = "cuda")))]
    {
        Err("nsl-cuda was built with the `emulate` feature only: its kernels run on a CPU emulator (for tests); \
             rebuild with `--features cuda` to use the GPU"
            .into())
    }
    #[cfg(not(any(feature = "cuda", feature = "emulate")))]
    {
        Err("nsl-cuda was built without the `cuda` feature: rebuild with `--features cuda` (needs the CUDA \
             toolkit) to use the GPU backend"
            .into())
    }
}

#[cfg(any(feature = "cuda", feature = "emulate"))]
mod backend_impl {
    use nsl_core::backend::{
        batch_norm_relu_backward_unfused, batch_norm_relu_eval_unfused, batch_norm_relu_train_unfused, conv2d_unfused,
        Checked,
    };
    use nsl_core::{AdamStep, BatchNormDims, ConvScale, CrossEntropy, Gemm, Kernels, Map, Patch, SgdStep, Window};

    use crate::{activation, conv, elementwise, gemm, loss, norm, optim, patch, Cuda, CudaBuf, CudaError};

    // Dispatch boilerplate: one forwarding line per `Kernels` op; the signatures are the trait's,
    // so every backend (and every op with the same buffers) repeats this shape.
    /// Kernel dispatch only: nsl-core's `Backend` checked every argument. Batch norm + ReLU and
    /// row-scaled convolutions run as their composed references (two kernels each).
    impl Kernels for Cuda {
        type Buf = CudaBuf;

        fn name(&self) -> String {
            format!("cuda ({})", self.device_description())
        }

        // Device failures are recorded, not raised (`Cuda::fail`); `status` returns them.
        fn synchronize(&self) {
            // The inherent `Cuda::synchronize`, which reports asynchronous kernel errors.
            if let Err(e) = Cuda::synchronize(self) {
                self.fail("synchronize", e);
            }
        }
        fn status(&self) -> Result<(), nsl_core::BackendError> {
            Kernels::synchronize(self);
            Cuda::status(self)
        }

        fn zeros(&self, len: usize) -> CudaBuf {
            CudaBuf(self.or_placeholder("zeros", len, self.try_zeros(len).map(|b| b.0)))
        }
        fn alloc(&self, len: usize) -> CudaBuf {
            CudaBuf(self.scratch("alloc", len))
        }
        fn upload(&self, data: &[f32]) -> CudaBuf {
            self.upload_or_fail("upload", data)
        }
        fn download(&self, buf: &CudaBuf) -> Vec<f32> {
            self.download_mem("download", &buf.0, buf.len())
        }
        fn len(&self, buf: &CudaBuf) -> usize {
            buf.len()
        }
        fn copy(&self, _: Checked, src: &CudaBuf, dst: &mut CudaBuf) {
            if let Err(error) = self.copy_mem(&src.0, &mut dst.0, src.len()) {
                self.fail("copy", CudaError::Driver { what: format!("copying {} floats", src.len()), error });
            }
        }

        fn gemm(&self, _: Checked, g: &Gemm, a: &CudaBuf, b: &CudaBuf, c: &mut CudaBuf) {
            gemm::gemm(self, g, a, b, c)
        }
        fn fill(&self, _: Checked, x: &mut CudaBuf, value: f32) {
            if let Err(error) = self.memset32(&mut x.0, value.to_bits()) {
                self.fail("fill", CudaError::Driver { what: format!("filling {} floats", x.len()), error });
            }
        }
        fn axpy(&self, _: Checked, alpha: f32, x: &CudaBuf, y: &mut CudaBuf) {
            elementwise::axpy(self, alpha, x, y)
        }
        fn scale(&self, _: Checked, alpha: f32, x: &mut CudaBuf) {
            elementwise::scale(self, alpha, x)
        }
        fn mul(&self, _: Checked, a: &CudaBuf, b: &CudaBuf, out: &mut CudaBuf) {
            elementwise::mul(self, a, b, out)
        }
        fn map(&self, _: Checked, f: Map, x: &CudaBuf, out: &mut CudaBuf) {
            elementwise::map(self, f, x, out)
        }
        fn dot(&self, _: Checked, a: &CudaBuf, b: &CudaBuf) -> f32 {
            elementwise::dot(self, a, b)
        }
        fn mul_rows(&self, _: Checked, x: &CudaBuf, s: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
            elementwise::mul_rows(self, x, s, rows, cols, out)
        }
        fn mul_cols(&self, _: Checked, x: &CudaBuf, s: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
            elementwise::mul_cols(self, x, s, rows, cols, out)
        }
        fn dot_rows(&self, _: Checked, a: &CudaBuf, b: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
            elementwise::dot_rows(self, a, b, rows, cols, out)
        }
        fn dot_cols(&self, _: Checked, a: &CudaBuf, b: &CudaBuf, rows: usize, cols: usize, out: &mut CudaBuf) {
            elementwise::dot_cols(self, a, b, rows, cols, out)
        }

        fn im2col(&self, _: Checked, g: &Window, x: &CudaBuf, cols: &mut CudaBuf) {
            conv::im2col(self, g, x, cols)
        }
        fn col2im(&self, _: Checked, g: &Window, dcols: &CudaBuf, dx: &mut CudaBuf) {
            conv::col2im(self, g, dcols, dx)
        }
        fn conv2d(
            &self,
            _: Checked,
            g: &Window,
            n: usize,
            x: &CudaBuf,
            w: &CudaBuf,
            scale: ConvScale<'_, CudaBuf>,
            y: &mut CudaBuf,
        ) {
            match scale {
                ConvScale::None => conv::conv2d(self, g, n, x, w, None, y),
                ConvScale::Taps(s) => conv::conv2d(self, g, n, x, w, Some(s), y),
                ConvScale::Rows(_) => conv2d_unfused(self, g, n, x, w, scale, y),
            }
        }
        fn conv2d_backward(
            &self,
            _: Checked,
            g: &Window,
            n: usize,
            x: &CudaBuf,
            w: &CudaBuf,
            scale: ConvScale<'_, CudaBuf>,
            dy: &CudaBuf,
            dx: &mut CudaBuf,
            dw: &mut CudaBuf,
            dscale: Option<&mut CudaBuf>,
        ) {
            match scale {
                ConvScale::None => conv::conv2d_backward(self, g, n, x, w, None, dy, dx, dw, None),
                ConvScale::Taps(s) => conv::conv2d_backward(self, g, n, x, w, Some(s), dy, dx, dw, dscale),
                ConvScale::Rows(_) => {
                    nsl_core::backend::conv2d_backward_unfused(self, g, n, x, w, scale, dy, dx, dw, dscale)
                }
            }
        }
        fn patch_scale(&self, _: Checked, p: &Patch, cols: &CudaBuf, m: &CudaBuf, out: &mut CudaBuf) {
            patch::patch_scale(self, p.rows, p.taps, p.c, cols, m, out)
        }
        fn patch_scale_backward(
            &self,
            _: Checked,
            p: &Patch,
            cols: &CudaBuf,
            m: &CudaBuf,
            dout: &CudaBuf,
            dcols: &mut CudaBuf,
            dm: &mut CudaBuf,
        ) {
            patch::patch_scale_backward(self, p.rows, p.taps, p.c, cols, m, dout, dcols, dm)
        }
        fn patch_matmul(&self, _: Checked, p: &Patch, cols: &CudaBuf, m: &CudaBuf, out: &mut CudaBuf) {
            patch::patch_matmul(self, p.rows, p.taps, p.c, cols, m, out)
        }
        fn patch_matmul_backward(
            &self,
            _: Checked,
            p: &Patch,
            cols: &CudaBuf,
            m: &CudaBuf,
            dout: &CudaBuf,
            dcols: &mut CudaBuf,
            dm: &mut CudaBuf,
        ) {
            patch::patch_matmul_backward(self, p.rows, p.taps, p.c, cols, m, dout, dcols, dm)
        }
        fn window_norm(&self, _: Checked, g: &Window, x: &CudaBuf, eps: f32, n: &mut CudaBuf) {
            norm::window_norm(self, g, x, eps, n)
        }
        fn window_norm_backward(
            &self,
            _: Checked,
            g: &Window,
            x: &CudaBuf,
            n: &CudaBuf,
            dn: &CudaBuf,
            dx: &mut CudaBuf,
        ) {
            norm::window_norm_backward(self, g, x, n, dn, dx)
        }

        fn batch_norm_train(
            &self,
            _: Checked,
            d: &BatchNormDims,
            x: &CudaBuf,
            gamma: &CudaBuf,
            beta: &CudaBuf,
            y: &mut CudaBuf,
            mean: &mut CudaBuf,
            var: &mut CudaBuf,
        ) {
            match d.relu {
                true => batch_norm_relu_train_unfused(self, d, x, gamma, beta, y, mean, var),
                false => norm::batch_norm_train(self, d, x, gamma, beta, y, mean, var),
            }
        }
        fn batch_norm_eval(
            &self,
            _: Checked,
            d: &BatchNormDims,
            x: &CudaBuf,
            gamma: &CudaBuf,
            beta: &CudaBuf,
            mean: &CudaBuf,
            var: &CudaBuf,
            y: &mut CudaBuf,
        ) {
            match d.relu {
                true => batch_norm_relu_eval_unfused(self, d, x, gamma, beta, mean, var, y),
                false => norm::batch_norm_eval(self, d, x, gamma, beta, mean, var, y),
            }
        }
        fn batch_norm_backward(
            &self,
            _: Checked,
            d: &BatchNormDims,
            x: &CudaBuf,
            gamma: &CudaBuf,
            beta: &CudaBuf,
            mean: &CudaBuf,
            var: &CudaBuf,
            y: Option<&CudaBuf>,
            dy: &CudaBuf,
            dx: &mut CudaBuf,
            dgamma: &mut CudaBuf,
            dbeta: &mut CudaBuf,
        ) {
            match y {
                // nsl-core passes `y` exactly when `d.relu`
                Some(y) => {
                    batch_norm_relu_backward_unfused(self, d, x, gamma, beta, mean, var, y, dy, dx, dgamma, dbeta)
                }
                None => norm::batch_norm_backward(self, d, x, gamma, mean, var, dy, dx, dgamma, dbeta),
            }
        }
        fn relu(&self, _: Checked, x: &CudaBuf, y: &mut CudaBuf) {
            activation::relu(self, x, y)
        }
        fn relu_backward(&self, _: Checked, y: &CudaBuf, dy: &CudaBuf, dx: &mut CudaBuf) {
            activation::relu_backward(self, y, dy, dx)
        }
        fn max_pool(&self, _: Checked, g: &Window, x: &CudaBuf, y: &mut CudaBuf) {
            activation::max_pool(self, g, x, y)
        }
        fn max_pool_backward(&self, _: Checked, g: &Window, x: &CudaBuf, y: &CudaBuf, dy: &CudaBuf, dx: &mut CudaBuf) {
            activation::max_pool_backward(self, g, x, y, dy, dx)
        }
        fn softmax_rows(&self, _: Checked, x: &CudaBuf, rows: usize, cols: usize, y: &mut CudaBuf) {
            activation::softmax_rows(self, x, rows, cols, y)
        }
        fn softmax_rows_backward(
            &self,
            _: Checked,
            y: &CudaBuf,
            dy: &CudaBuf,
            rows: usize,
            cols: usize,
            dx: &mut CudaBuf,
        ) {
            activation::softmax_rows_backward(self, y, dy, rows, cols, dx)
        }
        fn cross_entropy(
            &self,
            _: Checked,
            d: &CrossEntropy,
            logits: &CudaBuf,
            labels: &[u32],
            dlogits: &mut CudaBuf,
        ) -> f32 {
            loss::cross_entropy(self, d, logits, labels, dlogits)
        }

        fn sgd_step(&self, _: Checked, s: &SgdStep, w: &mut CudaBuf, g: &CudaBuf, v: &mut CudaBuf) {
            optim::sgd_step(self, s, w, g, v)
        }
        fn adam_step(&self, _: Checked, s: &AdamStep, w: &mut CudaBuf, g: &CudaBuf, m: &mut CudaBuf, v: &mut CudaBuf) {
            optim::adam_step(self, s, w, g, m, v)
        }
    }
}
