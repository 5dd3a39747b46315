//! Every backward op against central differences of its forward: with a fixed random `r` and
//! `L = Σ out·r`, the analytic gradient must match `(L(x+h) − L(x−h)) / 2h` of the `f32` op
//! (accumulated in `f64`). Plus the optimisers' updates by hand.

use super::{distinct_vec, rand_range, rand_vec, ConvCase};
use crate::{AdamStep, Backend, BatchNormDims, ConvScale, CrossEntropy, Patch, Rng, SgdStep, Window};

/// `Σ out·r` in `f64`.
fn weighted(out: &[f32], r: &[f32]) -> f64 {
    out.iter().zip(r).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// Central differences (step `eps`) of `f` around `x`, compared with `analytic`:
/// `|numeric − analytic| ≤ atol + rtol·max(|numeric|, |analytic|)`.
pub fn fd_check(what: &str, x: &[f32], analytic: &[f32], eps: f32, rtol: f64, atol: f64, f: impl Fn(&[f32]) -> f64) {
    assert_eq!(x.len(), analytic.len(), "{what}: gradient length");
    let mut xp = x.to_vec();
    for i in 0..x.len() {
        xp[i] = x[i] + eps;
        let (hi, lp) = (xp[i], f(&xp));
        xp[i] = x[i] - eps;
        let (lo, lm) = (xp[i], f(&xp));
        xp[i] = x[i];
        let num = (lp - lm) / (hi as f64 - lo as f64);
        let ana = analytic[i] as f64;
        assert!(
            (num - ana).abs() <= atol + rtol * num.abs().max(ana.abs()),
            "{what}: d/dx[{i}]: analytic {ana}, numeric {num}"
        );
    }
}

/// `⟨im2col(x), y⟩ = ⟨x, col2im(y)⟩`: col2im is the adjoint of im2col.
pub fn im2col_adjoint<B: Backend>(be: &B, g: &Window, seed: u64) {
    let g = *g;
    let mut rng = Rng::new(seed);
    let x = rand_vec(&mut rng, g.input_len());
    let y = rand_vec(&mut rng, g.rows() * g.patch_len());
    let mut cols = be.zeros(g.rows() * g.patch_len());
    be.im2col(&g, &be.upload(&x), &mut cols);
    let mut dx = be.zeros(g.input_len());
    be.col2im(&g, &be.upload(&y), &mut dx);
    let lhs = weighted(&be.download(&cols), &y);
    let rhs = weighted(&x, &be.download(&dx));
    let scale = (g.rows() * g.patch_len()) as f64;
    assert!((lhs - rhs).abs() <= 1e-6 * scale, "<im2col x, y> = {lhs}, <x, col2im y> = {rhs}");
}

/// Both patch transforms' backwards by finite differences: [`Backend::patch_scale`] (`m` is
/// `rows×taps`) and [`Backend::patch_matmul`] (`M` is `rows×taps×taps`).
pub fn patch_grads<B: Backend>(be: &B, p: &Patch, seed: u64) {
    let taps = p.taps;
    patch_op_grads(be, p, taps, seed, "patch_scale", B::patch_scale, B::patch_scale_backward);
    patch_op_grads(be, p, taps * taps, seed ^ 1, "patch_matmul", B::patch_matmul, B::patch_matmul_backward);
}

/// Forward of a patch transform: `(backend, patch, cols, m, out)`.
type PatchForward<B> = fn(&B, &Patch, &<B as Backend>::Buf, &<B as Backend>::Buf, &mut <B as Backend>::Buf);
/// Backward of a patch transform: `(backend, patch, cols, m, dout, dcols, dm)`.
type PatchBackward<B> = fn(
    &B,
    &Patch,
    &<B as Backend>::Buf,
    &<B as Backend>::Buf,
    &<B as Backend>::Buf,
    &mut <B as Backend>::Buf,
    &mut <B as Backend>::Buf,
);

/// One patch transform's `dcols` and `dm` (with `m` of `m_per_row` entries a row) against
/// finite differences of `<forward(cols, m), r>`.
fn patch_op_grads<B: Backend>(
    be: &B,
    p: &Patch,
    m_per_row: usize,
    seed: u64,
    op: &str,
    forward: PatchForward<B>,
    backward: PatchBackward<B>,
) {
    let mut rng = Rng::new(seed);
    let n = p.rows * p.taps * p.c;
    let (cols, m, r) = (rand_vec(&mut rng, n), rand_vec(&mut rng, p.rows * m_per_row), rand_vec(&mut rng, n));
    let fwd = |cols: &[f32], m: &[f32]| {
        let mut out = be.zeros(n);
        forward(be, p, &be.upload(cols), &be.upload(m), &mut out);
        weighted(&be.download(&out), &r)
    };
    let (mut dcols, mut dm) = (be.zeros(n), be.zeros(m.len()));
    backward(be, p, &be.upload(&cols), &be.upload(&m), &be.upload(&r), &mut dcols, &mut dm);
    fd_check(&format!("{op} dcols"), &cols, &be.download(&dcols), 1e-2, 1e-3, 1e-4, |x| fwd(x, &m));
    fd_check(&format!("{op} dm"), &m, &be.download(&dm), 1e-2, 1e-3, 1e-4, |x| fwd(&cols, x));
}

/// `window_norm_backward` by finite differences (it accumulates into `dx`).
pub fn window_norm_grad<B: Backend>(be: &B, g: &Window, seed: u64) {
    let g = *g;
    let mut rng = Rng::new(seed);
    let eps = 1e-2;
    let x = rand_vec(&mut rng, g.input_len());
    let r = rand_vec(&mut rng, g.rows());
    let fwd = |x: &[f32]| {
        let mut n = be.zeros(g.rows());
        be.window_norm(&g, &be.upload(x), eps, &mut n);
        weighted(&be.download(&n), &r)
    };
    let mut n = be.zeros(g.rows());
    be.window_norm(&g, &be.upload(&x), eps, &mut n);
    // window_norm_backward accumulates: start from a known dx0 and subtract it
    let dx0 = rand_vec(&mut rng, g.input_len());
    let mut dx = be.upload(&dx0);
    be.window_norm_backward(&g, &be.upload(&x), &n, &be.upload(&r), &mut dx);
    let grad: Vec<f32> = be.download(&dx).iter().zip(&dx0).map(|(a, b)| a - b).collect();
    fd_check(&format!("window_norm {g:?}"), &x, &grad, 1e-3, 1e-2, 2e-3, fwd);
}

/// Batch norm, and with `relu` the fused batch norm + ReLU, by finite differences (cases with a
/// pre-activation within reach of the steps are skipped).
pub fn batch_norm_grad<B: Backend>(be: &B, rows: usize, c: usize, relu: bool, seed: u64) {
    let mut rng = Rng::new(seed);
    let d = BatchNormDims { rows, c, eps: 1e-3, relu: false };
    let x = rand_vec(&mut rng, rows * c);
    let gamma = rand_range(&mut rng, c, 0.5, 1.5);
    let beta = rand_vec(&mut rng, c);
    let r = rand_vec(&mut rng, rows * c);
    let train = |x: &B::Buf, gamma: &B::Buf, beta: &B::Buf, y: &mut B::Buf, mean: &mut B::Buf, var: &mut B::Buf| {
        if relu {
            be.batch_norm_train(&d.with_relu(), x, gamma, beta, y, mean, var)
        } else {
            be.batch_norm_train(&d, x, gamma, beta, y, mean, var)
        }
    };
    let fwd = |x: &[f32], gamma: &[f32], beta: &[f32]| {
        let (mut y, mut mean, mut var) = (be.zeros(rows * c), be.zeros(c), be.zeros(c));
        train(&be.upload(x), &be.upload(gamma), &be.upload(beta), &mut y, &mut mean, &mut var);
        weighted(&be.download(&y), &r)
    };
    let (mut y, mut mean, mut var) = (be.zeros(rows * c), be.zeros(c), be.zeros(c));
    let (bx, bg, bb) = (be.upload(&x), be.upload(&gamma), be.upload(&beta));
    if relu {
        // the ReLU's kink: skip cases with a pre-activation within reach of the steps
        be.batch_norm_train(&d, &bx, &bg, &bb, &mut y, &mut mean, &mut var);
        if be.download(&y).iter().any(|v| v.abs() <= 0.1) {
            return;
        }
    }
    train(&bx, &bg, &bb, &mut y, &mut mean, &mut var);
    let mut dx = be.zeros(rows * c);
    // dgamma / dbeta accumulate: start from 1 and subtract it
    let (mut dg, mut db) = (be.upload(&vec![1.0; c]), be.upload(&vec![1.0; c]));
    let dy = be.upload(&r);
    if relu {
        be.batch_norm_backward(&d.with_relu(), &bx, &bg, &bb, &mean, &var, Some(&y), &dy, &mut dx, &mut dg, &mut db);
    } else {
        be.batch_norm_backward(&d, &bx, &bg, &bb, &mean, &var, None, &dy, &mut dx, &mut dg, &mut db);
    }
    let dg: Vec<f32> = be.download(&dg).iter().map(|v| v - 1.0).collect();
    let db: Vec<f32> = be.download(&db).iter().map(|v| v - 1.0).collect();
    let what = if relu { "batch_norm_relu" } else { "batch_norm" };
    fd_check(&format!("{what} dx"), &x, &be.download(&dx), 1e-3, 2e-2, 2e-3, |x| fwd(x, &gamma, &beta));
    fd_check(&format!("{what} dgamma"), &gamma, &dg, 1e-2, 1e-2, 1e-3, |g| fwd(&x, g, &beta));
    fd_check(&format!("{what} dbeta"), &beta, &db, 1e-2, 1e-2, 1e-3, |b| fwd(&x, &gamma, b));
}

/// `relu_backward` by finite differences, inputs away from the kink.
pub fn relu_grad<B: Backend>(be: &B, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    // keep inputs away from the kink at 0
    let x: Vec<f32> = rand_vec(&mut rng, n).iter().map(|v| if *v >= 0.0 { v + 0.1 } else { v - 0.1 }).collect();
    let r = rand_vec(&mut rng, n);
    let fwd = |x: &[f32]| {
        let mut y = be.zeros(n);
        be.relu(&be.upload(x), &mut y);
        weighted(&be.download(&y), &r)
    };
    let mut y = be.zeros(n);
    be.relu(&be.upload(&x), &mut y);
    let mut dx = be.zeros(n);
    be.relu_backward(&y, &be.upload(&r), &mut dx);
    fd_check("relu", &x, &be.download(&dx), 1e-2, 1e-3, 1e-4, fwd);
}

/// `max_pool_backward` by finite differences on distinct inputs (a stable argmax).
pub fn max_pool_grad<B: Backend>(be: &B, g: &Window, seed: u64) {
    let g = *g;
    let mut rng = Rng::new(seed);
    let x = distinct_vec(&mut rng, g.input_len()); // spaced 0.37 apart: argmax is stable
    let r = rand_vec(&mut rng, g.rows() * g.c);
    let fwd = |x: &[f32]| {
        let mut y = be.zeros(g.rows() * g.c);
        be.max_pool(&g, &be.upload(x), &mut y);
        weighted(&be.download(&y), &r)
    };
    let mut y = be.zeros(g.rows() * g.c);
    be.max_pool(&g, &be.upload(&x), &mut y);
    let mut dx = be.zeros(g.input_len());
    be.max_pool_backward(&g, &be.upload(&x), &y, &be.upload(&r), &mut dx);
    fd_check(&format!("max_pool {g:?}"), &x, &be.download(&dx), 1e-2, 1e-3, 1e-4, fwd);
}

/// `softmax_rows_backward` by finite differences.
pub fn softmax_rows_grad<B: Backend>(be: &B, rows: usize, cols: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rand_vec(&mut rng, rows * cols).iter().map(|v| v * 3.0).collect();
    let r = rand_vec(&mut rng, rows * cols);
    let fwd = |x: &[f32]| {
        let mut y = be.zeros(rows * cols);
        be.softmax_rows(&be.upload(x), rows, cols, &mut y);
        weighted(&be.download(&y), &r)
    };
    let mut y = be.zeros(rows * cols);
    be.softmax_rows(&be.upload(&x), rows, cols, &mut y);
    let mut dx = be.zeros(rows * cols);
    be.softmax_rows_backward(&y, &be.upload(&r), rows, cols, &mut dx);
    fd_check("softmax_rows", &x, &be.download(&dx), 1e-3, 1e-2, 1e-3, fwd);
}

/// `∂L/∂logits` of the smoothed, floored cross-entropy by finite differences.
pub fn cross_entropy_grad<B: Backend>(be: &B, d: &CrossEntropy, seed: u64) {
    let (batch, classes) = (d.batch, d.classes);
    let mut rng = Rng::new(seed);
    let z: Vec<f32> = rand_vec(&mut rng, batch * classes).iter().map(|v| v * 2.0).collect();
    let bl: Vec<u32> = (0..batch).map(|_| rng.below(classes) as u32).collect();
    let mut dz = be.zeros(batch * classes);
    let fwd = |z: &[f32]| {
        let mut scratch = be.zeros(batch * classes);
        be.cross_entropy(d, &be.upload(z), &bl, &mut scratch) as f64
    };
    be.cross_entropy(d, &be.upload(&z), &bl, &mut dz);
    fd_check(&format!("cross_entropy {d:?}"), &z, &be.download(&dz), 1e-2, 1e-2, 2e-4, fwd);
}

/// `conv2d_backward` (with or without a per-tap scale) by finite differences: `L = Σ y·dy` is
/// linear in each of `x`, `w`, `s`, so the difference is exact up to rounding.
pub fn conv2d_grad<B: Backend>(be: &B, g: Window, n: usize, scaled: bool, seed: u64) {
    let case = ConvCase::new(g, n, scaled, seed);
    let loss = |x: &[f32], w: &[f32], s: Option<&[f32]>| {
        let mut y = be.zeros(g.rows() * n);
        let s = s.map(|s| be.upload(s));
        let scale = s.as_ref().map_or(ConvScale::None, ConvScale::Taps);
        be.conv2d(&g, n, &be.upload(x), &be.upload(w), scale, &mut y);
        be.download(&y).iter().zip(&case.dy).map(|(&a, &b)| a as f64 * b as f64).sum::<f64>()
    };
    let [_, dx, dw, ds] = case.run(be, true, &vec![0.0; case.w.len()]);
    let s = case.s.as_deref();
    fd_check("conv2d dx", &case.x, &dx, 1e-2, 1e-3, 1e-4, |x| loss(x, &case.w, s));
    fd_check("conv2d dw", &case.w, &dw, 1e-2, 1e-3, 1e-4, |w| loss(&case.x, w, s));
    if let Some(s) = s {
        fd_check("conv2d ds", s, &ds, 1e-2, 1e-3, 1e-4, |s| loss(&case.x, &case.w, Some(s)));
    }
}

/// SGD and Adam updates computed by hand.
pub fn optimisers_by_hand<B: Backend>(be: &B) {
    sgd_by_hand(be);
    adam_by_hand(be);
}

fn sgd_by_hand<B: Backend>(be: &B) {
    // g' = g + wd·w = 0.5 + 0.1·1 = 0.6
    let s = SgdStep { lr: 0.1, momentum: 0.9, dampening: 0.5, weight_decay: 0.1, first_step: false };
    let (mut w, mut v) = (be.upload(&[1.0, -2.0]), be.upload(&[0.2, 0.0]));
    be.sgd_step(&s, &mut w, &be.upload(&[0.5, 1.2]), &mut v);
    // v = 0.9·0.2 + 0.5·0.6 = 0.48, w = 1 − 0.1·0.48 = 0.952
    // second: g' = 1.2 − 0.2 = 1.0, v = 0 + 0.5·1.0 = 0.5, w = −2 − 0.05 = −2.05
    let (w, v) = (be.download(&w), be.download(&v));
    approx::assert_relative_eq!(v[0], 0.48, max_relative = 1e-6);
    approx::assert_relative_eq!(w[0], 0.952, max_relative = 1e-6);
    approx::assert_relative_eq!(v[1], 0.5, max_relative = 1e-6);
    approx::assert_relative_eq!(w[1], -2.05, max_relative = 1e-6);

    // first step: v = g' (no dampening, no momentum), w = 1 − 0.1·0.6 = 0.94
    let s = SgdStep { first_step: true, ..s };
    let (mut w, mut v) = (be.upload(&[1.0]), be.upload(&[123.0]));
    be.sgd_step(&s, &mut w, &be.upload(&[0.5]), &mut v);
    approx::assert_relative_eq!(be.download(&v)[0], 0.6, max_relative = 1e-6);
    approx::assert_relative_eq!(be.download(&w)[0], 0.94, max_relative = 1e-6);

    // TF momentum: dampening 0, v = 0.9·v + g'
    let s = SgdStep { lr: 0.5, momentum: 0.9, dampening: 0.0, weight_decay: 0.0, first_step: false };
    let (mut w, mut v) = (be.upload(&[-2.0]), be.upload(&[1.0]));
    be.sgd_step(&s, &mut w, &be.upload(&[1.0]), &mut v);
    approx::assert_relative_eq!(be.download(&v)[0], 1.9, max_relative = 1e-6);
    approx::assert_relative_eq!(be.download(&w)[0], -2.95, max_relative = 1e-6);
}

fn adam_by_hand<B: Backend>(be: &B) {
    // t = 1: m = 0.05, v = 2.5e-4, m̂ = 0.5, v̂ = 0.25, w = 1 − 0.1·0.5/(0.5 + 1e-8)
    let s = AdamStep { lr: 0.1, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, t: 1 };
    let (mut w, mut m, mut v) = (be.upload(&[1.0]), be.upload(&[0.0]), be.upload(&[0.0]));
    be.adam_step(&s, &mut w, &be.upload(&[0.5]), &mut m, &mut v);
    approx::assert_relative_eq!(be.download(&m)[0], 0.05, max_relative = 1e-6);
    approx::assert_relative_eq!(be.download(&v)[0], 2.5e-4, max_relative = 1e-6);
    approx::assert_relative_eq!(be.download(&w)[0], 0.9, max_relative = 1e-6);

    // t = 2 with weight decay: g' = −1 + 0.5·2 = 0, m = 0.09, v = 0.00999,
    // w = 2 − 0.1·(0.09/0.19)/(sqrt(0.00999/0.001999) + 1e-8) = 1.97881089761411
    let s = AdamStep { weight_decay: 0.5, t: 2, ..s };
    let (mut w, mut m, mut v) = (be.upload(&[2.0]), be.upload(&[0.1]), be.upload(&[0.01]));
    be.adam_step(&s, &mut w, &be.upload(&[-1.0]), &mut m, &mut v);
    approx::assert_relative_eq!(be.download(&m)[0], 0.09, max_relative = 1e-6);
    approx::assert_relative_eq!(be.download(&v)[0], 0.00999, max_relative = 1e-6);
    approx::assert_relative_eq!(be.download(&w)[0], 1.978_810_9, max_relative = 1e-6);
}
