//! Strided-batch GEMM (see [`nsl_core::Gemm`]): register-tiled streaming kernels for the
//! skinny products of convolutions, `matrixmultiply::sgemm` for everything else.
//!
//! **Skinny products.** A convolution multiplies its `rows × K` patch matrix (rows = batch·H·W,
//! up to ~10⁵) with a small `K × N` kernel. matrixmultiply packs both operands for every call,
//! which for these shapes is a full extra pass over the big one and costs more than the
//! arithmetic. Two paths avoid it (tiles in [`kernels`]):
//! - [`small_b`] (`y = cols·w`, `dcols = dy·wᵀ`): `op(B)` is small, so it alone is packed
//!   (once, into zero-padded panels of the tile width) and `A` is streamed a few rows at a time,
//!   each output tile accumulated in registers over the whole inner dimension.
//! - [`outer`] (`dw += colsᵀ·dy`): the inner dimension is huge and `C` small; fixed chunks of
//!   the inner dimension each accumulate a private copy of `C` by outer products of the rows
//!   of `A` and `B`, then the copies are summed in chunk order.
//!
//! **matrixmultiply.** Transposes are expressed as row/column strides, so no operand is ever
//! copied. Each product is cut into fixed panels of rows (or columns) whose size depends only
//! on the shape; the (batch, panel) tasks run on rayon and each calls `sgemm` on its own block
//! of `C`. Panel sizes are multiples of 64, a multiple of every microkernel tile, so the tiling
//! (and hence every rounding) is the same as for one unsplit call.
//!
//! **Determinism.** Every split (tasks, chunks, tiles) depends only on the shape and on the
//! instruction set, never on the thread count, and partial results are combined in a fixed
//! order: results are bitwise reproducible and independent of the number of threads.
//!
//! `matrixmultiply` is used without its `threading` feature so that all parallelism is
//! rayon's (inside the backend's own pool) and never nested.

pub(crate) mod kernels;

use nsl_core::backend::Checked;
use nsl_core::Gemm;
use rayon::prelude::*;

use self::kernels::{Kernels, Mode, Out, Rows, ScaledSegment, Segment, Strided};
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

/// One task: batch item `b`, rows `i0..i0+mi` and columns `j0..j0+nj` of C.
#[derive(Clone, Copy)]
struct Task {
    b: usize,
    i0: usize,
    mi: usize,
    j0: usize,
    nj: usize,
}

/// See [`nsl_core::Backend::gemm`]. The [`Checked`] token says nsl-core checked that each
/// operand holds `(batch−1)·stride + size` values, which the unsafe block below relies on.
pub(crate) fn gemm(_: Checked, cpu: &Cpu, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let Gemm { m, n, k, batch, .. } = *g;
    if batch == 0 || m == 0 || n == 0 {
        return;
    }
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

    if let Mode::Tiles(ks) = kernels::mode() {
        if takes_small_b(g) {
            return small_b(cpu, ks, g, a, b, c);
        }
        if takes_outer(g) {
            return outer(cpu, ks, g, a, b, c);
        }
    }

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
        // SAFETY: nsl-core checked the lengths (the `Checked` token), so every element sgemm
        // touches is in bounds: A reads b·stride_a + (i0+i)·rsa + l·csa < (batch−1)·stride_a + m·k,
        // likewise B and C. Distinct
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

    schedule(cpu, batch, panels, flops * batch < PAR_MIN_FLOPS, batch > 1 && g.stride_c < m * n, |t| run(task(t)));
}

/// Runs `run(t)` for the `batch · per_item` tasks `t = b·per_item + i`: on the calling thread
/// when `small`, else on the backend's pool. With overlapping C blocks (`c_overlaps`, e.g.
/// `stride_c = 0` to accumulate a sum over the batch) the batch items run one after the other,
/// in order.
fn schedule(cpu: &Cpu, batch: usize, per_item: usize, small: bool, c_overlaps: bool, run: impl Fn(usize) + Sync) {
    let tasks = batch * per_item;
    if small || tasks == 1 {
        (0..tasks).for_each(run);
    } else if c_overlaps {
        cpu.install(|| {
            for bi in 0..batch {
                (bi * per_item..(bi + 1) * per_item).into_par_iter().for_each(&run);
            }
        });
    } else {
        cpu.install(|| (0..tasks).into_par_iter().for_each(&run));
    }
}

// ---- skinny products -------------------------------------------------------------------------

/// Fewest rows of `C` for [`small_b`] (a guess: few rows leave little packing to save).
const SMALL_B_MIN_M: usize = 128;
/// Largest `op(B)` (`k·n` elements) [`small_b`] packs; it should stay in L2.
const SMALL_B_MAX_B: usize = 1 << 18;
/// Widest `C` for [`small_b`] when the inner dimension is not small as well.
const SMALL_B_MAX_N: usize = 128;
/// Rows of `A` a [`small_b`] task streams together past every panel of `B` (their slab stays
/// in L1/L2); a multiple of every tile height.
const GROUP_ROWS: usize = 48;

/// Largest `C` (`m·n`) for [`outer`]: each task keeps a private copy.
const OUTER_MAX_C: usize = 1 << 18;
/// Smallest inner dimension for [`outer`], and its ratio to `max(m, n)`.
const OUTER_MIN_K: usize = 512;
const OUTER_K_RATIO: usize = 4;
/// Bound on the elements of all of [`outer`]'s partial copies of `C` together.
const OUTER_PARTIALS: usize = 1 << 21;
/// Steps of the inner dimension that [`outer`] runs over all tiles before moving on (their rows
/// of `A` and `B` stay in L2); chunks are multiples of it.
const OUTER_SUB: usize = 64;

/// `C = A·op(B)` with a small `op(B)` and many rows: convolution forward (`cols·w`) and
/// input gradient (`dy·wᵀ`).
fn takes_small_b(g: &Gemm) -> bool {
    !g.trans_a && g.m >= SMALL_B_MIN_M && g.k * g.n <= SMALL_B_MAX_B && (g.n <= SMALL_B_MAX_N || g.k <= SMALL_B_MAX_N)
}

/// `C = Aᵀ·B` with a long inner dimension and a small `C`: convolution weight gradient.
fn takes_outer(g: &Gemm) -> bool {
    g.trans_a && !g.trans_b && g.m * g.n <= OUTER_MAX_C && g.k >= OUTER_MIN_K && g.k >= OUTER_K_RATIO * g.m.max(g.n)
}

/// A panel of `w` columns from `q0` (the last one may reach past the end of the matrix), with
/// the row count `r` of its main tile.
#[derive(Clone, Copy)]
struct Panel {
    q0: usize,
    w: usize,
    r: usize,
}

/// Cuts `q` columns into panels of the widest tile, and the rest into the narrowest tile that
/// holds it.
fn panels(q: usize, menu: &[(usize, usize)]) -> Vec<Panel> {
    let (wmax, rmax) = *menu.last().expect("empty tile menu");
    let mut out: Vec<Panel> = (0..q / wmax).map(|i| Panel { q0: i * wmax, w: wmax, r: rmax }).collect();
    let rest = q % wmax;
    if rest > 0 {
        let &(w, r) = menu.iter().find(|&&(w, _)| w >= rest).expect("menu ends with its widest tile");
        out.push(Panel { q0: q - rest, w, r });
    }
    out
}

/// Calls `f(start, r)` over `0..len` in blocks of `rmax` rows, then 4, 2, 1 for the rest.
fn for_blocks(len: usize, rmax: usize, mut f: impl FnMut(usize, usize)) {
    let mut s = 0;
    while s < len {
        let rest = len - s;
        let r = if rest >= rmax {
            rmax
        } else if rest >= 4 {
            4
        } else if rest >= 2 {
            2
        } else {
            1
        };
        f(s, r);
        s += r;
    }
}

/// `op(B)` (`k × n`) packed into zero-padded `k × w` panels of the tile widths, for
/// [`PackedB::times`].
pub(crate) struct PackedB {
    pan: Vec<Panel>,
    k: usize,
    n: usize,
    npad: usize,
    data: Vec<f32>,
}

impl PackedB {
    /// Packs `op(B)` from `b` (`k × n` row-major, or `n × k` with `trans`).
    pub(crate) fn new(ks: &Kernels, b: &[f32], k: usize, n: usize, trans: bool) -> Self {
        let pan = panels(n, ks.menu);
        let npad = pan.last().map_or(0, |p| p.q0 + p.w);
        let mut data = vec![0f32; k * npad];
        for p in &pan {
            let cols = p.w.min(n - p.q0);
            for (l, row) in data[k * p.q0..k * (p.q0 + p.w)].chunks_exact_mut(p.w).enumerate() {
                if trans {
                    for (w, v) in row[..cols].iter_mut().enumerate() {
                        *v = b[(p.q0 + w) * k + l];
                    }
                } else {
                    row[..cols].copy_from_slice(&b[l * n + p.q0..l * n + p.q0 + cols]);
                }
            }
        }
        PackedB { pan, k, n, npad, data }
    }

    /// `C = alpha·A·op(B) + beta·C` on the calling thread for the `rows` rows of `a` (row
    /// stride `k`), streamed in groups of [`GROUP_ROWS`] rows past every panel through register
    /// tiles that run over the whole inner dimension (so an element's result depends on
    /// neither the rows nor the split).
    ///
    /// # Safety
    /// `c[i·n + j]` for `i < rows`, `j < n` is writable (and readable when `beta ≠ 0`) and
    /// nothing else accesses it meanwhile.
    pub(crate) unsafe fn times(&self, ks: &Kernels, a: &[f32], rows: usize, c: *mut f32, alpha: f32, beta: f32) {
        let (k, n) = (self.k, self.n);
        assert!(a.len() >= rows * k, "packed product: A has {} elements, needs {}", a.len(), rows * k);
        debug_assert_eq!(self.data.len(), k * self.npad);
        for g0 in (0..rows).step_by(GROUP_ROWS) {
            let g1 = (g0 + GROUP_ROWS).min(rows);
            for p in &self.pan {
                let main = ks.nn(p.r, p.w);
                for_blocks(g1 - g0, p.r, |s, r| {
                    let i = g0 + s;
                    let tile = if r == p.r { main } else { ks.nn(r, p.w) };
                    // SAFETY: rows i..i+r < rows of A hold k values each (asserted above); the
                    // panel holds k rows of p.w packed values; C rows i..i+r, columns
                    // q0..q0+cols < n are the caller's.
                    unsafe {
                        tile(
                            &[Segment {
                                len: k,
                                x: Strided { ptr: a.as_ptr().add(i * k), rs: k, cs: 1 },
                                y: Rows { ptr: self.data.as_ptr().add(k * p.q0), rs: p.w },
                            }],
                            Out { ptr: c.add(i * n + p.q0), ld: n, cols: p.w.min(n - p.q0), alpha, beta },
                        )
                    };
                });
            }
        }
    }

    /// `C = A·op(B)` on the calling thread for `rows` rows of an `A` given in stretches of
    /// `len` steps of the inner dimension: stretch `(ptr, l0)` holds `A[i][l0 + l] = ptr[i·rs + l]`
    /// (`l < len`), e.g. the window rows of a convolution read straight from a zero-padded
    /// input map. Stretches go in ascending `l0` and must cover every step of `A` that is not
    /// zero; each element is one chain of multiply-adds over them, so the result equals
    /// [`PackedB::times`] of the assembled rows.
    ///
    /// # Safety
    /// `ptr[i·rs + l]` is readable for every stretch, `i < rows`, `l < len`, and `l0 + len ≤ k`;
    /// `c` as for [`PackedB::times`] (`beta = 0`).
    pub(crate) unsafe fn times_stretches(
        &self,
        ks: &Kernels,
        stretches: &[(*const f32, usize)],
        len: usize,
        rs: usize,
        rows: usize,
        c: *mut f32,
    ) {
        let (k, n) = (self.k, self.n);
        assert!(stretches.iter().all(|&(_, l0)| l0 + len <= k), "packed product: stretch past the inner dimension");
        let mut segs: Vec<Segment> = Vec::with_capacity(stretches.len());
        for p in &self.pan {
            let main = ks.nn(p.r, p.w);
            for_blocks(rows, p.r, |i, r| {
                let tile = if r == p.r { main } else { ks.nn(r, p.w) };
                segs.clear();
                // SAFETY: the caller's contract for A; rows l0..l0+len ≤ k of the panel.
                segs.extend(stretches.iter().map(|&(a, l0)| unsafe {
                    Segment {
                        len,
                        x: Strided { ptr: a.add(i * rs), rs, cs: 1 },
                        y: Rows { ptr: self.data.as_ptr().add(k * p.q0 + l0 * p.w), rs: p.w },
                    }
                }));
                // SAFETY: as above; C rows i..i+r, columns q0..q0+cols < n are the caller's.
                unsafe {
                    tile(&segs, Out { ptr: c.add(i * n + p.q0), ld: n, cols: p.w.min(n - p.q0), alpha: 1.0, beta: 0.0 })
                };
            });
        }
    }

    /// `C = Σ_t diag(s_t)·A_t·op(B)_t` on the calling thread for `rows` rows, where `op(B)`'s
    /// inner dimension is cut into `taps.len()` stretches of `len` steps, tap `t = (x, s)`
    /// holding `A_t[i][l] = x[i·rs + l]` and its row scale `s_t[i] = s[i·s_rs]`: a convolution
    /// with a per-position tap scale (dynamic DNS), its windows read in place. Each tap is one
    /// chain of multiply-adds over `l`, scaled and added to the element in tap order.
    ///
    /// # Safety
    /// `x[i·rs + l]` and `s[i·s_rs]` readable for every tap, `i < rows`, `l < len`, and
    /// `taps.len()·len == k`; `c` as for [`PackedB::times`] (`beta = 0`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) unsafe fn times_scaled_taps(
        &self,
        ks: &Kernels,
        taps: &[(*const f32, *const f32)],
        len: usize,
        rs: usize,
        s_rs: usize,
        rows: usize,
        c: *mut f32,
    ) {
        let (k, n) = (self.k, self.n);
        assert_eq!(taps.len() * len, k, "packed product: taps do not cover the inner dimension");
        let mut segs: Vec<ScaledSegment> = Vec::with_capacity(taps.len());
        for p in &self.pan {
            let (sw, rmax) = ks.scaled_tile_for(p.w);
            let main = ks.scaled(rmax, sw);
            // the panel's columns h..h+sw (of p.w per packed row), while any is inside C
            for h in (0..p.w).step_by(sw).take_while(|&h| p.q0 + h < n) {
                for_blocks(rows, rmax, |i, r| {
                    let tile = if r == rmax { main } else { ks.scaled(r, sw) };
                    segs.clear();
                    // SAFETY: the caller's contract for the taps; rows t·len..(t+1)·len ≤ k of the panel.
                    segs.extend(taps.iter().enumerate().map(|(t, &(x, s))| unsafe {
                        ScaledSegment {
                            seg: Segment {
                                len,
                                x: Strided { ptr: x.add(i * rs), rs, cs: 1 },
                                y: Rows { ptr: self.data.as_ptr().add(k * p.q0 + t * len * p.w + h), rs: p.w },
                            },
                            s: s.add(i * s_rs),
                            s_rs,
                        }
                    }));
                    let (q0, cols) = (p.q0 + h, sw.min(n - p.q0 - h));
                    // SAFETY: as above; C rows i..i+r, columns q0..q0+cols ≤ n are the caller's.
                    unsafe { tile(&segs, Out { ptr: c.add(i * n + q0), ld: n, cols, alpha: 1.0, beta: 0.0 }) };
                });
            }
        }
    }
}

/// [`takes_small_b`] products: `op(B)` is packed once ([`PackedB`]); tasks of whole rows of
/// `C` stream `A` through it.
fn small_b(cpu: &Cpu, ks: &Kernels, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let Gemm { m, n, k, batch, alpha, beta, .. } = *g;
    let packs = if g.stride_b == 0 { 1 } else { batch };
    let bp: Vec<PackedB> = (0..packs).map(|bi| PackedB::new(ks, &b[bi * g.stride_b..], k, n, g.trans_b)).collect();

    // Tasks: (batch item, block of rows), as many as the matrixmultiply path would make.
    let flops = m * n * k;
    let want = TARGET_TASKS.div_ceil(batch).min(flops.div_ceil(MIN_TASK_FLOPS)).max(1);
    let chunk = m.div_ceil(want).next_multiple_of(GROUP_ROWS);
    let chunks = m.div_ceil(chunk);
    let cp = SendPtr(c.as_mut_ptr());
    let run = |t: usize| {
        let (bi, ch) = (t / chunks, t % chunks);
        let (i0, i1) = (ch * chunk, ((ch + 1) * chunk).min(m));
        // SAFETY: `gemm` checked that A holds rows i0..i1 of batch item bi and that C holds
        // its block; tasks own disjoint rows, or disjoint batch items with non-overlapping C
        // unless `schedule` runs them in order.
        unsafe {
            bp[bi % packs].times(
                ks,
                &a[bi * g.stride_a + i0 * k..],
                i1 - i0,
                cp.get().add(bi * g.stride_c + i0 * n),
                alpha,
                beta,
            )
        };
    };
    schedule(cpu, batch, chunks, flops * batch < PAR_MIN_FLOPS, batch > 1 && g.stride_c < m * n, run);
}

/// Accumulation of `Σ_l A[l]ᵀ·B[l]` (rows `A[l]` of `m`, `B[l]` of `n` values) into private
/// copies of `C` (see [`outer`]): vectors along the longer of `m` and `n`, broadcasts from
/// the other, so a copy is `p × qpad` (`p` the broadcast width, `q` the vector width, padded
/// to whole panels) and transposed when the vectors run along `m`.
pub(crate) struct OuterPlan {
    pan: Vec<Panel>,
    m: usize,
    n: usize,
    a_vec: bool,
    p: usize,
    q: usize,
    qpad: usize,
    tail_w: usize,
}

impl OuterPlan {
    pub(crate) fn new(ks: &Kernels, m: usize, n: usize) -> Self {
        let a_vec = m >= n;
        let (p, q) = if a_vec { (n, m) } else { (m, n) };
        let pan = panels(q, ks.menu);
        let qpad = pan.last().map_or(0, |p| p.q0 + p.w);
        let tail_w = pan.last().filter(|pn| pn.q0 + pn.w > q).map_or(0, |pn| pn.w);
        OuterPlan { pan, m, n, a_vec, p, q, qpad, tail_w }
    }

    /// Elements of one private copy of `C`.
    pub(crate) fn part_len(&self) -> usize {
        self.p * self.qpad
    }

    /// Scratch [`OuterPlan::accumulate`] needs.
    pub(crate) fn tail_len(&self) -> usize {
        OUTER_SUB * self.tail_w
    }

    /// `part += Σ_{l < len} A[l]ᵀ·B[l]` on the calling thread for `len` rows of `a` (`m` values
    /// each) and `b` (`n` values each), in steps of [`OUTER_SUB`] rows, `l` ascending.
    pub(crate) fn accumulate(
        &self,
        ks: &Kernels,
        a: &[f32],
        b: &[f32],
        len: usize,
        part: &mut [f32],
        tail: &mut [f32],
    ) {
        let (p, q, qpad) = (self.p, self.q, self.qpad);
        // u: rows of p broadcast values; v: rows of q vector values.
        let (u, v) = if self.a_vec { (b, a) } else { (a, b) };
        assert!(u.len() >= len * p && v.len() >= len * q && part.len() >= p * qpad, "outer product: short operands");
        assert!(tail.len() >= self.tail_len(), "outer product: short scratch");
        for s0 in (0..len).step_by(OUTER_SUB) {
            let steps = (s0 + OUTER_SUB).min(len) - s0;
            for pn in &self.pan {
                let y = if pn.q0 + pn.w <= q {
                    // SAFETY: rows s0..s0+steps < len of v have q ≥ q0 + w values.
                    Rows { ptr: unsafe { v.as_ptr().add(s0 * q + pn.q0) }, rs: q }
                } else {
                    // The last panel's columns, zero-padded to its width.
                    let cols = q - pn.q0;
                    for (l, row) in tail.chunks_exact_mut(pn.w).take(steps).enumerate() {
                        row[..cols].copy_from_slice(&v[(s0 + l) * q + pn.q0..(s0 + l + 1) * q]);
                    }
                    Rows { ptr: tail.as_ptr(), rs: pn.w }
                };
                let main = ks.acc(pn.r, pn.w);
                for_blocks(p, pn.r, |p0, r| {
                    let tile = if r == pn.r { main } else { ks.acc(r, pn.w) };
                    // SAFETY: x reads u[(s0 + l)·p + p0 + r] with l < steps, r < p − p0, in
                    // bounds as s0 + steps ≤ len (asserted); y as above; the tile of `part`
                    // (rows p0..p0+r < p, columns q0..q0+w ≤ qpad) is in bounds.
                    unsafe {
                        tile(
                            steps,
                            Strided { ptr: u.as_ptr().add(s0 * p + p0), rs: 1, cs: p },
                            y,
                            part.as_mut_ptr().add(p0 * qpad + pn.q0),
                            qpad,
                        )
                    };
                });
            }
        }
    }

    /// Sums the copies in `parts` into the first, in order (elementwise, so any split of the
    /// elements gives the same bits), then `C = alpha·sum + beta·C` (`C` is `m × n`).
    pub(crate) fn finish(&self, cpu: &Cpu, parts: &mut [f32], alpha: f32, beta: f32, c: &mut [f32]) {
        let part_len = self.part_len();
        self.finish_strided(cpu, parts, parts.len() / part_len, part_len, alpha, beta, c)
    }

    /// [`OuterPlan::finish`] of `count` copies at `parts[i·stride..]`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn finish_strided(
        &self,
        cpu: &Cpu,
        parts: &mut [f32],
        count: usize,
        stride: usize,
        alpha: f32,
        beta: f32,
        c: &mut [f32],
    ) {
        let part_len = self.part_len();
        assert!(count >= 1 && stride >= part_len, "outer product: bad partial copies");
        let (sum, rest) = parts.split_at_mut(part_len);
        let others = |e0: usize| (1..count).map(move |i| i * stride - part_len + e0);
        let add = |e0: usize, s: &mut [f32]| {
            for o0 in others(e0) {
                for (s, o) in s.iter_mut().zip(&rest[o0..]) {
                    *s += o;
                }
            }
        };
        if (count - 1) * part_len < crate::par::PAR_MIN {
            add(0, sum);
        } else {
            let ch = crate::par::CHUNK;
            cpu.install(|| sum.par_chunks_mut(ch).enumerate().for_each(|(i, s)| add(i * ch, s)));
        }
        let (n, qpad) = (self.n, self.qpad);
        for (i, row) in c[..self.m * n].chunks_exact_mut(n).enumerate() {
            for (j, cv) in row.iter_mut().enumerate() {
                let s = if self.a_vec { sum[j * qpad + i] } else { sum[i * qpad + j] };
                *cv = if beta == 0.0 { alpha * s } else { alpha * s + beta * *cv };
            }
        }
    }
}

/// [`takes_outer`] products, `C[i][j] = Σ_l A[l][i]·B[l][j]`: the inner dimension is cut into
/// chunks (a size-only split), each accumulating its own copy of `C` ([`OuterPlan`]); the
/// copies are then summed in chunk order. Batch items run one after the other.
fn outer(cpu: &Cpu, ks: &Kernels, g: &Gemm, a: &[f32], b: &[f32], c: &mut [f32]) {
    let Gemm { m, n, k, batch, alpha, beta, .. } = *g;
    let plan = OuterPlan::new(ks, m, n);
    let part_len = plan.part_len();
    let tasks = (OUTER_PARTIALS / part_len).clamp(1, TARGET_TASKS);
    let chunk = k.div_ceil(tasks).max(MIN_TASK_FLOPS.div_ceil(m * n)).next_multiple_of(OUTER_SUB);
    let chunks = k.div_ceil(chunk);
    let small = m * n * k < PAR_MIN_FLOPS;
    let mut parts = vec![0f32; chunks * part_len];

    for bi in 0..batch {
        let (ab, bb) = (&a[bi * g.stride_a..], &b[bi * g.stride_b..]);
        if bi > 0 {
            parts.fill(0.0);
        }
        let task = |t: usize, part: &mut [f32]| {
            let (l0, l1) = (t * chunk, ((t + 1) * chunk).min(k));
            let mut tail = vec![0f32; plan.tail_len()];
            plan.accumulate(ks, &ab[l0 * m..], &bb[l0 * n..], l1 - l0, part, &mut tail);
        };
        if small || chunks == 1 {
            parts.chunks_mut(part_len).enumerate().for_each(|(t, part)| task(t, part));
        } else {
            cpu.install(|| parts.par_chunks_mut(part_len).enumerate().for_each(|(t, part)| task(t, part)));
        }
        plan.finish(cpu, &mut parts, alpha, beta, &mut c[bi * g.stride_c..]);
    }
}
