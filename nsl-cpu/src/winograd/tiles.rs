//! Per-tile and per-block Winograd steps: a tile's 6×6 input window to its 36 transformed points
//! and back, the output and gradient tiles (with the optional row scale), and the loops over a
//! block of tiles, each compiled for AVX-512, AVX2 and the baseline.

use super::transforms::*;
use super::*;

// ---- per-tile transforms ----------------------------------------------------------------------

/// The indices `i < side` with `0 ≤ o + i < len`.
pub(super) fn span(o: isize, len: usize, side: usize) -> (usize, usize) {
    ((-o).clamp(0, side as isize) as usize, (len as isize - o).clamp(0, side as isize) as usize)
}

/// A square window of channel vectors in an NHWC map: entry `(i, j)` starts `origin + i·rs +
/// j·cs` floats into the map and is present for `i ∈ rows`, `j ∈ cols`; absent entries (padding,
/// past the map's edge) read as zero and are never written.
#[derive(Clone, Copy)]
pub(super) struct Patch {
    origin: isize,
    rs: usize,
    cs: usize,
    rows: (usize, usize),
    cols: (usize, usize),
}

impl Patch {
    /// The `side × side` window from pixel `(y0, x0)` of image `b` of a `h × w × c` map.
    fn new(b: usize, (y0, x0): (isize, isize), (h, w, c): (usize, usize, usize), side: usize) -> Self {
        let origin = (((b * h) as isize + y0) * w as isize + x0) * c as isize;
        Patch { origin, rs: w * c, cs: c, rows: span(y0, h, side), cols: span(x0, w, side) }
    }

    #[inline(always)]
    fn has(&self, i: usize, j: usize) -> bool {
        (self.rows.0..self.rows.1).contains(&i) && (self.cols.0..self.cols.1).contains(&j)
    }

    /// Whether every entry of the `side × side` window is present (no padding, not past the
    /// edge): the tile transforms are then instantiated without per-entry checks.
    fn full(&self, side: usize) -> bool {
        self.rows == (0, side) && self.cols == (0, side)
    }

    /// Offset of channel `ch` of entry `(i, j)`; non-negative for a present entry.
    #[inline(always)]
    fn at(&self, i: usize, j: usize, ch: usize) -> usize {
        (self.origin + (i * self.rs + j * self.cs + ch) as isize) as usize
    }
}

/// The 36 points `P = F·D·Fᵀ` (`ξ = i·6 + k`) of an `N × N` window `D` of channel vectors
/// (`d(r, col)`), `f` the 1-D transform `F` (`N → 6`), each point handed to `put(ξ, P[ξ])`.
///
/// # Safety
/// The CPU has the features of `S` (so do `d`, `f` and `put`, which are inlined here).
#[inline(always)]
pub(super) unsafe fn window_to_points<S: Simd, const N: usize>(
    d: impl Fn(usize, usize) -> S::V,
    f: impl Fn([S::V; N]) -> [S::V; T],
    mut put: impl FnMut(usize, S::V),
) {
    // Columns: t[i][col] = Σ_r F[i][r]·D[r][col]; rows: P[i·6 + k] = Σ_col F[k][col]·t[i][col].
    // SAFETY (whole block): the caller's contract.
    unsafe {
        let mut t = [[S::zero(); N]; T];
        for col in 0..N {
            for (ti, o) in t.iter_mut().zip(f(std::array::from_fn(
                #[inline(always)]
                |r| d(r, col),
            ))) {
                ti[col] = o;
            }
        }
        for (i, ti) in t.iter().enumerate() {
            for (k, o) in f(*ti).into_iter().enumerate() {
                put(i * T + k, o);
            }
        }
    }
}

/// The `N × N` window `W = F·P·Fᵀ` of 36 points (`pt(ξ)`), `f` the 1-D transform `F`
/// (`6 → N`): each entry of the window's rows `rows` handed to `put(r, col, W[r][col])`.
///
/// # Safety
/// As [`window_to_points`].
#[inline(always)]
pub(super) unsafe fn points_to_window<S: Simd, const N: usize>(
    pt: impl Fn(usize) -> S::V,
    f: impl Fn([S::V; T]) -> [S::V; N],
    rows: (usize, usize),
    mut put: impl FnMut(usize, usize, S::V),
) {
    // Columns: t[r][k] = Σ_i F[r][i]·P[i·6 + k]; rows: W[r][col] = Σ_k F[col][k]·t[r][k].
    // SAFETY (whole block): the caller's contract.
    unsafe {
        let mut t = [[S::zero(); T]; N];
        for k in 0..T {
            for (tr, o) in t.iter_mut().zip(f(std::array::from_fn(
                #[inline(always)]
                |i| pt(i * T + k),
            ))) {
                tr[k] = o;
            }
        }
        for (r, tr) in t.iter().enumerate().take(rows.1).skip(rows.0) {
            for (col, o) in f(*tr).into_iter().enumerate() {
                put(r, col, o);
            }
        }
    }
}

// Boilerplate: the four tile steps below are one call each of `window_to_points` or
// `points_to_window` (the transforms' logic) with their own load, 1-D transform and store, so
// their parameter lists and closures have the same shape.

/// `v[ξ] = (Bᵀ d B)[ξ]` for channels `ch..ch + L`: `d` is the 6×6 window `p` of `x` (zero where
/// absent), `v[ξ]` at `v + ξ·xs`. `full` (a literal, see [`by_chunks_full!`]): `p.full(6)`.
///
/// # Safety
/// The CPU has the features of `S`; present entries of `p` and `v[ξ]` are in bounds.
#[inline(always)]
pub(super) unsafe fn input_tile<S: Simd>(x: *const f32, p: Patch, v: *mut f32, xs: usize, full: bool, ch: usize) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        window_to_points::<S, T>(
            #[inline(always)]
            |r, col| if full || p.has(r, col) { S::load(x.add(p.at(r, col, ch))) } else { S::zero() },
            #[inline(always)]
            |d| bt::<S>(d),
            #[inline(always)]
            |xi, o| S::store(v.add(xi * xs + ch), o),
        )
    }
}

/// A per-output-row scale `q[pixel]` over the 4×4 output window of a tile (`p` indexes the
/// pixels: a window of a one-channel map), applied as outputs are written or gradients read.
#[derive(Clone, Copy)]
pub(super) struct RowScale {
    q: *const f32,
    p: Patch,
}

impl RowScale {
    /// `v · q[pixel (r, col)]`, or `v` without a scale.
    ///
    /// # Safety
    /// The CPU has the features of `S`; pixel `(r, col)` is present and `q` holds it.
    #[inline(always)]
    unsafe fn apply<S: Simd>(q: Option<RowScale>, r: usize, col: usize, v: S::V) -> S::V {
        match q {
            // SAFETY: the caller's contract.
            Some(q) => unsafe { S::mul(v, S::splat(*q.q.add(q.p.at(r, col, 0)))) },
            None => v,
        }
    }
}

/// `M = A dY Aᵀ` for channels `ch..ch + L`: `dY` is the 4×4 window `p` of `dy` (zero where
/// absent; rows times `q` with a row scale), `M[ξ]` goes to `m + ξ·xs`. `full`: `p.full(4)`.
///
/// # Safety
/// As [`input_tile`], and `q` holds the window's present pixels.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn output_grad_tile<S: Simd>(
    dy: *const f32,
    p: Patch,
    q: Option<RowScale>,
    m: *mut f32,
    xs: usize,
    full: bool,
    ch: usize,
) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        window_to_points::<S, M>(
            #[inline(always)]
            |r, col| {
                if full || p.has(r, col) {
                    RowScale::apply::<S>(q, r, col, S::load(dy.add(p.at(r, col, ch))))
                } else {
                    S::zero()
                }
            },
            #[inline(always)]
            |y| a::<S>(y),
            #[inline(always)]
            |xi, o| S::store(m.add(xi * xs + ch), o),
        )
    }
}

/// `Y = Aᵀ M A` for channels `ch..ch + L` (`M[ξ]` at `m + ξ·xs`), written to the present
/// entries of the 4×4 window `p` of `y` (rows times `q` with a row scale). `full`: `p.full(4)`.
///
/// # Safety
/// As [`output_grad_tile`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn output_tile<S: Simd>(
    m: *const f32,
    xs: usize,
    y: *mut f32,
    p: Patch,
    q: Option<RowScale>,
    full: bool,
    ch: usize,
) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        points_to_window::<S, M>(
            #[inline(always)]
            |xi| S::load(m.add(xi * xs + ch)),
            #[inline(always)]
            |v| at::<S>(v),
            p.rows,
            #[inline(always)]
            |r, col, o| {
                if full || p.has(r, col) {
                    S::store(y.add(p.at(r, col, ch)), RowScale::apply::<S>(q, r, col, o))
                }
            },
        )
    }
}

/// Adds `B dV Bᵀ` for channels `ch..ch + L` (`dV[ξ]` at `v + ξ·xs`) into the present entries
/// of the 6×6 window `p` of `dx`: into the window's first `seen.0` rows and first `seen.1`
/// columns, which earlier tiles wrote, and over whatever the others hold (so `dx` needs no
/// zeroing). `full`: `p.full(6)`.
///
/// # Safety
/// As [`input_tile`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn input_grad_tile<S: Simd>(
    v: *const f32,
    xs: usize,
    dx: *mut f32,
    p: Patch,
    seen: (usize, usize),
    full: bool,
    ch: usize,
) {
    // SAFETY (whole block): the caller's contract.
    unsafe {
        points_to_window::<S, T>(
            #[inline(always)]
            |xi| S::load(v.add(xi * xs + ch)),
            #[inline(always)]
            |w| b::<S>(w),
            p.rows,
            #[inline(always)]
            |r, col, o| {
                if full || p.has(r, col) {
                    let q = dx.add(p.at(r, col, ch));
                    S::store(q, if r < seen.0 || col < seen.1 { S::add(S::load(q), o) } else { o });
                }
            },
        )
    }
}

/// Calls `$f::<V>(args…, ch)` over the channels `0..len`: vectors of `$s`, then of `$h`, then
/// single lanes.
macro_rules! by_chunks {
    ($len:expr, $s:ty, $h:ty, $f:ident($($arg:expr),*)) => {{
        let len = $len;
        let mut ch = 0;
        while ch + <$s as Simd>::L <= len {
            $f::<$s>($($arg,)* ch);
            ch += <$s as Simd>::L;
        }
        while ch + <$h as Simd>::L <= len {
            $f::<$h>($($arg,)* ch);
            ch += <$h as Simd>::L;
        }
        while ch < len {
            $f::<Lane1>($($arg,)* ch);
            ch += 1;
        }
    }};
}

/// [`by_chunks!`] with one more argument before `ch`, a literal `full`: `true` where `$full`
/// holds, so that the tile transforms compile without their per-entry checks, else `false`.
macro_rules! by_chunks_full {
    ($full:expr, $len:expr, $s:ty, $h:ty, $f:ident($($arg:expr),*)) => {
        if $full {
            by_chunks!($len, $s, $h, $f($($arg,)* true))
        } else {
            by_chunks!($len, $s, $h, $f($($arg,)* false))
        }
    };
}

// ---- per-block transforms ---------------------------------------------------------------------
//
// Generic over the vector `S` (and `H`, half as wide, for the channels left over); [`wide!`]
// instantiates them for the widest instruction set the CPU has.

/// `(b, ty, tx)` of the `j`-th tile from global tile row `tr0`.
#[inline(always)]
pub(super) fn tile_at(tl: &Tiles, tr0: usize, j: usize) -> (usize, usize, usize) {
    let tr = tr0 + j / tl.tw;
    (tr / tl.th, tr % tl.th, j % tl.tw)
}

/// The 6×6 input window of tile `(b, ty, tx)` in the `h × w × c` maps (image `b` counted from
/// the slice's first).
pub(super) fn input_patch(g: &Window, (b, ty, tx): (usize, usize, usize)) -> Patch {
    let (y0, x0) = ((ty * M) as isize - g.pad_top as isize, (tx * M) as isize - g.pad_left as isize);
    Patch::new(b, (y0, x0), (g.h, g.w, g.c), T)
}

/// The 4×4 output window of tile `(b, ty, tx)` in `ho × wo × n` maps.
pub(super) fn output_patch(g: &Window, n: usize, (b, ty, tx): (usize, usize, usize)) -> Patch {
    Patch::new(b, ((ty * M) as isize, (tx * M) as isize), (g.ho, g.wo, n), M)
}

/// Input transform of the `tiles` tiles (whole tile rows) from tile row `tr0` into `v`.
#[inline(always)]
pub(super) fn input_block<S: Simd, H: Simd>(
    g: &Window,
    x: &[f32],
    tl: &Tiles,
    tr0: usize,
    tiles: usize,
    v: &mut [f32],
) {
    let (c, vs) = (g.c, tl.stride(g.c));
    assert!(x.len() >= g.input_len() && v.len() >= XI * vs && tiles <= tl.block_len());
    for j in 0..tiles {
        let p = input_patch(g, tile_at(tl, tr0, j));
        let (x, v) = (x.as_ptr(), v.as_mut_ptr().wrapping_add(j * c));
        // SAFETY: present window entries lie in image b of x, v[ξ][j] in v (asserted above);
        // the caller ([`wide!`]) runs this with the features of S and H.
        unsafe { by_chunks_full!(p.full(T), c, S, H, input_tile(x, p, v, vs)) }
    }
}

/// Output transform of `m` into `y`, the block's output rows (from tile row `tr0`), times the
/// row scale `q` (all rows) if given.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn output_block<S: Simd, H: Simd>(
    g: &Window,
    n: usize,
    tl: &Tiles,
    tr0: usize,
    tiles: usize,
    m: &[f32],
    q: Option<&[f32]>,
    y: &mut [f32],
) {
    let ms = tl.stride(n);
    let (b0, ty0, _) = tile_at(tl, tr0, 0);
    // `y` starts at output row `ty0·4` of image `b0`.
    let skip = (b0 * g.ho + ty0 * M) * g.wo * n;
    assert!(m.len() >= XI * ms && tiles <= tl.block_len() && q.is_none_or(|q| q.len() >= g.rows()));
    for j in 0..tiles {
        let tile = tile_at(tl, tr0, j);
        let p = output_patch(g, n, tile);
        let end = p.at(p.rows.1 - 1, p.cols.1 - 1, n);
        assert!(p.at(0, 0, 0) >= skip && end <= skip + y.len());
        let yp = y.as_mut_ptr().wrapping_sub(skip);
        let q = q.map(|q| RowScale { q: q.as_ptr(), p: output_patch(g, 1, tile) });
        let m = m.as_ptr().wrapping_add(j * n);
        // SAFETY: the window's present entries lie in y (asserted above), its pixels in q,
        // m[ξ][j] in m.
        unsafe { by_chunks_full!(p.full(M), n, S, H, output_tile(m, ms, yp, p, q)) }
    }
}

/// `m = A·dY·Aᵀ` of the block's tiles, `dY` rows times the row scale `q` if given.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn output_grad_block<S: Simd, H: Simd>(
    g: &Window,
    n: usize,
    dy: &[f32],
    q: Option<&[f32]>,
    tl: &Tiles,
    tr0: usize,
    tiles: usize,
    m: &mut [f32],
) {
    let ms = tl.stride(n);
    assert!(dy.len() >= g.rows() * n && m.len() >= XI * ms && tiles <= tl.block_len());
    assert!(q.is_none_or(|q| q.len() >= g.rows()));
    for j in 0..tiles {
        let tile = tile_at(tl, tr0, j);
        let p = output_patch(g, n, tile);
        let q = q.map(|q| RowScale { q: q.as_ptr(), p: output_patch(g, 1, tile) });
        let (dy, m) = (dy.as_ptr(), m.as_mut_ptr().wrapping_add(j * n));
        // SAFETY: present entries lie in image b of dy, their pixels in q, m[ξ][j] in m
        // (asserted above).
        unsafe { by_chunks_full!(p.full(M), n, S, H, output_grad_tile(dy, p, q, m, ms)) }
    }
}

/// Adds `B·dV·Bᵀ` (`dV` in `v`) of the block's tiles, in order, into `dx` (images from `b0`);
/// the entries that no earlier tile of their image wrote are overwritten. Every input entry
/// lies in some tile's window (stride 1, 3×3), so the image's tiles, in order, write all of
/// it.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(super) fn input_grad_block<S: Simd, H: Simd>(
    g: &Window,
    tl: &Tiles,
    tr0: usize,
    b0: usize,
    tiles: usize,
    v: &[f32],
    dx: &mut [f32],
) {
    let (c, vs) = (g.c, tl.stride(g.c));
    let (b_last, ..) = tile_at(tl, tr0, tiles.max(1) - 1);
    assert!(v.len() >= XI * vs && tiles <= tl.block_len() && dx.len() >= (b_last + 1 - b0) * g.h * g.w * c);
    for j in 0..tiles {
        let (b, ty, tx) = tile_at(tl, tr0, j);
        let p = input_patch(g, (b - b0, ty, tx));
        // Windows overlap their neighbours' by T − M = 2 rows and columns; the tiles above
        // and to the left came first.
        let seen = (if ty > 0 { T - M } else { 0 }, if tx > 0 { T - M } else { 0 });
        let (v, dx) = (v.as_ptr().wrapping_add(j * c), dx.as_mut_ptr());
        // SAFETY: present entries lie in image b − b0 of dx (asserted above), v[ξ][j] in v.
        unsafe { by_chunks_full!(p.full(T), c, S, H, input_grad_tile(v, vs, dx, p, seen)) }
    }
}
