//! Strided-batch GEMM (see [`nsl_core::Gemm`]) with the tiled kernel of `kernels/gemm.cu`.
//!
//! The kernel is our own: 64×64 tiles of C per block of 256 threads, 16-deep shared-memory
//! panels, a 4×4 register block per thread, transposes handled by the load pattern, batch items
//! on `gridDim.z`, and `beta = 0` writing C without reading it. `cust` offers no cuBLAS binding,
//! so cuBLAS (and TF32 tensor cores through it, or a WMMA/`mma.sync` kernel of our own) is not
//! used. **Whether to switch is to be measured on a lent GPU**: this kernel is plain FP32 FMA
//! and will be well below cuBLAS on H100/H200; TF32 would also change numerics (10-bit
//! mantissa inputs), which the CPU≡CUDA tolerances would have to allow.
//!
//! Batch items whose C blocks overlap (`stride_c < m·n`, e.g. `stride_c = 0` to sum products
//! into one C) are launched one after the other, in order, like the CPU backend applies them.

use nsl_core::Gemm;

use crate::launch::{blocks, int, Arg};
use crate::{Cuda, CudaBuf};

const TILE: usize = 64;
const MAX_GRID_YZ: usize = 65_535;

/// Minimum buffer length for `batch` operands of `len` elements at stride `stride`.
fn needed(batch: usize, stride: usize, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (batch - 1) * stride + len
    }
}

/// See [`nsl_core::Backend::gemm`].
pub(crate) fn gemm(be: &Cuda, g: &Gemm, a: &CudaBuf, b: &CudaBuf, c: &mut CudaBuf) {
    let Gemm { m, n, k, batch, .. } = *g;
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    let need_c = needed(batch, g.stride_c, m * n);
    assert!(c.len() >= need_c, "nsl-cuda: gemm: C has {} elements, {g:?} needs {need_c}", c.len());
    if k > 0 {
        let need_a = needed(batch, g.stride_a, m * k);
        let need_b = needed(batch, g.stride_b, k * n);
        assert!(a.len() >= need_a, "nsl-cuda: gemm: A has {} elements, {g:?} needs {need_a}", a.len());
        assert!(b.len() >= need_b, "nsl-cuda: gemm: B has {} elements, {g:?} needs {need_b}", b.len());
    }
    let kernel = match (g.trans_a, g.trans_b) {
        (false, false) => "nsl_gemm_nn",
        (false, true) => "nsl_gemm_nt",
        (true, false) => "nsl_gemm_tn",
        (true, true) => "nsl_gemm_tt",
    };
    let grid_n = n.div_ceil(TILE);
    assert!(grid_n <= MAX_GRID_YZ, "nsl-cuda: gemm: n = {n} is too large for one launch");
    let overlap = batch > 1 && g.stride_c < m * n;
    let per_launch = if overlap { 1 } else { MAX_GRID_YZ };
    let offset = |base: u64, z: usize, stride: usize| base + (z * stride * 4) as u64;
    let mut z0 = 0;
    while z0 < batch {
        let zc = per_launch.min(batch - z0);
        be.launch(
            kernel,
            (blocks(m, TILE), grid_n as u32, zc as u32),
            (crate::launch::THREADS, 1, 1),
            0,
            &[
                int(m),
                int(n),
                int(k),
                Arg::F32(g.alpha),
                Arg::F32(g.beta),
                Arg::Ptr(if k > 0 { offset(a.ptr(), z0, g.stride_a) } else { a.ptr() }),
                Arg::Ptr(if k > 0 { offset(b.ptr(), z0, g.stride_b) } else { b.ptr() }),
                Arg::Ptr(offset(c.ptr(), z0, g.stride_c)),
                Arg::I64(g.stride_a as i64),
                Arg::I64(g.stride_b as i64),
                Arg::I64(g.stride_c as i64),
            ],
        );
        z0 += zc;
    }
}
