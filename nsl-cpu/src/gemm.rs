//! Strided-batch GEMM on top of `matrixmultiply::sgemm` (see [`nsl_core::Gemm`]).
//!
//! Transposes are expressed as row/column strides, so no operand is ever copied. Each product
//! is cut into fixed panels of rows (or columns) whose size depends only on the shape; the
//! (batch, panel) tasks run on rayon and each calls `sgemm` on its own block of `C`. Panel
//! sizes are multiples of 64, a multiple of every microkernel tile, so the tiling (and hence
//! every rounding) is the same as for one unsplit call: results do not depend on the number
//! of threads.
//!
//! `matrixmultiply` is used without its `threading` feature so that all parallelism is
//! rayon's (inside the backend's own pool) and never nested.

use nsl_core::Gemm;
use rayon::prelude::*;

use crate::Cpu;

/// Flops (m·n·k, all batches) below which the product runs on the calling thread.
const PAR_MIN_FLOPS: usize = 1 << 18;
/// Target number of tasks for a whole call (enough to balance up to a few dozen threads).
const TARGET_TASKS: usize = 64;
/// Panel granularity along the split dimension.
const PANEL_ALIGN: usize = 64;
/// Minimum flops per task.
const MIN_TASK_FLOPS: usize = 1 << 17;

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: tasks write disjoint blocks of C (checked by construction below).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Send` wrapper).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Minimum buffer length for `batch` operands of `len` elements at stride `stride`.
fn needed(batch: usize, stride: usize, len: usize) -> usize {
    if len == 0 {
        0
    } else {
        (batch - 1) * stride + len
    }
}

/// One task: batch item `b`, rows `i0..i0+mi` and columns `j0..j0+nj` of C.
#[derive(Clone, Copy)]
struct Task {
    b: usize,
    i0: usize,
    mi: usize,
    j0: usize,
    nj: usize,
}

/// See [`nsl_core::Backend::gemm`].
pub(crate) fn gemm(cpu: &Cpu, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let Gemm { m, n, k, batch, .. } = *g;
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
    assert!(
        c.len() >= needed(batch, g.stride_c, m * n),
        "gemm: C has {} elements, {g:?} needs {}",
        c.len(),
        needed(batch, g.stride_c, m * n)
    );
    if k == 0 {
        // C = beta·C (beta = 0 ignores whatever C held).
        for bi in 0..batch {
            let cb = &mut c[bi * g.stride_c..bi * g.stride_c + m * n];
            if g.beta == 0.0 {
                cb.fill(0.0);
            } else {
                cb.iter_mut().for_each(|v| *v *= g.beta);
            }
        }
        return;
    }
    assert!(
        a.len() >= needed(batch, g.stride_a, m * k),
        "gemm: A has {} elements, {g:?} needs {}",
        a.len(),
        needed(batch, g.stride_a, m * k)
    );
    assert!(
        b.len() >= needed(batch, g.stride_b, k * n),
        "gemm: B has {} elements, {g:?} needs {}",
        b.len(),
        needed(batch, g.stride_b, k * n)
    );

    let (rsa, csa) = if g.trans_a { (1, m) } else { (k, 1) };
    let (rsb, csb) = if g.trans_b { (1, k) } else { (n, 1) };

    let flops = m * n * k;
    // Panels per product: enough tasks overall, but not below MIN_TASK_FLOPS each.
    let want = TARGET_TASKS.div_ceil(batch).min(flops.div_ceil(MIN_TASK_FLOPS)).max(1);
    let split_rows = m >= n;
    let len = if split_rows { m } else { n };
    let panel = len.div_ceil(want).next_multiple_of(PANEL_ALIGN).min(len);
    let panels = len.div_ceil(panel);

    let task = |t: usize| -> Task {
        let (bi, p) = (t / panels, t % panels);
        let (s0, s1) = (p * panel, ((p + 1) * panel).min(len));
        if split_rows {
            Task { b: bi, i0: s0, mi: s1 - s0, j0: 0, nj: n }
        } else {
            Task { b: bi, i0: 0, mi: m, j0: s0, nj: s1 - s0 }
        }
    };

    let cp = SendPtr(c.as_mut_ptr());
    let run = |t: Task| {
        // SAFETY: lengths were checked above, so every element sgemm touches is in bounds:
        // A reads (b·stride_a + (i0+i)·rsa + l·csa) < needed(..), likewise B and C. Distinct
        // tasks write disjoint blocks of C (different panels, or different batch items with
        // non-overlapping C when run in parallel, see below).
        unsafe {
            let ap = a.as_ptr().add(t.b * g.stride_a + t.i0 * rsa);
            let bp = b.as_ptr().add(t.b * g.stride_b + t.j0 * csb);
            let cptr = cp.get().add(t.b * g.stride_c + t.i0 * n + t.j0);
            matrixmultiply::sgemm(
                t.mi,
                k,
                t.nj,
                g.alpha,
                ap,
                rsa as isize,
                csa as isize,
                bp,
                rsb as isize,
                csb as isize,
                g.beta,
                cptr,
                n as isize,
                1,
            );
        }
    };

    let tasks = batch * panels;
    // With batch > 1 and overlapping C blocks (e.g. stride_c = 0 to accumulate a sum over the
    // batch), the products are applied one batch item after the other, in order.
    let c_overlaps = batch > 1 && g.stride_c < m * n;
    if flops * batch < PAR_MIN_FLOPS || tasks == 1 {
        (0..tasks).for_each(|t| run(task(t)));
    } else if c_overlaps {
        cpu.install(|| {
            for bi in 0..batch {
                (bi * panels..(bi + 1) * panels).into_par_iter().for_each(|t| run(task(t)));
            }
        });
    } else {
        cpu.install(|| (0..tasks).into_par_iter().for_each(|t| run(task(t))));
    }
}
