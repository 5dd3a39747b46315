//! Convolution geometry: `im2col` and its adjoint `col2im` (`kernels/conv.cu`; formulas on
//! [`nsl_core::Backend::im2col`]). `col2im` is a gather — each input element sums the patch
//! entries that read it, in the CPU's (ky, kx) order — so it needs no atomics. The convolution
//! itself (`conv2d`, with or without a DNS patch scale) and its backward are the tiled GEMM of
//! `kernels/gemm.cu` with operands read in place (implicit im2col), see [`conv2d_backward`]:
//! each runs through `launch_tiled`, which picks the 128×32-tile twin for outputs of at most 32
//! columns and splits the reduction when the output is too few tiles (split-k, see `gemm.rs`;
//! the weight gradient sums over all batch·h·w rows).

use nsl_core::{Gemm, Window};

use crate::gemm::{split_k, sum_split_k};
use crate::launch::{blocks, int, p, Arg, Win, THREADS, TILE_M, TILE_N};
use crate::{Cuda, CudaBuf};

/// See [`nsl_core::Backend::im2col`].
pub(crate) fn im2col(be: &Cuda, g: &Window, x: &CudaBuf, cols: &mut CudaBuf) {
    be.launch_1d("nsl_im2col", g.rows() * g.patch_len(), &[Arg::Win(Win::new(g)), p(x), p(cols)]);
}

/// See [`nsl_core::Backend::col2im`] (overwrites `dx`).
pub(crate) fn col2im(be: &Cuda, g: &Window, dcols: &CudaBuf, dx: &mut CudaBuf) {
    be.launch_1d("nsl_col2im", g.input_len(), &[Arg::Win(Win::new(g)), p(dcols), p(dx)]);
}

/// Launch one of the tiled convolution kernels of `kernels/gemm.cu` for an `m × cols` output
/// summed over `depth`: `args` are the kernel's leading arguments, then (out, slice, beta) are
/// added. `kernel` names the 128×64-tile kernel and its 128×32-tile twin, used when
/// `cols ≤ 32` (half the 64-wide tile would be padding). The sum is split along `depth` when
/// the output alone is too few tiles ([`split_k`]). `accumulate`: `out += result` (else
/// `out = result`).
fn launch_tiled(
    be: &Cuda,
    kernel: [&'static str; 2],
    (m, cols, depth): (usize, usize, usize),
    args: &[Arg],
    out: &mut CudaBuf,
    accumulate: bool,
) {
    let (kernel, tile_n) = if cols <= TILE_N / 2 { (kernel[1], TILE_N / 2) } else { (kernel[0], TILE_N) };
    let tiles = (blocks(m, TILE_M), blocks(cols, tile_n));
    let split = split_k(be, (tiles.0 * tiles.1) as usize, depth);
    let grid = (tiles.0, tiles.1, split.splits as u32);
    let beta = if accumulate { 1.0 } else { 0.0 };
    let with = |out: u64, beta: f32| [args, &[Arg::Ptr(out), int(split.slice), Arg::F32(beta)]].concat();
    if split.splits == 1 {
        be.launch(kernel, grid, (THREADS, 1, 1), 0, &with(out.ptr(), beta));
    } else {
        let part = be.scratch::<f32>(kernel, split.splits * m * cols);
        be.launch(kernel, grid, (THREADS, 1, 1), 0, &with(part.ptr(), 0.0));
        sum_split_k(be, m * cols, split.splits, &part, 1.0, beta, out.ptr());
    }
}

/// See [`nsl_core::Backend::conv2d`]: `y = (s ⊙ im2col(x))·w` with the patch matrix never
/// materialised (overwrites `y`).
pub(crate) fn conv2d(be: &Cuda, g: &Window, n: usize, x: &CudaBuf, w: &CudaBuf, s: Option<&CudaBuf>, y: &mut CudaBuf) {
    let rows = g.rows();
    let args = [Arg::Win(Win::new(g)), int(n), p(x), p(w), s.map_or(Arg::Ptr(0), p)];
    launch_tiled(be, ["nsl_conv2d", "nsl_conv2d_n32"], (rows, n, g.patch_len()), &args, y, false);
}

/// See [`nsl_core::Backend::conv2d_backward`]: three fused kernels, none materialising a patch
/// matrix — `dw += (s ⊙ P)ᵀ·dy` and `dx = col2im(s ⊙ dy·wᵀ)` as tiled products reading `x`, `dy`
/// and `w` in place, and (with a scale) `ds` from `dP = dy·wᵀ` (a GEMM into scratch) dotted with
/// the patches, one thread per (row, tap).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward(
    be: &Cuda,
    g: &Window,
    n: usize,
    x: &CudaBuf,
    w: &CudaBuf,
    s: Option<&CudaBuf>,
    dy: &CudaBuf,
    dx: &mut CudaBuf,
    dw: &mut CudaBuf,
    ds: Option<&mut CudaBuf>,
) {
    let (rows, pl) = (g.rows(), g.patch_len());
    let win = || Arg::Win(Win::new(g));
    let sp = || s.map_or(Arg::Ptr(0), p);
    launch_tiled(
        be,
        ["nsl_conv2d_dw", "nsl_conv2d_dw_n32"],
        (pl, n, rows),
        &[win(), int(n), p(x), sp(), p(dy)],
        dw,
        true,
    );
    let pixels = g.batch * g.h * g.w;
    launch_tiled(
        be,
        ["nsl_conv2d_dx", "nsl_conv2d_dx_n32"],
        (pixels, g.c, g.taps() * n),
        &[win(), int(n), p(w), sp(), p(dy)],
        dx,
        false,
    );
    if let (Some(_), Some(ds)) = (s, ds) {
        // dP = dy·wᵀ through the tiled GEMM, then one thread per (row, tap) dots it with x.
        let mut dp = CudaBuf(be.scratch("conv2d_backward (dy·wᵀ)", rows * pl));
        let mut dp_gemm = Gemm::new(rows, pl, n);
        dp_gemm.trans_b = true;
        crate::gemm::gemm(be, &dp_gemm, dy, w, &mut dp);
        be.launch_1d("nsl_conv2d_ds", rows * g.taps(), &[win(), p(x), p(&dp), p(ds)]);
    }
}
