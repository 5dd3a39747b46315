//! DNS / UNS patch transforms and their fused backwards (`kernels/patch.cu`; formulas on
//! [`nsl_core::Backend::patch_scale`] and [`nsl_core::Backend::patch_matmul`]).
//!
//! `patch_matmul` and its backward run one block per row, with the row's `taps×taps` matrix
//! staged in shared memory when it fits (up to 104×104); both backward outputs come from one
//! kernel. `patch_scale_backward` runs a warp per `(row, tap)` segment when there are at least
//! 32 channels, a thread per segment otherwise.

use crate::launch::{blocks, int, p, Arg, THREADS};
use crate::{Cuda, CudaBuf};

/// Largest per-row matrix staged in shared memory (floats; 40 KiB of the 48 KiB default).
const SHARED_MAX_FLOATS: usize = 10 * 1024;

// Boilerplate: each op below takes its `Kernels` method's parameters (less `Checked`, the
// `Patch` fields spelled out), so the forwards' and the backwards' parameter lists repeat.

/// See [`nsl_core::Backend::patch_scale`].
pub(crate) fn patch_scale(
    be: &Cuda,
    rows: usize,
    taps: usize,
    c: usize,
    cols: &CudaBuf,
    m: &CudaBuf,
    out: &mut CudaBuf,
) {
    let n = rows * taps * c;
    if n == 0 {
        return;
    }
    be.launch_1d("nsl_patch_scale", n, &[int(n), int(c), p(cols), p(m), p(out)]);
}

/// See [`nsl_core::Backend::patch_scale_backward`] (overwrites `dcols` and `dm`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch_scale_backward(
    be: &Cuda,
    rows: usize,
    taps: usize,
    c: usize,
    cols: &CudaBuf,
    m: &CudaBuf,
    dout: &CudaBuf,
    dcols: &mut CudaBuf,
    dm: &mut CudaBuf,
) {
    let segs = rows * taps;
    let args = [int(segs), int(c), p(cols), p(m), p(dout), p(dcols), p(dm)];
    if c >= 32 {
        be.launch_warps("nsl_patch_scale_backward_warp", segs, &args);
    } else {
        be.launch_1d("nsl_patch_scale_backward_thread", segs, &args);
    }
}

/// One block per row (`patch_matmul` and its backward): launches `kernel` with the arguments
/// `(rows, taps, c, staged, bufs…)`, `staged` saying whether the row's `taps²` matrix goes to
/// shared memory (it fits in [`SHARED_MAX_FLOATS`]), with that many dynamic shared bytes.
fn launch_rows(be: &Cuda, kernel: &'static str, rows: usize, taps: usize, c: usize, bufs: &[Arg]) {
    let tt = taps * taps;
    let (staged, bytes) = if tt <= SHARED_MAX_FLOATS { (1, (tt * 4) as u32) } else { (0, 0) };
    let mut args = vec![int(rows), int(taps), int(c), Arg::I32(staged)];
    args.extend_from_slice(bufs);
    be.launch(kernel, (blocks(rows, 1), 1, 1), (THREADS, 1, 1), bytes, &args);
}

/// See [`nsl_core::Backend::patch_matmul`].
pub(crate) fn patch_matmul(
    be: &Cuda,
    rows: usize,
    taps: usize,
    c: usize,
    cols: &CudaBuf,
    m: &CudaBuf,
    out: &mut CudaBuf,
) {
    if taps * c == 0 {
        return;
    }
    launch_rows(be, "nsl_patch_matmul", rows, taps, c, &[p(cols), p(m), p(out)]);
}

/// See [`nsl_core::Backend::patch_matmul_backward`] (overwrites `dcols` and `dm`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch_matmul_backward(
    be: &Cuda,
    rows: usize,
    taps: usize,
    c: usize,
    cols: &CudaBuf,
    m: &CudaBuf,
    dout: &CudaBuf,
    dcols: &mut CudaBuf,
    dm: &mut CudaBuf,
) {
    if taps == 0 {
        return;
    }
    launch_rows(be, "nsl_patch_matmul_backward", rows, taps, c, &[p(cols), p(m), p(dout), p(dcols), p(dm)]);
}
