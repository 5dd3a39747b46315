//! Register-blocked micro-kernels for the skinny products of [`super`].
//!
//! One generic body, `acc[r][w] += x(r, l) · y(l, w)` over `l`, with `R × W` accumulators
//! held in registers: `x` is read one scalar at a time (broadcast), `y` one row of `W`
//! contiguous values at a time (vector loads). The body is written against a tiny [`Simd`]
//! trait (zmm, ymm and xmm vectors from `std::arch`) and compiled three times: for AVX-512,
//! for AVX2 + FMA (both through `#[target_feature]`, so no `-C target-cpu` is needed) and for
//! the baseline target (SSE2 multiply + add on x86-64, plain arrays elsewhere). Explicit
//! vectors rather than auto-vectorised `[[f32; W]; R]` arrays: LLVM vectorised those loops but
//! kept the accumulators in memory, storing them back on every step. The instruction set is
//! detected once ([`mode`]); [`Kernels`] lists the tile shapes compiled for it.
//!
//! Every output element is one sequential chain of multiply-adds over `l` whatever `R`, `W`
//! or the position of its tile, so the tiling never changes a result.

use std::sync::OnceLock;

/// The broadcast operand: `x(r, l) = ptr[r·rs + l·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Strided {
    pub ptr: *const f32,
    pub rs: usize,
    pub cs: usize,
}

/// The vector operand: `y(l, w) = ptr[l·rs + w]` for `w < W` (all `W` must be readable).
#[derive(Clone, Copy)]
pub(super) struct Rows {
    pub ptr: *const f32,
    pub rs: usize,
}

/// One stretch of the inner dimension: `len` steps of `x` against `y`.
#[derive(Clone, Copy)]
pub(super) struct Segment {
    pub len: usize,
    pub x: Strided,
    pub y: Rows,
}

/// One tap of a per-row-scaled product: the steps of `seg` from zero, then added into the
/// tile times `scale(r) = s[r·s_rs]`.
#[derive(Clone, Copy)]
pub(super) struct ScaledSegment {
    pub seg: Segment,
    pub s: *const f32,
    pub s_rs: usize,
}

/// Where an [`NnFn`] tile goes: `ptr[r·ld + w] = alpha·acc[r][w] + beta·ptr[r·ld + w]` for
/// `w < cols` (`beta = 0` never reads the old value).
#[derive(Clone, Copy)]
pub(super) struct Out {
    pub ptr: *mut f32,
    pub ld: usize,
    pub cols: usize,
    pub alpha: f32,
    pub beta: f32,
}

/// `R × W` tile from zero over the steps of each segment in turn (one chain of multiply-adds
/// per element), written to [`Out`].
pub(super) type NnFn = unsafe fn(segs: &[Segment], out: Out);
/// `R × W` tile `acc[r] = Σ_j scale_j(r)·(Σ_l x_j(r, l)·y_j(l))` over [`ScaledSegment`]s `j`, written to
/// [`Out`].
pub(super) type ScaledFn = unsafe fn(segs: &[ScaledSegment], out: Out);
/// `R × W` tile accumulated in place into `acc[r·ld + w]` over `len` steps.
pub(super) type AccFn = unsafe fn(len: usize, x: Strided, y: Rows, acc: *mut f32, ld: usize);

/// A vector of `L` lanes and the few operations the tiles (and the Winograd transforms) need.
/// Implementations wrap `std::arch` intrinsics; every method is `#[inline(always)]` so that it
/// is compiled inside (and with the features of) the `#[target_feature]` function that calls it.
pub(crate) trait Simd {
    const L: usize;
    type V: Copy;
    /// # Safety
    /// The CPU has the features of the implementation (so do all methods below).
    unsafe fn zero() -> Self::V;
    unsafe fn splat(x: f32) -> Self::V;
    /// # Safety
    /// `p..p+L` readable.
    unsafe fn load(p: *const f32) -> Self::V;
    /// # Safety
    /// `p..p+L` writable.
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a·b + c`: one fused multiply-add where the implementation has FMA.
    unsafe fn madd(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a·b` (not fused with anything).
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn add(a: Self::V, b: Self::V) -> Self::V;
    unsafe fn sub(a: Self::V, b: Self::V) -> Self::V;
}

/// Implements [`Simd`] for a zero-sized type from intrinsics.
macro_rules! simd {
    ($t:ident, $l:literal, $v:ty, zero: $zero:path, splat: $splat:path, load: $load:path,
     store: $store:path, mul: $mul:path, add: $add:path, sub: $sub:path,
     madd: |$a:ident, $b:ident, $c:ident| $madd:expr) => {
        pub(crate) struct $t;
        impl Simd for $t {
            const L: usize = $l;
            type V = $v;
            #[inline(always)]
            unsafe fn zero() -> $v {
                unsafe { $zero() }
            }
            #[inline(always)]
            unsafe fn splat(x: f32) -> $v {
                unsafe { $splat(x) }
            }
            #[inline(always)]
            unsafe fn load(p: *const f32) -> $v {
                unsafe { $load(p) }
            }
            #[inline(always)]
            unsafe fn store(p: *mut f32, v: $v) {
                unsafe { $store(p, v) }
            }
            #[inline(always)]
            unsafe fn madd($a: $v, $b: $v, $c: $v) -> $v {
                unsafe { $madd }
            }
            #[inline(always)]
            unsafe fn mul(a: $v, b: $v) -> $v {
                unsafe { $mul(a, b) }
            }
            #[inline(always)]
            unsafe fn add(a: $v, b: $v) -> $v {
                unsafe { $add(a, b) }
            }
            #[inline(always)]
            unsafe fn sub(a: $v, b: $v) -> $v {
                unsafe { $sub(a, b) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

#[cfg(target_arch = "x86_64")]
simd!(Zmm, 16, __m512, zero: _mm512_setzero_ps, splat: _mm512_set1_ps, load: _mm512_loadu_ps,
      store: _mm512_storeu_ps, mul: _mm512_mul_ps, add: _mm512_add_ps, sub: _mm512_sub_ps,
      madd: |a, b, c| _mm512_fmadd_ps(a, b, c));
#[cfg(target_arch = "x86_64")]
simd!(Ymm, 8, __m256, zero: _mm256_setzero_ps, splat: _mm256_set1_ps, load: _mm256_loadu_ps,
      store: _mm256_storeu_ps, mul: _mm256_mul_ps, add: _mm256_add_ps, sub: _mm256_sub_ps,
      madd: |a, b, c| _mm256_fmadd_ps(a, b, c));
// SSE2 is part of the x86-64 baseline; no FMA there.
#[cfg(target_arch = "x86_64")]
simd!(Xmm, 4, __m128, zero: _mm_setzero_ps, splat: _mm_set1_ps, load: _mm_loadu_ps,
      store: _mm_storeu_ps, mul: _mm_mul_ps, add: _mm_add_ps, sub: _mm_sub_ps,
      madd: |a, b, c| _mm_add_ps(_mm_mul_ps(a, b), c));

/// Plain `f32` lanes of four for other architectures (LLVM vectorises what it can).
#[cfg(not(target_arch = "x86_64"))]
mod scalar4 {
    pub(super) type F4 = [f32; 4];
    #[inline(always)]
    pub(super) unsafe fn zero() -> F4 {
        [0.0; 4]
    }
    #[inline(always)]
    pub(super) unsafe fn splat(x: f32) -> F4 {
        [x; 4]
    }
    #[inline(always)]
    pub(super) unsafe fn load(p: *const f32) -> F4 {
        // SAFETY: caller's contract (4 readable values).
        unsafe { *(p as *const F4) }
    }
    #[inline(always)]
    pub(super) unsafe fn store(p: *mut f32, v: F4) {
        // SAFETY: caller's contract (4 writable values).
        unsafe { *(p as *mut F4) = v }
    }
    #[inline(always)]
    pub(super) unsafe fn mul(a: F4, b: F4) -> F4 {
        std::array::from_fn(|i| a[i] * b[i])
    }
    #[inline(always)]
    pub(super) unsafe fn add(a: F4, b: F4) -> F4 {
        std::array::from_fn(|i| a[i] + b[i])
    }
    #[inline(always)]
    pub(super) unsafe fn sub(a: F4, b: F4) -> F4 {
        std::array::from_fn(|i| a[i] - b[i])
    }
}
#[cfg(not(target_arch = "x86_64"))]
use scalar4::*;
#[cfg(not(target_arch = "x86_64"))]
simd!(Xmm, 4, F4, zero: zero, splat: splat, load: load, store: store, mul: mul, add: add, sub: sub,
      madd: |a, b, c| add(mul(a, b), c));

/// One lane: plain `f32`, for the channels left over after the vectors (Winograd transforms).
mod lane1 {
    #[inline(always)]
    pub(super) unsafe fn zero() -> f32 {
        0.0
    }
    #[inline(always)]
    pub(super) unsafe fn splat(x: f32) -> f32 {
        x
    }
    #[inline(always)]
    pub(super) unsafe fn load(p: *const f32) -> f32 {
        // SAFETY: caller's contract (one readable value).
        unsafe { *p }
    }
    #[inline(always)]
    pub(super) unsafe fn store(p: *mut f32, v: f32) {
        // SAFETY: caller's contract (one writable value).
        unsafe { *p = v }
    }
    #[inline(always)]
    pub(super) unsafe fn mul(a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    pub(super) unsafe fn add(a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    pub(super) unsafe fn sub(a: f32, b: f32) -> f32 {
        a - b
    }
}
simd!(Lane1, 1, f32, zero: lane1::zero, splat: lane1::splat, load: lane1::load, store: lane1::store,
      mul: lane1::mul, add: lane1::add, sub: lane1::sub, madd: |a, b, c| lane1::add(lane1::mul(a, b), c));

/// `acc[r][v] += Σ_l x(r, l)·y(l, v·L..(v+1)·L)`, `l` ascending.
///
/// # Safety
/// The CPU supports `S`; `x(r, l)` for `r < R`, `l < len` and `y(l, w)` for `l < len`,
/// `w < NV·L` are readable.
#[inline(always)]
unsafe fn accumulate<S: Simd, const R: usize, const NV: usize>(
    acc: &mut [[S::V; NV]; R],
    len: usize,
    x: Strided,
    y: Rows,
) {
    for l in 0..len {
        // SAFETY (whole block): in bounds by the caller's contract.
        unsafe {
            let yp = y.ptr.add(l * y.rs);
            let mut yv = [S::zero(); NV];
            for (v, yv) in yv.iter_mut().enumerate() {
                *yv = S::load(yp.add(v * S::L));
            }
            let xp = x.ptr.add(l * x.cs);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let xv = S::splat(*xp.add(r * x.rs));
                for (a, &yv) in acc_r.iter_mut().zip(&yv) {
                    *a = S::madd(xv, yv, *a);
                }
            }
        }
    }
}

/// Body of [`NnFn`] for tiles of `R × NV·L`.
///
/// # Safety
/// As [`accumulate`] for every segment, and `out.ptr[r·ld + w]` for `r < R`,
/// `w < min(out.cols, NV·L)` writable.
#[inline(always)]
unsafe fn nn_body<S: Simd, const R: usize, const NV: usize>(segs: &[Segment], out: Out) {
    // SAFETY (whole body): the caller's contract.
    unsafe {
        let mut acc = [[S::zero(); NV]; R];
        for sg in segs {
            accumulate::<S, R, NV>(&mut acc, sg.len, sg.x, sg.y);
        }
        store_tile::<S, R, NV>(&acc, out);
    }
}

/// Body of [`ScaledFn`] for tiles of `R × NV·L`: each tap runs into its own accumulators (so
/// twice the registers of [`nn_body`]'s tile), which are then added in times the row's scale.
///
/// # Safety
/// As [`nn_body`], and `s[r·s_rs]` readable for `r < R` in every segment.
#[inline(always)]
unsafe fn scaled_body<S: Simd, const R: usize, const NV: usize>(segs: &[ScaledSegment], out: Out) {
    // SAFETY (whole body): the caller's contract.
    unsafe {
        let mut acc = [[S::zero(); NV]; R];
        for sg in segs {
            let mut tap = [[S::zero(); NV]; R];
            accumulate::<S, R, NV>(&mut tap, sg.seg.len, sg.seg.x, sg.seg.y);
            for (r, (acc_r, tap_r)) in acc.iter_mut().zip(&tap).enumerate() {
                let s = S::splat(*sg.s.add(r * sg.s_rs));
                for (a, &t) in acc_r.iter_mut().zip(tap_r) {
                    *a = S::madd(s, t, *a);
                }
            }
        }
        store_tile::<S, R, NV>(&acc, out);
    }
}

/// `out.ptr[r·ld + w] = alpha·acc[r][w] + beta·out.ptr[r·ld + w]` for `w < out.cols`.
///
/// # Safety
/// `out.ptr[r·ld + w]` for `r < R`, `w < min(out.cols, NV·L)` writable (readable if `beta ≠ 0`).
#[inline(always)]
unsafe fn store_tile<S: Simd, const R: usize, const NV: usize>(acc: &[[S::V; NV]; R], out: Out) {
    // SAFETY (whole body): the caller's contract.
    unsafe {
        let (alpha, beta) = (S::splat(out.alpha), S::splat(out.beta));
        let w = NV * S::L;
        for (r, acc_r) in acc.iter().enumerate() {
            let c = out.ptr.add(r * out.ld);
            if out.cols >= w {
                for (v, &a) in acc_r.iter().enumerate() {
                    let cv = c.add(v * S::L);
                    let t = S::mul(alpha, a);
                    S::store(cv, if out.beta == 0.0 { t } else { S::add(t, S::mul(beta, S::load(cv))) });
                }
            } else {
                // A partial tile goes through a buffer (same arithmetic, lane by lane).
                let mut buf = [0f32; 64];
                debug_assert!(w <= buf.len());
                for (v, &a) in acc_r.iter().enumerate() {
                    S::store(buf.as_mut_ptr().add(v * S::L), a);
                }
                let c = std::slice::from_raw_parts_mut(c, out.cols);
                for (c, &a) in c.iter_mut().zip(&buf) {
                    let t = out.alpha * a;
                    *c = if out.beta == 0.0 { t } else { t + out.beta * *c };
                }
            }
        }
    }
}

/// Body of [`AccFn`] for tiles of `R × NV·L`.
///
/// # Safety
/// As [`accumulate`], and `acc[r·ld + w]` for `r < R`, `w < NV·L` readable and writable.
#[inline(always)]
unsafe fn acc_body<S: Simd, const R: usize, const NV: usize>(
    len: usize,
    x: Strided,
    y: Rows,
    acc: *mut f32,
    ld: usize,
) {
    // SAFETY (whole body): the caller's contract.
    unsafe {
        let mut t = [[S::zero(); NV]; R];
        for (r, t_r) in t.iter_mut().enumerate() {
            for (v, t) in t_r.iter_mut().enumerate() {
                *t = S::load(acc.add(r * ld + v * S::L));
            }
        }
        accumulate::<S, R, NV>(&mut t, len, x, y);
        for (r, t_r) in t.iter().enumerate() {
            for (v, &t) in t_r.iter().enumerate() {
                S::store(acc.add(r * ld + v * S::L), t);
            }
        }
    }
}

/// One instruction set's copies of the tile functions (generic over the vector type, so a
/// set can use narrower vectors for narrow tiles).
macro_rules! isa_module {
    ($name:ident $(, feature: $feat:literal)?) => {
        mod $name {
            use super::*;

            /// See [`NnFn`].
            ///
            /// # Safety
            /// As `nn_body`, on a CPU with the enabled features.
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn nn<S: Simd, const R: usize, const NV: usize>(segs: &[Segment], out: Out) {
                // SAFETY: forwarded contract.
                unsafe { nn_body::<S, R, NV>(segs, out) }
            }

            /// See [`ScaledFn`].
            ///
            /// # Safety
            /// As `scaled_body`, on a CPU with the enabled features.
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn scaled<S: Simd, const R: usize, const NV: usize>(segs: &[ScaledSegment], out: Out) {
                // SAFETY: forwarded contract.
                unsafe { scaled_body::<S, R, NV>(segs, out) }
            }

            /// See [`AccFn`].
            ///
            /// # Safety
            /// As `acc_body`, on a CPU with the enabled features.
            $(#[target_feature(enable = $feat)])?
            pub(super) unsafe fn acc<S: Simd, const R: usize, const NV: usize>(
                len: usize,
                x: Strided,
                y: Rows,
                acc: *mut f32,
                ld: usize,
            ) {
                // SAFETY: forwarded contract.
                unsafe { acc_body::<S, R, NV>(len, x, y, acc, ld) }
            }
        }
    };
}

#[cfg(target_arch = "x86_64")]
isa_module!(avx512, feature: "avx512f,avx2,fma");
#[cfg(target_arch = "x86_64")]
isa_module!(avx2, feature: "avx2,fma");
isa_module!(portable);

/// The tile functions compiled for one instruction set.
pub(crate) struct Kernels {
    /// `"avx512"`, `"avx2"` or `"portable"`: also picks the Winograd transforms' vectors.
    pub name: &'static str,
    /// Tile widths `W` (ascending) with the row count `R` of their main tile. Tiles of 4, 2
    /// and 1 rows (those below `R`) exist too, for the last rows.
    pub menu: &'static [(usize, usize)],
    /// [`ScaledFn`] tile widths (ascending, each dividing the `menu` widths it serves) with the
    /// row count `R` of their main tile; tiles of 4, 2 and 1 rows exist below it. They need
    /// twice the accumulators of an [`NnFn`] tile, so a wider panel runs as several of them.
    pub scaled_menu: &'static [(usize, usize)],
    nn: fn(usize, usize) -> Option<NnFn>,
    acc: fn(usize, usize) -> Option<AccFn>,
    scaled: fn(usize, usize) -> Option<ScaledFn>,
}

impl Kernels {
    /// The `r × w` tile (`w` from `menu`, `r` its main row count or 4, 2, 1).
    pub(super) fn nn(&self, r: usize, w: usize) -> NnFn {
        (self.nn)(r, w).unwrap_or_else(|| panic!("gemm: no {} tile {r}x{w}", self.name))
    }
    /// The accumulating `r × w` tile.
    pub(super) fn acc(&self, r: usize, w: usize) -> AccFn {
        (self.acc)(r, w).unwrap_or_else(|| panic!("gemm: no {} tile {r}x{w}", self.name))
    }
    /// The per-row-scaled `r × w` tile (`w` from `scaled_menu`, `r` its main row count or 4, 2, 1).
    pub(super) fn scaled(&self, r: usize, w: usize) -> ScaledFn {
        (self.scaled)(r, w).unwrap_or_else(|| panic!("gemm: no {} scaled tile {r}x{w}", self.name))
    }
    /// `(width, main rows)` of the scaled tiles that a panel of width `w` runs as: the widest
    /// of `scaled_menu` up to `w`.
    pub(super) fn scaled_tile_for(&self, w: usize) -> (usize, usize) {
        let fits = self.scaled_menu.iter().rev().find(|&&(sw, _)| w.is_multiple_of(sw));
        *fits.unwrap_or_else(|| panic!("gemm: no {} scaled tile for panels of width {w}", self.name))
    }
}

/// Builds a [`Kernels`] from a module of [`isa_module`] and its tile list.
macro_rules! kernels {
    ($name:literal, $m:ident, menu: $menu:expr, tiles: [$(($w:literal, $r:literal, $s:ident)),* $(,)?],
     scaled_menu: $smenu:expr, scaled: [$(($sw:literal, $sr:literal, $ss:ident)),* $(,)?]) => {
        Kernels {
            name: $name,
            menu: $menu,
            scaled_menu: $smenu,
            nn: |r, w| match (w, r) {
                $(($w, $r) => Some($m::nn::<$s, $r, { $w / <$s as Simd>::L }> as NnFn),)*
                _ => None,
            },
            acc: |r, w| match (w, r) {
                $(($w, $r) => Some($m::acc::<$s, $r, { $w / <$s as Simd>::L }> as AccFn),)*
                _ => None,
            },
            scaled: |r, w| match (w, r) {
                $(($sw, $sr) => Some($m::scaled::<$ss, $sr, { $sw / <$ss as Simd>::L }> as ScaledFn),)*
                _ => None,
            },
        }
    };
}

/// 32 zmm registers: up to 24 accumulators plus the row of `y` (scaled tiles: 2 × 12).
#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = kernels!("avx512", avx512, menu: &[(8, 8), (16, 8), (32, 12), (64, 6)], tiles: [
    (8, 8, Ymm), (8, 4, Ymm), (8, 2, Ymm), (8, 1, Ymm),
    (16, 8, Zmm), (16, 4, Zmm), (16, 2, Zmm), (16, 1, Zmm),
    (32, 12, Zmm), (32, 4, Zmm), (32, 2, Zmm), (32, 1, Zmm),
    (64, 6, Zmm), (64, 4, Zmm), (64, 2, Zmm), (64, 1, Zmm),
], scaled_menu: &[(8, 12), (16, 12), (32, 6)], scaled: [
    (8, 12, Ymm), (8, 4, Ymm), (8, 2, Ymm), (8, 1, Ymm),
    (16, 12, Zmm), (16, 4, Zmm), (16, 2, Zmm), (16, 1, Zmm),
    (32, 6, Zmm), (32, 4, Zmm), (32, 2, Zmm), (32, 1, Zmm),
]);

/// 16 ymm registers: 8–12 accumulators (wider tiles would spill).
#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = kernels!("avx2", avx2, menu: &[(8, 8), (16, 6)], tiles: [
    (8, 8, Ymm), (8, 4, Ymm), (8, 2, Ymm), (8, 1, Ymm),
    (16, 6, Ymm), (16, 4, Ymm), (16, 2, Ymm), (16, 1, Ymm),
], scaled_menu: &[(8, 6)], scaled: [
    (8, 6, Ymm), (8, 4, Ymm), (8, 2, Ymm), (8, 1, Ymm),
]);

/// Baseline (SSE2 on x86-64): 16 xmm registers, 8 accumulators (multiply and add need a
/// temporary each).
static PORTABLE: Kernels = kernels!("portable", portable, menu: &[(4, 8), (8, 4)], tiles: [
    (4, 8, Xmm), (4, 4, Xmm), (4, 2, Xmm), (4, 1, Xmm),
    (8, 4, Xmm), (8, 2, Xmm), (8, 1, Xmm),
], scaled_menu: &[(4, 4)], scaled: [
    (4, 4, Xmm), (4, 2, Xmm), (4, 1, Xmm),
]);

/// What the skinny-product paths of [`super::gemm`] run on.
pub(crate) enum Mode {
    /// Tiles for the detected (or requested) instruction set.
    Tiles(&'static Kernels),
    /// Fast paths off: every product goes to matrixmultiply.
    Off,
}

/// The mode, decided once: the best detected instruction set, optionally lowered (or the fast
/// paths turned off) with `NSL_CPU_GEMM` = `avx512` | `avx2` | `portable` | `matrixmultiply`,
/// for tests and benchmarks. A request above what the CPU supports falls back to the best
/// supported set.
pub(crate) fn mode() -> &'static Mode {
    static MODE: OnceLock<Mode> = OnceLock::new();
    MODE.get_or_init(|| pick(&std::env::var("NSL_CPU_GEMM").unwrap_or_default()))
}

/// The mode's name when `NSL_CPU_GEMM` chose one below the best the CPU has (its products round
/// differently), else `None`.
pub(crate) fn lowered() -> Option<&'static str> {
    let (now, best) = (mode().name(), pick("").name());
    (now != best).then_some(now)
}

impl Mode {
    fn name(&self) -> &'static str {
        match self {
            Mode::Tiles(k) => k.name,
            Mode::Off => "matrixmultiply",
        }
    }
}

/// The mode for an `NSL_CPU_GEMM` value (`""`: the best the CPU has).
fn pick(want: &str) -> Mode {
    if want == "matrixmultiply" {
        return Mode::Off;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
        let avx512 = avx2 && is_x86_feature_detected!("avx512f");
        if avx512 && want != "avx2" && want != "portable" {
            return Mode::Tiles(&AVX512);
        }
        if avx2 && want != "portable" {
            return Mode::Tiles(&AVX2);
        }
    }
    Mode::Tiles(&PORTABLE)
}
