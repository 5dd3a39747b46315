//! Convolution geometry: `im2col` and its adjoint `col2im` (`kernels/conv.cu`; formulas on
//! [`nsl_core::Backend::im2col`]). `col2im` is a gather — each input element sums the patch
//! entries that read it, in the CPU's (ky, kx) order — so it needs no atomics.

use nsl_core::Window;

use crate::launch::{need, p, Arg, Win};
use crate::{Cuda, CudaBuf};

/// See [`nsl_core::Backend::im2col`].
pub(crate) fn im2col(be: &Cuda, g: &Window, x: &CudaBuf, cols: &mut CudaBuf) {
    need("im2col", "x", x, g.input_len());
    need("im2col", "cols", cols, g.rows() * g.patch_len());
    be.launch_1d("nsl_im2col", g.rows() * g.patch_len(), &[Arg::Win(Win::new(g)), p(x), p(cols)]);
}

/// See [`nsl_core::Backend::col2im`] (overwrites `dx`).
pub(crate) fn col2im(be: &Cuda, g: &Window, dcols: &CudaBuf, dx: &mut CudaBuf) {
    need("col2im", "dcols", dcols, g.rows() * g.patch_len());
    need("col2im", "dx", dx, g.input_len());
    be.launch_1d("nsl_col2im", g.input_len(), &[Arg::Win(Win::new(g)), p(dcols), p(dx)]);
}
