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

/// Whether a row's `taps²` matrix goes to shared memory, and the dynamic shared bytes.
fn staging(taps: usize) -> (i32, u32) {
    let tt = taps * taps;
    if tt <= SHARED_MAX_FLOATS {
        (1, (tt * 4) as u32)
    } else {
        (0, 0)
    }
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
    let pl = taps * c;
    if pl == 0 {
        return;
    }
    let (shared, bytes) = staging(taps);
    be.launch(
        "nsl_patch_matmul",
        (blocks(rows, 1), 1, 1),
        (THREADS, 1, 1),
        bytes,
        &[int(rows), int(taps), int(c), Arg::I32(shared), p(cols), p(m), p(out)],
    );
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
    let (shared, bytes) = staging(taps);
    be.launch(
        "nsl_patch_matmul_backward",
        (blocks(rows, 1), 1, 1),
        (THREADS, 1, 1),
        bytes,
        &[int(rows), int(taps), int(c), Arg::I32(shared), p(cols), p(m), p(dout), p(dcols), p(dm)],
    );
}
