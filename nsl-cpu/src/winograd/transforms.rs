//! The Winograd F(4×4, 3×3) transforms: the 1-D transforms `Bᵀ·d`, `B·v`, `Aᵀ·m`, `A·y` over
//! channel vectors, and the weight transform `G·g·Gᵀ` with its adjoint.

use super::*;

// ---- 1-D transforms over channel vectors ------------------------------------------------------
//
// Written against the explicit vectors of [`Simd`] (`L` channels at a time) with multiplies and
// adds only, never fused, in the same order on every instruction set: results are identical
// whatever the vector width.

/// `Bᵀ·d` (the input transform, 6 → 6).
#[inline(always)]
pub(super) unsafe fn bt<S: Simd>(d: [S::V; T]) -> [S::V; T] {
    let [a0, a1, a2, a3, a4, a5] = d;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, five) = (S::splat(2.0), S::splat(4.0), S::splat(5.0));
        let (a42, a13) = (S::sub(a4, a2), S::sub(a1, a3));
        [
            S::add(S::sub(S::mul(four, a0), S::mul(five, a2)), a4),
            S::sub(S::add(a3, a4), S::mul(four, S::add(a1, a2))),
            S::add(S::sub(a4, a3), S::mul(four, S::sub(a1, a2))),
            S::add(a42, S::mul(two, S::sub(a3, a1))),
            S::add(a42, S::mul(two, a13)),
            S::add(S::sub(S::mul(four, a1), S::mul(five, a3)), a5),
        ]
    }
}

/// `B·v` (adjoint of [`bt`], 6 → 6).
#[inline(always)]
pub(super) unsafe fn b<S: Simd>(v: [S::V; T]) -> [S::V; T] {
    let [a0, a1, a2, a3, a4, a5] = v;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, m5, five) = (S::splat(2.0), S::splat(4.0), S::splat(-5.0), S::splat(5.0));
        [
            S::mul(four, a0),
            S::add(S::mul(four, S::add(S::sub(a2, a1), a5)), S::mul(two, S::sub(a4, a3))),
            S::sub(S::sub(S::mul(m5, a0), S::mul(four, S::add(a1, a2))), S::add(a3, a4)),
            S::sub(S::add(S::sub(a1, a2), S::mul(two, S::sub(a3, a4))), S::mul(five, a5)),
            S::add(S::add(S::add(S::add(a0, a1), a2), a3), a4),
            a5,
        ]
    }
}

/// `Aᵀ·m` (the output transform, 6 → 4).
#[inline(always)]
pub(super) unsafe fn at<S: Simd>(m: [S::V; T]) -> [S::V; M] {
    let [m0, m1, m2, m3, m4, m5] = m;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, eight) = (S::splat(2.0), S::splat(4.0), S::splat(8.0));
        let (s12, d12, s34, d34) = (S::add(m1, m2), S::sub(m1, m2), S::add(m3, m4), S::sub(m3, m4));
        [
            S::add(S::add(m0, s12), s34),
            S::add(d12, S::mul(two, d34)),
            S::add(s12, S::mul(four, s34)),
            S::add(S::add(d12, S::mul(eight, d34)), m5),
        ]
    }
}

/// `A·y` (adjoint of [`at`], 4 → 6).
#[inline(always)]
pub(super) unsafe fn a<S: Simd>(y: [S::V; M]) -> [S::V; T] {
    let [y0, y1, y2, y3] = y;
    // SAFETY (whole block): the CPU has the features of `S` (caller's contract).
    unsafe {
        let (two, four, eight) = (S::splat(2.0), S::splat(4.0), S::splat(8.0));
        let (s02, d13) = (S::add(y0, y2), S::add(y1, y3));
        let (s02w, d13w) = (S::add(y0, S::mul(four, y2)), S::add(S::mul(two, y1), S::mul(eight, y3)));
        [y0, S::add(s02, d13), S::sub(s02, d13), S::add(s02w, d13w), S::sub(s02w, d13w), y3]
    }
}

/// `G` of F(4, 3): `u = G·g` maps 3 filter taps to 6 points.
pub(super) const G: [[f32; 3]; T] = [
    [1.0 / 4.0, 0.0, 0.0],
    [-1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0],
    [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
    [1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0],
    [1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0],
    [0.0, 0.0, 1.0],
];

/// `U[ξ = i·6 + j][ch][o] = Σ_{ky,kx} G[i][ky]·G[j][kx]·w[(ky·3 + kx)·c + ch][o]` (36 × c × n).
pub(super) fn transform_weights(c: usize, n: usize, w: &[f32]) -> CpuBuf {
    let cn = c * n;
    // First along ky: half[i][kx] (6 × 3 blocks of c·n).
    let mut half = CpuBuf::zeros(T * 3 * cn);
    for (i, gi) in G.iter().enumerate() {
        for kx in 0..3 {
            let out = &mut half[(i * 3 + kx) * cn..][..cn];
            for (ky, &gk) in gi.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&w[(ky * 3 + kx) * cn..][..cn]) {
                    *o += gk * v;
                }
            }
        }
    }
    let mut u = CpuBuf::zeros(XI * cn);
    for i in 0..T {
        for (j, gj) in G.iter().enumerate() {
            let out = &mut u[(i * T + j) * cn..][..cn];
            for (kx, &gk) in gj.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&half[(i * 3 + kx) * cn..][..cn]) {
                    *o += gk * v;
                }
            }
        }
    }
    u
}

/// `dw[(ky·3 + kx)·c + ch][o] += Σ_{i,j} G[i][ky]·G[j][kx]·dU[i·6 + j][ch][o]`.
pub(super) fn weight_grad_from_points(c: usize, n: usize, du: &[f32], dw: &mut [f32]) {
    let cn = c * n;
    let mut half = CpuBuf::zeros(T * 3 * cn); // half[i][kx] = Σ_j G[j][kx]·dU[i][j]
    for i in 0..T {
        for kx in 0..3 {
            let out = &mut half[(i * 3 + kx) * cn..][..cn];
            for (j, gj) in G.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&du[(i * T + j) * cn..][..cn]) {
                    *o += gj[kx] * v;
                }
            }
        }
    }
    for ky in 0..3 {
        for kx in 0..3 {
            let out = &mut dw[(ky * 3 + kx) * cn..][..cn];
            for (i, gi) in G.iter().enumerate() {
                for (o, &v) in out.iter_mut().zip(&half[(i * 3 + kx) * cn..][..cn]) {
                    *o += gi[ky] * v;
                }
            }
        }
    }
}
