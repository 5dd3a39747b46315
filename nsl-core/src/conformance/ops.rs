//! Each forward op (and the simple backwards) against the naive `f64` references, one check
//! function per op family; `seed` draws the data.

use super::{assert_close, close, distinct_vec, rand_range, rand_vec, reference};
use crate::backend::contract::strided;
use crate::{AdamStep, Backend, BatchNormDims, CrossEntropy, Gemm, Map, Patch, Rng, SgdStep, Window};

/// Random `A`, `B` and starting `C` of a GEMM test, each as long as its strided batch needs;
/// with `β = 0`, `C` is NaN: garbage the op must ignore.
pub fn gemm_operands(g: &Gemm, seed: u64) -> [Vec<f32>; 3] {
    let mut rng = Rng::new(seed);
    let len = |stride, one| strided(g.batch, stride, one);
    let a = rand_vec(&mut rng, len(g.stride_a, g.m * g.k));
    let b = rand_vec(&mut rng, len(g.stride_b, g.k * g.n));
    let c = if g.beta == 0.0 {
        vec![f32::NAN; len(g.stride_c, g.m * g.n)]
    } else {
        rand_vec(&mut rng, len(g.stride_c, g.m * g.n))
    };
    [a, b, c]
}

pub fn check_gemm<B: Backend>(be: &B, g: &Gemm, seed: u64) {
    let [a, b, c0] = gemm_operands(g, seed);
    let mut c = be.upload(&c0);
    be.gemm(g, &be.upload(&a), &be.upload(&b), &mut c);
    let expected = reference::gemm(g, &a, &b, &c0);
    // Padding between C blocks must be left untouched (NaN stays NaN).
    assert_close(&format!("gemm {g:?}"), &be.download(&c), &expected, 1e-4, 1e-5 * g.k as f64);
}

pub fn check_elementwise<B: Backend>(be: &B, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rand_vec(&mut rng, n);
    let y0 = rand_vec(&mut rng, n);
    let (bx, by0) = (be.upload(&x), be.upload(&y0));

    let mut t = be.upload(&y0);
    be.fill(&mut t, 2.5);
    assert!(be.download(&t).iter().all(|&v| v == 2.5));

    let mut y = be.upload(&y0);
    be.axpy(-0.75, &bx, &mut y);
    let e: Vec<f64> = x.iter().zip(&y0).map(|(&x, &y)| y as f64 - 0.75 * x as f64).collect();
    close("axpy", &be.download(&y), &e);

    let mut s = be.upload(&x);
    be.scale(1.5, &mut s);
    let e: Vec<f64> = x.iter().map(|&x| 1.5 * x as f64).collect();
    close("scale", &be.download(&s), &e);

    let mut out = be.zeros(n);
    be.mul(&bx, &by0, &mut out);
    let e: Vec<f64> = x.iter().zip(&y0).map(|(&x, &y)| x as f64 * y as f64).collect();
    close("mul", &be.download(&out), &e);

    // map: positive inputs for sqrt, inputs away from 0 for the reciprocal
    let pos: Vec<f32> = x.iter().map(|v| v.abs() + 0.25).collect();
    let bpos = be.upload(&pos);
    let with_zero: Vec<f32> = x.iter().enumerate().map(|(i, &v)| if i % 7 == 3 { 0.0 } else { v }).collect();
    for (f, input) in [
        (Map::SqrtEps(1e-3), &pos),
        (Map::Recip, &pos),
        (Map::Square, &x),
        (Map::Sign, &with_zero),
        (Map::Affine(-2.0, 0.5), &x),
    ] {
        let upload;
        let bin = if std::ptr::eq(input, &pos) {
            &bpos
        } else {
            upload = be.upload(input);
            &upload
        };
        be.map(f, bin, &mut out);
        close(&format!("map {f:?}"), &be.download(&out), &reference::map(f, input));
    }

    let d = be.dot(&bx, &by0);
    let e = reference::dot(&x, &y0);
    let scale: f64 = x.iter().zip(&y0).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
    assert!((d as f64 - e).abs() <= 1e-6 * scale + 1e-6, "dot: {d} vs {e}");
}

pub fn check_rows_cols<B: Backend>(be: &B, rows: usize, cols: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rand_vec(&mut rng, rows * cols);
    let y = rand_vec(&mut rng, rows * cols);
    let sr = rand_vec(&mut rng, rows);
    let sc = rand_vec(&mut rng, cols);
    let (bx, by) = (be.upload(&x), be.upload(&y));
    let mut out = be.zeros(rows * cols);
    be.mul_rows(&bx, &be.upload(&sr), rows, cols, &mut out);
    close("mul_rows", &be.download(&out), &reference::mul_rows(&x, &sr, rows, cols));
    be.mul_cols(&bx, &be.upload(&sc), rows, cols, &mut out);
    close("mul_cols", &be.download(&out), &reference::mul_cols(&x, &sc, rows, cols));
    let mut o = be.upload(&vec![f32::NAN; rows]);
    be.dot_rows(&bx, &by, rows, cols, &mut o);
    assert_close("dot_rows", &be.download(&o), &reference::dot_rows(&x, &y, rows, cols), 1e-5, 1e-6);
    let mut o = be.upload(&vec![f32::NAN; cols]);
    be.dot_cols(&bx, &by, rows, cols, &mut o);
    assert_close("dot_cols", &be.download(&o), &reference::dot_cols(&x, &y, rows, cols), 1e-5, 1e-6);
}

pub fn check_window_ops<B: Backend>(be: &B, g: &Window, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rand_vec(&mut rng, g.input_len());
    let bx = be.upload(&x);
    let what = format!("{g:?}");

    let mut cols = be.upload(&vec![f32::NAN; g.rows() * g.patch_len()]);
    be.im2col(g, &bx, &mut cols);
    close(&format!("im2col {what}"), &be.download(&cols), &reference::im2col(g, &x));

    let dcols = rand_vec(&mut rng, g.rows() * g.patch_len());
    let mut dx = be.upload(&vec![f32::NAN; g.input_len()]);
    be.col2im(g, &be.upload(&dcols), &mut dx);
    assert_close(&format!("col2im {what}"), &be.download(&dx), &reference::col2im(g, &dcols), 1e-5, 1e-5);

    let eps = 1e-3;
    let mut n = be.zeros(g.rows());
    be.window_norm(g, &bx, eps, &mut n);
    let nv = be.download(&n);
    close(&format!("window_norm {what}"), &nv, &reference::window_norm(g, &x, eps));

    let dn = rand_vec(&mut rng, g.rows());
    let dx0 = rand_vec(&mut rng, g.input_len());
    let mut dx = be.upload(&dx0);
    be.window_norm_backward(g, &bx, &n, &be.upload(&dn), &mut dx);
    let e = reference::window_norm_backward(g, &x, &nv, &dn, &dx0);
    assert_close(&format!("window_norm_backward {what}"), &be.download(&dx), &e, 1e-4, 1e-4);

    let xd = distinct_vec(&mut rng, g.input_len());
    let bxd = be.upload(&xd);
    let mut y = be.zeros(g.rows() * g.c);
    be.max_pool(g, &bxd, &mut y);
    let yv = be.download(&y);
    close(&format!("max_pool {what}"), &yv, &reference::max_pool(g, &xd));
    // ties: repeated values, the first row-major maximum wins
    let xt: Vec<f32> = x.iter().map(|v| (v * 2.0).round()).collect();
    let bxt = be.upload(&xt);
    let mut yt = be.zeros(g.rows() * g.c);
    be.max_pool(g, &bxt, &mut yt);
    let dy = rand_vec(&mut rng, g.rows() * g.c);
    for (xs, bxs, ys) in [(&xd, &bxd, &y), (&xt, &bxt, &yt)] {
        let mut dx = be.upload(&vec![f32::NAN; g.input_len()]);
        be.max_pool_backward(g, bxs, ys, &be.upload(&dy), &mut dx);
        let e = reference::max_pool_backward(g, xs, &be.download(ys), &dy);
        assert_close(&format!("max_pool_backward {what}"), &be.download(&dx), &e, 1e-5, 1e-6);
    }
}

pub fn check_patch_ops<B: Backend>(be: &B, p: &Patch, seed: u64) {
    let Patch { rows, taps, c } = *p;
    let mut rng = Rng::new(seed);
    let cols = rand_vec(&mut rng, rows * taps * c);
    let ms = rand_vec(&mut rng, rows * taps);
    let mm = rand_vec(&mut rng, rows * taps * taps);
    let dout = rand_vec(&mut rng, rows * taps * c);
    let (bc, bdo) = (be.upload(&cols), be.upload(&dout));
    let what = format!("rows {rows} taps {taps} c {c}");

    let mut out = be.upload(&vec![f32::NAN; rows * taps * c]);
    be.patch_scale(p, &bc, &be.upload(&ms), &mut out);
    close(&format!("patch_scale {what}"), &be.download(&out), &reference::patch_scale(p, &cols, &ms));

    let mut dcols = be.upload(&vec![f32::NAN; rows * taps * c]);
    let mut dm = be.upload(&vec![f32::NAN; rows * taps]);
    be.patch_scale_backward(p, &bc, &be.upload(&ms), &bdo, &mut dcols, &mut dm);
    let (edc, edm) = reference::patch_scale_backward(p, &cols, &ms, &dout);
    close(&format!("patch_scale_backward dcols {what}"), &be.download(&dcols), &edc);
    close(&format!("patch_scale_backward dm {what}"), &be.download(&dm), &edm);

    be.patch_matmul(p, &bc, &be.upload(&mm), &mut out);
    close(&format!("patch_matmul {what}"), &be.download(&out), &reference::patch_matmul(p, &cols, &mm));

    let mut dm = be.upload(&vec![f32::NAN; rows * taps * taps]);
    be.patch_matmul_backward(p, &bc, &be.upload(&mm), &bdo, &mut dcols, &mut dm);
    let (edc, edm) = reference::patch_matmul_backward(p, &cols, &mm, &dout);
    close(&format!("patch_matmul_backward dcols {what}"), &be.download(&dcols), &edc);
    close(&format!("patch_matmul_backward dm {what}"), &be.download(&dm), &edm);
}

pub fn check_batch_norm<B: Backend>(be: &B, d: &BatchNormDims, seed: u64) {
    let mut rng = Rng::new(seed);
    let (rows, c) = (d.rows, d.c);
    // an offset mean per channel makes the two-pass variance matter
    let x: Vec<f32> = rand_vec(&mut rng, rows * c).iter().enumerate().map(|(i, v)| v * 2.0 + (i % c) as f32).collect();
    let gamma = rand_range(&mut rng, c, 0.5, 1.5);
    let beta = rand_vec(&mut rng, c);
    let (bx, bg, bb) = (be.upload(&x), be.upload(&gamma), be.upload(&beta));
    let what = format!("{d:?}");

    let mut y = be.upload(&vec![f32::NAN; rows * c]);
    let mut mean = be.zeros(c);
    let mut var = be.zeros(c);
    be.batch_norm_train(d, &bx, &bg, &bb, &mut y, &mut mean, &mut var);
    let (ey, emean, evar) = reference::batch_norm_train(d, &x, &gamma, &beta);
    assert_close(&format!("bn mean {what}"), &be.download(&mean), &emean, 1e-5, 1e-6);
    assert_close(&format!("bn var {what}"), &be.download(&var), &evar, 1e-4, 1e-6);
    assert_close(&format!("bn y {what}"), &be.download(&y), &ey, 1e-3, 1e-4);

    let rm = rand_vec(&mut rng, c);
    let rv = rand_range(&mut rng, c, 0.2, 2.0);
    let mut ye = be.zeros(rows * c);
    be.batch_norm_eval(d, &bx, &bg, &bb, &be.upload(&rm), &be.upload(&rv), &mut ye);
    close(&format!("bn eval {what}"), &be.download(&ye), &reference::batch_norm_eval(d, &x, &gamma, &beta, &rm, &rv));

    let dy = rand_vec(&mut rng, rows * c);
    let dg0 = rand_vec(&mut rng, c);
    let db0 = rand_vec(&mut rng, c);
    let (mv, vv) = (be.download(&mean), be.download(&var));
    let mut dx = be.upload(&vec![f32::NAN; rows * c]);
    let mut dg = be.upload(&dg0);
    let mut db = be.upload(&db0);
    be.batch_norm_backward(d, &bx, &bg, &bb, &mean, &var, None, &be.upload(&dy), &mut dx, &mut dg, &mut db);
    let (edx, edg, edb) = reference::batch_norm_backward(d, &x, &gamma, &mv, &vv, &dy, &dg0, &db0);
    assert_close(&format!("bn dx {what}"), &be.download(&dx), &edx, 1e-3, 1e-4);
    assert_close(&format!("bn dgamma {what}"), &be.download(&dg), &edg, 1e-4, 1e-4);
    assert_close(&format!("bn dbeta {what}"), &be.download(&db), &edb, 1e-4, 1e-4);

    // Fused batch norm + ReLU ≡ the two ops, bit for bit (forward, eval and backward).
    let mut yr = be.upload(&vec![f32::NAN; rows * c]);
    let (mut mean_r, mut var_r) = (be.zeros(c), be.zeros(c));
    be.batch_norm_train(&d.with_relu(), &bx, &bg, &bb, &mut yr, &mut mean_r, &mut var_r);
    let mut y_then_relu = be.zeros(rows * c);
    be.relu(&y, &mut y_then_relu);
    assert_eq!(be.download(&yr), be.download(&y_then_relu), "bn+relu train {what}");
    assert_eq!((be.download(&mean_r), be.download(&var_r)), (mv.clone(), vv.clone()), "bn+relu stats {what}");
    let (brm, brv) = (be.upload(&rm), be.upload(&rv));
    let mut yre = be.zeros(rows * c);
    be.batch_norm_eval(&d.with_relu(), &bx, &bg, &bb, &brm, &brv, &mut yre);
    let mut ye_then_relu = be.zeros(rows * c);
    be.relu(&ye, &mut ye_then_relu);
    assert_eq!(be.download(&yre), be.download(&ye_then_relu), "bn+relu eval {what}");
    let bdy = be.upload(&dy);
    let (mut dxr, mut dgr, mut dbr) = (be.upload(&vec![f32::NAN; rows * c]), be.upload(&dg0), be.upload(&db0));
    be.batch_norm_backward(&d.with_relu(), &bx, &bg, &bb, &mean, &var, Some(&yr), &bdy, &mut dxr, &mut dgr, &mut dbr);
    let mut dy_masked = be.zeros(rows * c);
    be.relu_backward(&yr, &bdy, &mut dy_masked);
    let (mut dxc, mut dgc, mut dbc) = (be.zeros(rows * c), be.upload(&dg0), be.upload(&db0));
    be.batch_norm_backward(d, &bx, &bg, &bb, &mean, &var, None, &dy_masked, &mut dxc, &mut dgc, &mut dbc);
    for (name, a, b) in [("dx", &dxr, &dxc), ("dgamma", &dgr, &dgc), ("dbeta", &dbr, &dbc)] {
        assert_eq!(be.download(a), be.download(b), "bn+relu backward {name} {what}");
    }
}

pub fn check_activations<B: Backend>(be: &B, rows: usize, cols: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rand_vec(&mut rng, rows * cols).iter().map(|v| v * 5.0).collect();
    let bx = be.upload(&x);
    let mut y = be.upload(&vec![f32::NAN; rows * cols]);
    be.relu(&bx, &mut y);
    close("relu", &be.download(&y), &reference::relu(&x));
    let dy = rand_vec(&mut rng, rows * cols);
    let bdy = be.upload(&dy);
    let mut dx = be.zeros(rows * cols);
    be.relu_backward(&y, &bdy, &mut dx);
    close("relu_backward", &be.download(&dx), &reference::relu_backward(&be.download(&y), &dy));

    be.softmax_rows(&bx, rows, cols, &mut y);
    let yv = be.download(&y);
    assert_close("softmax_rows", &yv, &reference::softmax_rows(&x, rows, cols), 1e-5, 1e-7);
    be.softmax_rows_backward(&y, &bdy, rows, cols, &mut dx);
    assert_close(
        "softmax_rows_backward",
        &be.download(&dx),
        &reference::softmax_rows_backward(&yv, &dy, rows, cols),
        1e-4,
        1e-6,
    );
}

pub fn check_cross_entropy<B: Backend>(be: &B, d: &CrossEntropy, seed: u64) {
    let mut rng = Rng::new(seed);
    let z: Vec<f32> = rand_vec(&mut rng, d.batch * d.classes).iter().map(|v| v * 4.0).collect();
    let labels: Vec<u32> = (0..d.batch).map(|_| rng.below(d.classes) as u32).collect();
    let mut dz = be.upload(&vec![f32::NAN; d.batch * d.classes]);
    let loss = be.cross_entropy(d, &be.upload(&z), &labels, &mut dz);
    let (el, edz) = reference::cross_entropy(d, &z, &labels);
    assert_close(&format!("ce loss {d:?}"), &[loss], &[el], 1e-5, 1e-6);
    assert_close(&format!("ce dlogits {d:?}"), &be.download(&dz), &edz, 1e-4, 1e-7);
}

pub fn check_optim<B: Backend>(be: &B, n: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let w = rand_vec(&mut rng, n);
    let g = rand_vec(&mut rng, n);
    let v0 = rand_vec(&mut rng, n);
    let m0 = rand_vec(&mut rng, n);
    let sq = rand_range(&mut rng, n, 0.0, 1.0);
    for first_step in [false, true] {
        let s = SgdStep { lr: 0.1, momentum: 0.9, dampening: 0.3, weight_decay: 5e-4, first_step };
        let (mut bw, mut bv) = (be.upload(&w), be.upload(&v0));
        be.sgd_step(&s, &mut bw, &be.upload(&g), &mut bv);
        let (ew, ev) = reference::sgd_step(&s, &w, &g, &v0);
        close("sgd w", &be.download(&bw), &ew);
        close("sgd v", &be.download(&bv), &ev);
    }
    for t in [1, 2, 50] {
        let s = AdamStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-4, t };
        let (mut bw, mut bm, mut bv) = (be.upload(&w), be.upload(&m0), be.upload(&sq));
        be.adam_step(&s, &mut bw, &be.upload(&g), &mut bm, &mut bv);
        let (ew, em, ev) = reference::adam_step(&s, &w, &g, &m0, &sq);
        assert_close("adam w", &be.download(&bw), &ew, 1e-5, 1e-6);
        close("adam m", &be.download(&bm), &em);
        close("adam v", &be.download(&bv), &ev);
    }
}

// ---- random shapes --------------------------------------------------------------------------
