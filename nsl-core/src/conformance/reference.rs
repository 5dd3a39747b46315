//! Naive `f64` references of every backend op: plain loops over the formulas on
//! [`crate::Backend`], written for clarity, not speed. Inputs are the `f32` values a backend
//! sees; outputs are `f64`, so a backend's result is compared against exact-ish arithmetic.
//! Signature boilerplate: each function takes its op's arguments, so its parameter list
//! repeats the backends' kernels of the same name.

use crate::{AdamStep, BatchNormDims, CrossEntropy, Gemm, Map, Patch, SgdStep, Window};

/// `x` widened to `f64`.
pub fn to64(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// `C[b] = α·op(A[b])·op(B[b]) + β·C[b]` (β = 0 ignores C).
pub fn gemm(g: &Gemm, a: &[f32], b: &[f32], c: &[f32]) -> Vec<f64> {
    let mut out = to64(c);
    for bi in 0..g.batch {
        let (ao, bo, co) = (bi * g.stride_a, bi * g.stride_b, bi * g.stride_c);
        for i in 0..g.m {
            for j in 0..g.n {
                let mut s = 0f64;
                for l in 0..g.k {
                    let av = if g.trans_a { a[ao + l * g.m + i] } else { a[ao + i * g.k + l] };
                    let bv = if g.trans_b { b[bo + j * g.k + l] } else { b[bo + l * g.n + j] };
                    s += av as f64 * bv as f64;
                }
                let old = if g.beta == 0.0 { 0.0 } else { g.beta as f64 * out[co + i * g.n + j] };
                out[co + i * g.n + j] = g.alpha as f64 * s + old;
            }
        }
    }
    out
}

pub fn map(f: Map, x: &[f32]) -> Vec<f64> {
    x.iter()
        .map(|&x| {
            let x = x as f64;
            match f {
                Map::SqrtEps(e) => (x + e as f64).sqrt(),
                Map::Recip => 1.0 / x,
                Map::Square => x * x,
                Map::Sign => {
                    if x > 0.0 {
                        1.0
                    } else if x < 0.0 {
                        -1.0
                    } else {
                        0.0
                    }
                }
                Map::Affine(a, b) => a as f64 * x + b as f64,
            }
        })
        .collect()
}

pub fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// `out[r,c] = x[r,c]·s[pick(r,c)]`: [`mul_rows`] picks the row's scale, [`mul_cols`] the column's.
fn mul_broadcast(x: &[f32], s: &[f32], rows: usize, cols: usize, pick: fn(usize, usize) -> usize) -> Vec<f64> {
    let mut out = vec![0f64; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            out[r * cols + c] = x[r * cols + c] as f64 * s[pick(r, c)] as f64;
        }
    }
    out
}

pub fn mul_rows(x: &[f32], s: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    mul_broadcast(x, s, rows, cols, |r, _| r)
}

pub fn mul_cols(x: &[f32], s: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    mul_broadcast(x, s, rows, cols, |_, c| c)
}

/// `out[pick(r,c)] += a[r,c]·b[r,c]` into `len` sums: [`dot_rows`] sums each row, [`dot_cols`]
/// each column.
fn dot_reduce(a: &[f32], b: &[f32], rows: usize, cols: usize, len: usize, pick: fn(usize, usize) -> usize) -> Vec<f64> {
    let mut out = vec![0f64; len];
    for r in 0..rows {
        for c in 0..cols {
            out[pick(r, c)] += a[r * cols + c] as f64 * b[r * cols + c] as f64;
        }
    }
    out
}

pub fn dot_rows(a: &[f32], b: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    dot_reduce(a, b, rows, cols, rows, |r, _| r)
}

pub fn dot_cols(a: &[f32], b: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    dot_reduce(a, b, rows, cols, cols, |_, c| c)
}

/// Every read of the k×k windows of `g` that lies inside the input (padding skipped), as
/// `(row, tap, channel, input index)`, rows ascending, then taps, then channels.
fn window_reads(g: &Window) -> impl Iterator<Item = (usize, usize, usize, usize)> + '_ {
    (0..g.rows()).flat_map(move |r| {
        let (b, oy, ox) = (r / (g.ho * g.wo), r / g.wo % g.ho, r % g.wo);
        (0..g.taps())
            .filter_map(move |t| g.source(oy, ox, t).map(|(y, x)| (t, (b * g.h + y) * g.w + x)))
            .flat_map(move |(t, pixel)| (0..g.c).map(move |ch| (r, t, ch, pixel * g.c + ch)))
    })
}

pub fn im2col(g: &Window, x: &[f32]) -> Vec<f64> {
    let mut cols = vec![0f64; g.rows() * g.patch_len()];
    for (r, t, ch, i) in window_reads(g) {
        cols[r * g.patch_len() + t * g.c + ch] = x[i] as f64;
    }
    cols
}

pub fn col2im(g: &Window, dcols: &[f32]) -> Vec<f64> {
    let mut dx = vec![0f64; g.input_len()];
    for (r, t, ch, i) in window_reads(g) {
        dx[i] += dcols[r * g.patch_len() + t * g.c + ch] as f64;
    }
    dx
}

/// `out[r,t,c] = m[r,t]·cols[r,t,c]`; the flat index `i` of `(r,t,c)` has `(r,t)` at `i / c`.
pub fn patch_scale(p: &Patch, cols: &[f32], m: &[f32]) -> Vec<f64> {
    let Patch { rows, taps, c } = *p;
    (0..rows * taps * c).map(|i| m[i / c] as f64 * cols[i] as f64).collect()
}

/// `(dcols, dm)`
pub fn patch_scale_backward(p: &Patch, cols: &[f32], m: &[f32], dout: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let Patch { rows, taps, c } = *p;
    let dcols = (0..rows * taps * c).map(|i| m[i / c] as f64 * dout[i] as f64).collect();
    let mut dm = vec![0f64; rows * taps];
    for i in 0..rows * taps * c {
        dm[i / c] += cols[i] as f64 * dout[i] as f64;
    }
    (dcols, dm)
}

pub fn patch_matmul(p: &Patch, cols: &[f32], m: &[f32]) -> Vec<f64> {
    let Patch { rows, taps, c } = *p;
    let mut out = vec![0f64; rows * taps * c];
    for r in 0..rows {
        for a in 0..taps {
            for ch in 0..c {
                let mut s = 0f64;
                for q in 0..taps {
                    s += m[(r * taps + a) * taps + q] as f64 * cols[(r * taps + q) * c + ch] as f64;
                }
                out[(r * taps + a) * c + ch] = s;
            }
        }
    }
    out
}

/// `(dcols, dM)`
pub fn patch_matmul_backward(p: &Patch, cols: &[f32], m: &[f32], dout: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let Patch { rows, taps, c } = *p;
    let mut dcols = vec![0f64; rows * taps * c];
    let mut dm = vec![0f64; rows * taps * taps];
    for r in 0..rows {
        for a in 0..taps {
            for q in 0..taps {
                for ch in 0..c {
                    let g = dout[(r * taps + a) * c + ch] as f64;
                    dcols[(r * taps + q) * c + ch] += m[(r * taps + a) * taps + q] as f64 * g;
                    dm[(r * taps + a) * taps + q] += g * cols[(r * taps + q) * c + ch] as f64;
                }
            }
        }
    }
    (dcols, dm)
}

pub fn window_norm(g: &Window, x: &[f32], eps: f32) -> Vec<f64> {
    let mut sq = vec![0f64; g.rows()];
    for (r, _, _, i) in window_reads(g) {
        sq[r] += x[i] as f64 * x[i] as f64;
    }
    sq.iter().map(|s| (s + eps as f64).sqrt()).collect()
}

/// `dx_in + Σ_{r reading i} dn[r]·x[i]/n[r]`
pub fn window_norm_backward(g: &Window, x: &[f32], n: &[f32], dn: &[f32], dx_in: &[f32]) -> Vec<f64> {
    let mut dx = to64(dx_in);
    for (r, _, _, i) in window_reads(g) {
        dx[i] += dn[r] as f64 * x[i] as f64 / n[r] as f64;
    }
    dx
}

/// `(y, mean, var)`
pub fn batch_norm_train(d: &BatchNormDims, x: &[f32], gamma: &[f32], beta: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (rows, c) = (d.rows, d.c);
    let mut mean = vec![0f64; c];
    let mut var = vec![0f64; c];
    for ch in 0..c {
        for r in 0..rows {
            mean[ch] += x[r * c + ch] as f64;
        }
        mean[ch] /= rows as f64;
        for r in 0..rows {
            let e = x[r * c + ch] as f64 - mean[ch];
            var[ch] += e * e;
        }
        var[ch] /= rows as f64;
    }
    let y = batch_norm_eval_f64(d, x, gamma, beta, &mean, &var);
    (y, mean, var)
}

fn batch_norm_eval_f64(
    d: &BatchNormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f64],
    var: &[f64],
) -> Vec<f64> {
    let (rows, c) = (d.rows, d.c);
    let mut y = vec![0f64; rows * c];
    for r in 0..rows {
        for ch in 0..c {
            y[r * c + ch] = gamma[ch] as f64 * (x[r * c + ch] as f64 - mean[ch]) / (var[ch] + d.eps as f64).sqrt()
                + beta[ch] as f64;
        }
    }
    y
}

pub fn batch_norm_eval(
    d: &BatchNormDims,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
) -> Vec<f64> {
    batch_norm_eval_f64(d, x, gamma, beta, &to64(mean), &to64(var))
}

/// `(dx, dgamma_in + Σ dy·x̂, dbeta_in + Σ dy)`
#[allow(clippy::too_many_arguments)]
pub fn batch_norm_backward(
    d: &BatchNormDims,
    x: &[f32],
    gamma: &[f32],
    mean: &[f32],
    var: &[f32],
    dy: &[f32],
    dgamma_in: &[f32],
    dbeta_in: &[f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (rows, c) = (d.rows, d.c);
    let mut dx = vec![0f64; rows * c];
    let mut dgamma = to64(dgamma_in);
    let mut dbeta = to64(dbeta_in);
    for ch in 0..c {
        let sigma = (var[ch] as f64 + d.eps as f64).sqrt();
        let xh = |r: usize| (x[r * c + ch] as f64 - mean[ch] as f64) / sigma;
        let (mut sdy, mut sdyx) = (0f64, 0f64);
        for r in 0..rows {
            sdy += dy[r * c + ch] as f64;
            sdyx += dy[r * c + ch] as f64 * xh(r);
        }
        dbeta[ch] += sdy;
        dgamma[ch] += sdyx;
        let n = rows as f64;
        for r in 0..rows {
            dx[r * c + ch] = gamma[ch] as f64 / sigma * (dy[r * c + ch] as f64 - sdy / n - xh(r) * sdyx / n);
        }
    }
    (dx, dgamma, dbeta)
}

pub fn relu(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| if v > 0.0 { v as f64 } else { 0.0 }).collect()
}

pub fn relu_backward(y: &[f32], dy: &[f32]) -> Vec<f64> {
    y.iter().zip(dy).map(|(&y, &d)| if y > 0.0 { d as f64 } else { 0.0 }).collect()
}

pub fn max_pool(g: &Window, x: &[f32]) -> Vec<f64> {
    let mut y = vec![f64::NEG_INFINITY; g.rows() * g.c];
    for (r, _, ch, i) in window_reads(g) {
        y[r * g.c + ch] = y[r * g.c + ch].max(x[i] as f64);
    }
    y
}

/// Each `dy` goes to the first read of its window (in tap order) that equals the max.
pub fn max_pool_backward(g: &Window, x: &[f32], y: &[f32], dy: &[f32]) -> Vec<f64> {
    let mut dx = vec![0f64; g.input_len()];
    let mut routed = vec![false; g.rows() * g.c];
    for (r, _, ch, i) in window_reads(g) {
        let o = r * g.c + ch;
        if !routed[o] && x[i] == y[o] {
            dx[i] += dy[o] as f64;
            routed[o] = true;
        }
    }
    dx
}

pub fn softmax_rows(x: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut y = vec![0f64; rows * cols];
    for r in 0..rows {
        let row = &x[r * cols..(r + 1) * cols];
        let mx = row.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b as f64));
        let z: f64 = row.iter().map(|&v| (v as f64 - mx).exp()).sum();
        for c in 0..cols {
            y[r * cols + c] = (row[c] as f64 - mx).exp() / z;
        }
    }
    y
}

pub fn softmax_rows_backward(y: &[f32], dy: &[f32], rows: usize, cols: usize) -> Vec<f64> {
    let mut dx = vec![0f64; rows * cols];
    for r in 0..rows {
        let mut s = 0f64;
        for j in 0..cols {
            s += dy[r * cols + j] as f64 * y[r * cols + j] as f64;
        }
        for c in 0..cols {
            dx[r * cols + c] = y[r * cols + c] as f64 * (dy[r * cols + c] as f64 - s);
        }
    }
    dx
}

/// `(loss, dlogits)` straight from the spec: `dz_j = −(1/B) Σ_k ỹ_k·p_k/(p_k+floor)·(δ_kj − p_j)`.
pub fn cross_entropy(d: &CrossEntropy, logits: &[f32], labels: &[u32]) -> (f64, Vec<f64>) {
    let (bsz, k) = (d.batch, d.classes);
    let (s, floor) = (d.smoothing as f64, d.floor as f64);
    let p = softmax_rows(logits, bsz, k);
    let mut loss = 0f64;
    let mut dz = vec![0f64; bsz * k];
    for b in 0..bsz {
        let label = labels[b] as usize;
        let yt = |kk: usize| (1.0 - s) * if kk == label { 1.0 } else { 0.0 } + s / k as f64;
        for kk in 0..k {
            loss -= yt(kk) * (p[b * k + kk] + floor).ln();
        }
        for j in 0..k {
            let mut g = 0f64;
            for kk in 0..k {
                let pk = p[b * k + kk];
                let delta = if kk == j { 1.0 } else { 0.0 };
                g += yt(kk) * pk / (pk + floor) * (delta - p[b * k + j]);
            }
            dz[b * k + j] = -g / bsz as f64;
        }
    }
    (loss / bsz as f64, dz)
}

/// `(w, v)` after one SGD step.
pub fn sgd_step(s: &SgdStep, w: &[f32], g: &[f32], v: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let mut wo = to64(w);
    let mut vo = to64(v);
    for i in 0..w.len() {
        let gp = g[i] as f64 + s.weight_decay as f64 * w[i] as f64;
        vo[i] = if s.first_step { gp } else { s.momentum as f64 * v[i] as f64 + (1.0 - s.dampening as f64) * gp };
        wo[i] -= s.lr as f64 * vo[i];
    }
    (wo, vo)
}

/// `(w, m, v)` after one Adam step.
pub fn adam_step(s: &AdamStep, w: &[f32], g: &[f32], m: &[f32], v: &[f32]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let (b1, b2) = (s.beta1 as f64, s.beta2 as f64);
    let t = s.t as i32;
    let mut wo = to64(w);
    let mut mo = to64(m);
    let mut vo = to64(v);
    for i in 0..w.len() {
        let gp = g[i] as f64 + s.weight_decay as f64 * w[i] as f64;
        mo[i] = b1 * m[i] as f64 + (1.0 - b1) * gp;
        vo[i] = b2 * v[i] as f64 + (1.0 - b2) * gp * gp;
        let mh = mo[i] / (1.0 - b1.powi(t));
        let vh = vo[i] / (1.0 - b2.powi(t));
        wo[i] -= s.lr as f64 * mh / (vh.sqrt() + s.eps as f64);
    }
    (wo, mo, vo)
}
