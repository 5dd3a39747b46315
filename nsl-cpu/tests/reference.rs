//! Every op against a naive reference (tests/common), on random shapes (proptest) and on a
//! few large shapes that take the parallel code paths.

mod common;

use common::{assert_close, be, close, rand_range, rand_vec};
use nsl_core::{AdamStep, Backend, BatchNormDims, CrossEntropy, Gemm, Map, Patch, Rng, SgdStep, Window};
use nsl_cpu::Cpu;
use proptest::prelude::*;

// ---- checks shared by the random-shape and the large-shape tests ------------------------------

fn check_gemm(be: &Cpu, g: &Gemm, seed: u64) {
    let mut rng = Rng::new(seed);
    let len = |stride: usize, one: usize| (g.batch - 1) * stride + one;
    let a = rand_vec(&mut rng, len(g.stride_a, g.m * g.k));
    let b = rand_vec(&mut rng, len(g.stride_b, g.k * g.n));
    let c0 = if g.beta == 0.0 {
        vec![f32::NAN; len(g.stride_c, g.m * g.n)] // garbage must be ignored
    } else {
        rand_vec(&mut rng, len(g.stride_c, g.m * g.n))
    };
    let mut c = be.upload(&c0);
    be.gemm(g, &be.upload(&a), &be.upload(&b), &mut c);
    let expected = common::gemm(g, &a, &b, &c0);
    // Padding between C blocks must be left untouched (NaN stays NaN).
    assert_close(&format!("gemm {g:?}"), &be.download(&c), &expected, 1e-4, 1e-5 * g.k as f64);
}

fn check_elementwise(be: &Cpu, n: usize, seed: u64) {
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
        let bin = if std::ptr::eq(input, &pos) { bpos.clone() } else { be.upload(input) };
        be.map(f, &bin, &mut out);
        close(&format!("map {f:?}"), &be.download(&out), &common::map(f, input));
    }

    let d = be.dot(&bx, &by0);
    let e = common::dot(&x, &y0);
    let scale: f64 = x.iter().zip(&y0).map(|(&a, &b)| (a as f64 * b as f64).abs()).sum();
    assert!((d as f64 - e).abs() <= 1e-6 * scale + 1e-6, "dot: {d} vs {e}");
}

fn check_rows_cols(be: &Cpu, rows: usize, cols: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rand_vec(&mut rng, rows * cols);
    let y = rand_vec(&mut rng, rows * cols);
    let sr = rand_vec(&mut rng, rows);
    let sc = rand_vec(&mut rng, cols);
    let (bx, by) = (be.upload(&x), be.upload(&y));
    let mut out = be.zeros(rows * cols);
    be.mul_rows(&bx, &be.upload(&sr), rows, cols, &mut out);
    close("mul_rows", &be.download(&out), &common::mul_rows(&x, &sr, rows, cols));
    be.mul_cols(&bx, &be.upload(&sc), rows, cols, &mut out);
    close("mul_cols", &be.download(&out), &common::mul_cols(&x, &sc, rows, cols));
    let mut o = be.upload(&vec![f32::NAN; rows]);
    be.dot_rows(&bx, &by, rows, cols, &mut o);
    assert_close("dot_rows", &be.download(&o), &common::dot_rows(&x, &y, rows, cols), 1e-5, 1e-6);
    let mut o = be.upload(&vec![f32::NAN; cols]);
    be.dot_cols(&bx, &by, rows, cols, &mut o);
    assert_close("dot_cols", &be.download(&o), &common::dot_cols(&x, &y, rows, cols), 1e-5, 1e-6);
}

fn check_window_ops(be: &Cpu, g: &Window, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rand_vec(&mut rng, g.input_len());
    let bx = be.upload(&x);
    let what = format!("{g:?}");

    let mut cols = be.upload(&vec![f32::NAN; g.rows() * g.patch_len()]);
    be.im2col(g, &bx, &mut cols);
    close(&format!("im2col {what}"), &be.download(&cols), &common::im2col(g, &x));

    let dcols = rand_vec(&mut rng, g.rows() * g.patch_len());
    let mut dx = be.upload(&vec![f32::NAN; g.input_len()]);
    be.col2im(g, &be.upload(&dcols), &mut dx);
    assert_close(&format!("col2im {what}"), &be.download(&dx), &common::col2im(g, &dcols), 1e-5, 1e-5);

    let eps = 1e-3;
    let mut n = be.zeros(g.rows());
    be.window_norm(g, &bx, eps, &mut n);
    let nv = be.download(&n);
    close(&format!("window_norm {what}"), &nv, &common::window_norm(g, &x, eps));

    let dn = rand_vec(&mut rng, g.rows());
    let dx0 = rand_vec(&mut rng, g.input_len());
    let mut dx = be.upload(&dx0);
    be.window_norm_backward(g, &bx, &n, &be.upload(&dn), &mut dx);
    let e = common::window_norm_backward(g, &x, &nv, &dn, &dx0);
    assert_close(&format!("window_norm_backward {what}"), &be.download(&dx), &e, 1e-4, 1e-4);

    let xd = common::distinct_vec(&mut rng, g.input_len());
    let bxd = be.upload(&xd);
    let mut y = be.zeros(g.rows() * g.c);
    be.max_pool(g, &bxd, &mut y);
    let yv = be.download(&y);
    close(&format!("max_pool {what}"), &yv, &common::max_pool(g, &xd));
    // ties: repeated values, the first row-major maximum wins
    let xt: Vec<f32> = x.iter().map(|v| (v * 2.0).round()).collect();
    let bxt = be.upload(&xt);
    let mut yt = be.zeros(g.rows() * g.c);
    be.max_pool(g, &bxt, &mut yt);
    let dy = rand_vec(&mut rng, g.rows() * g.c);
    for (xs, bxs, ys) in [(&xd, &bxd, &y), (&xt, &bxt, &yt)] {
        let mut dx = be.upload(&vec![f32::NAN; g.input_len()]);
        be.max_pool_backward(g, bxs, ys, &be.upload(&dy), &mut dx);
        let e = common::max_pool_backward(g, xs, &be.download(ys), &dy);
        assert_close(&format!("max_pool_backward {what}"), &be.download(&dx), &e, 1e-5, 1e-6);
    }
}

fn check_patch_ops(be: &Cpu, rows: usize, taps: usize, c: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let cols = rand_vec(&mut rng, rows * taps * c);
    let ms = rand_vec(&mut rng, rows * taps);
    let mm = rand_vec(&mut rng, rows * taps * taps);
    let dout = rand_vec(&mut rng, rows * taps * c);
    let (bc, bdo) = (be.upload(&cols), be.upload(&dout));
    let what = format!("rows {rows} taps {taps} c {c}");

    let mut out = be.upload(&vec![f32::NAN; rows * taps * c]);
    be.patch_scale(&Patch { rows, taps, c }, &bc, &be.upload(&ms), &mut out);
    close(&format!("patch_scale {what}"), &be.download(&out), &common::patch_scale(rows, taps, c, &cols, &ms));

    let mut dcols = be.upload(&vec![f32::NAN; rows * taps * c]);
    let mut dm = be.upload(&vec![f32::NAN; rows * taps]);
    be.patch_scale_backward(&Patch { rows, taps, c }, &bc, &be.upload(&ms), &bdo, &mut dcols, &mut dm);
    let (edc, edm) = common::patch_scale_backward(rows, taps, c, &cols, &ms, &dout);
    close(&format!("patch_scale_backward dcols {what}"), &be.download(&dcols), &edc);
    close(&format!("patch_scale_backward dm {what}"), &be.download(&dm), &edm);

    be.patch_matmul(&Patch { rows, taps, c }, &bc, &be.upload(&mm), &mut out);
    close(&format!("patch_matmul {what}"), &be.download(&out), &common::patch_matmul(rows, taps, c, &cols, &mm));

    let mut dm = be.upload(&vec![f32::NAN; rows * taps * taps]);
    be.patch_matmul_backward(&Patch { rows, taps, c }, &bc, &be.upload(&mm), &bdo, &mut dcols, &mut dm);
    let (edc, edm) = common::patch_matmul_backward(rows, taps, c, &cols, &mm, &dout);
    close(&format!("patch_matmul_backward dcols {what}"), &be.download(&dcols), &edc);
    close(&format!("patch_matmul_backward dm {what}"), &be.download(&dm), &edm);
}

fn check_batch_norm(be: &Cpu, d: &BatchNormDims, seed: u64) {
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
    let (ey, emean, evar) = common::batch_norm_train(d, &x, &gamma, &beta);
    assert_close(&format!("bn mean {what}"), &be.download(&mean), &emean, 1e-5, 1e-6);
    assert_close(&format!("bn var {what}"), &be.download(&var), &evar, 1e-4, 1e-6);
    assert_close(&format!("bn y {what}"), &be.download(&y), &ey, 1e-3, 1e-4);

    let rm = rand_vec(&mut rng, c);
    let rv = rand_range(&mut rng, c, 0.2, 2.0);
    let mut ye = be.zeros(rows * c);
    be.batch_norm_eval(d, &bx, &bg, &bb, &be.upload(&rm), &be.upload(&rv), &mut ye);
    close(&format!("bn eval {what}"), &be.download(&ye), &common::batch_norm_eval(d, &x, &gamma, &beta, &rm, &rv));

    let dy = rand_vec(&mut rng, rows * c);
    let dg0 = rand_vec(&mut rng, c);
    let db0 = rand_vec(&mut rng, c);
    let (mv, vv) = (be.download(&mean), be.download(&var));
    let mut dx = be.upload(&vec![f32::NAN; rows * c]);
    let mut dg = be.upload(&dg0);
    let mut db = be.upload(&db0);
    be.batch_norm_backward(d, &bx, &bg, &bb, &mean, &var, None, &be.upload(&dy), &mut dx, &mut dg, &mut db);
    let (edx, edg, edb) = common::batch_norm_backward(d, &x, &gamma, &mv, &vv, &dy, &dg0, &db0);
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

fn check_activations(be: &Cpu, rows: usize, cols: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x: Vec<f32> = rand_vec(&mut rng, rows * cols).iter().map(|v| v * 5.0).collect();
    let bx = be.upload(&x);
    let mut y = be.upload(&vec![f32::NAN; rows * cols]);
    be.relu(&bx, &mut y);
    close("relu", &be.download(&y), &common::relu(&x));
    let dy = rand_vec(&mut rng, rows * cols);
    let bdy = be.upload(&dy);
    let mut dx = be.zeros(rows * cols);
    be.relu_backward(&y, &bdy, &mut dx);
    close("relu_backward", &be.download(&dx), &common::relu_backward(&be.download(&y), &dy));

    be.softmax_rows(&bx, rows, cols, &mut y);
    let yv = be.download(&y);
    assert_close("softmax_rows", &yv, &common::softmax_rows(&x, rows, cols), 1e-5, 1e-7);
    be.softmax_rows_backward(&y, &bdy, rows, cols, &mut dx);
    assert_close(
        "softmax_rows_backward",
        &be.download(&dx),
        &common::softmax_rows_backward(&yv, &dy, rows, cols),
        1e-4,
        1e-6,
    );
}

fn check_cross_entropy(be: &Cpu, d: &CrossEntropy, seed: u64) {
    let mut rng = Rng::new(seed);
    let z: Vec<f32> = rand_vec(&mut rng, d.batch * d.classes).iter().map(|v| v * 4.0).collect();
    let labels: Vec<u32> = (0..d.batch).map(|_| rng.below(d.classes) as u32).collect();
    let mut dz = be.upload(&vec![f32::NAN; d.batch * d.classes]);
    let loss = be.cross_entropy(d, &be.upload(&z), &labels, &mut dz);
    let (el, edz) = common::cross_entropy(d, &z, &labels);
    assert_close(&format!("ce loss {d:?}"), &[loss], &[el], 1e-5, 1e-6);
    assert_close(&format!("ce dlogits {d:?}"), &be.download(&dz), &edz, 1e-4, 1e-7);
}

fn check_optim(be: &Cpu, n: usize, seed: u64) {
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
        let (ew, ev) = common::sgd_step(&s, &w, &g, &v0);
        close("sgd w", &be.download(&bw), &ew);
        close("sgd v", &be.download(&bv), &ev);
    }
    for t in [1, 2, 50] {
        let s = AdamStep { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 1e-4, t };
        let (mut bw, mut bm, mut bv) = (be.upload(&w), be.upload(&m0), be.upload(&sq));
        be.adam_step(&s, &mut bw, &be.upload(&g), &mut bm, &mut bv);
        let (ew, em, ev) = common::adam_step(&s, &w, &g, &m0, &sq);
        assert_close("adam w", &be.download(&bw), &ew, 1e-5, 1e-6);
        close("adam m", &be.download(&bm), &em);
        close("adam v", &be.download(&bv), &ev);
    }
}

// ---- random shapes --------------------------------------------------------------------------

fn gemm_case(mn: std::ops::RangeInclusive<usize>, k: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Gemm> {
    gemm_with((mn.clone(), mn, k, any::<bool>(), any::<bool>()))
}

/// Shapes of convolutions, which take the streaming kernels: many rows of `C` with a small
/// `op(B)` (`cols·w`, `dy·wᵀ`; odd widths, tails of every tile), or a long inner dimension
/// with a small `C` (`colsᵀ·dy`).
fn skinny_case() -> impl Strategy<Value = Gemm> {
    gemm_with(prop_oneof![
        (128usize..=700, 1usize..=140, 1usize..=150, any::<bool>()).prop_map(|(m, n, k, tb)| (m, n, k, false, tb)),
        (1usize..=40, 128usize..=400, 1usize..=100, any::<bool>()).prop_map(|(n, m, k, tb)| (m, n, k, false, tb)),
        (1usize..=90, 1usize..=90, 512usize..=2500).prop_map(|(m, n, k)| (m, n, k.max(4 * m.max(n)), true, false)),
    ])
}

/// Random batch, alpha, beta and strides around a shape `(m, n, k, trans_a, trans_b)`.
fn gemm_with(shape: impl Strategy<Value = (usize, usize, usize, bool, bool)>) -> impl Strategy<Value = Gemm> {
    (
        shape,
        (
            1usize..=3,
            prop::sample::select(vec![1.0f32, -0.5, 2.0]),
            prop::sample::select(vec![0.0f32, 1.0, 0.5]),
            0u8..5,
        ),
    )
        .prop_map(|((m, n, k, ta, tb), (batch, alpha, beta, strides))| {
            let mut g = Gemm::new(m, n, k).scaled(alpha, beta).batched(batch);
            g.trans_a = ta;
            g.trans_b = tb;
            match strides {
                1 => g.stride_a = 0, // broadcast A
                2 => g.stride_b = 0, // broadcast B
                3 => {
                    g.stride_a += 3;
                    g.stride_b += 5;
                    g.stride_c += 2;
                }
                4 if g.beta != 0.0 => g.stride_c = 0, // sum over the batch
                _ => {}
            }
            g
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn gemm_small(g in gemm_case(1..=33, 1..=33), seed in any::<u64>()) {
        check_gemm(be(), &g, seed);
    }

    #[test]
    fn elementwise(n in 0usize..300, seed in any::<u64>()) {
        check_elementwise(be(), n, seed);
    }

    #[test]
    fn rows_cols(rows in 1usize..40, cols in 1usize..40, seed in any::<u64>()) {
        check_rows_cols(be(), rows, cols, seed);
    }

    #[test]
    fn window_ops(g in common::window(), seed in any::<u64>()) {
        check_window_ops(be(), &g, seed);
    }

    #[test]
    fn patch_ops(rows in 1usize..20, taps in 1usize..=10, c in 1usize..=7, seed in any::<u64>()) {
        check_patch_ops(be(), rows, taps, c, seed);
    }

    #[test]
    fn batch_norm(rows in 1usize..60, c in 1usize..=9, eps in prop::sample::select(vec![1e-5f32, 1e-3]),
                  seed in any::<u64>()) {
        check_batch_norm(be(), &BatchNormDims { rows, c, eps, relu: false }, seed);
    }

    #[test]
    fn activations(rows in 1usize..10, cols in 1usize..50, seed in any::<u64>()) {
        check_activations(be(), rows, cols, seed);
    }

    #[test]
    fn cross_entropy(batch in 1usize..10, classes in 1usize..=12,
                     smoothing in prop::sample::select(vec![0.0f32, 0.01, 0.1]),
                     floor in prop::sample::select(vec![0.0f32, 1e-4, 1e-2]),
                     seed in any::<u64>()) {
        check_cross_entropy(be(), &CrossEntropy { batch, classes, smoothing, floor }, seed);
    }

    #[test]
    fn optimisers(n in 1usize..100, seed in any::<u64>()) {
        check_optim(be(), n, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(6))]

    /// Shapes big enough to be split into panels and run in parallel.
    #[test]
    fn gemm_large(g in gemm_case(60..=260, 1..=80), seed in any::<u64>()) {
        check_gemm(be(), &g, seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Convolution shapes: the streaming kernels of gemm.rs.
    #[test]
    fn gemm_skinny(g in skinny_case(), seed in any::<u64>()) {
        check_gemm(be(), &g, seed);
    }
}

// ---- fixed shapes on the parallel paths -------------------------------------------------------

#[test]
fn large_shapes_take_parallel_paths() {
    let be = Cpu::with_threads(3);
    check_gemm(&be, &Gemm::new(517, 300, 77).scaled(0.5, 1.0), 1);
    check_gemm(&be, &Gemm::new(70, 650, 40).tb(), 2);
    check_gemm(&be, &Gemm::new(64, 48, 100).ta().batched(9).scaled(1.0, 0.0), 3);
    check_elementwise(&be, 100_003, 4);
    check_rows_cols(&be, 3001, 17, 5);
    check_rows_cols(&be, 7, 9001, 6);
    check_window_ops(&be, &Window::same(2, 19, 23, 16, 3, 1), 7);
    check_window_ops(&be, &Window::valid(1, 30, 26, 8, 4, 2), 8);
    check_window_ops(&be, &Window::same(1, 40, 40, 24, 7, 2), 9);
    check_patch_ops(&be, 700, 9, 8, 10);
    check_batch_norm(&be, &BatchNormDims { rows: 5000, c: 13, eps: 1e-5, relu: false }, 11);
    check_activations(&be, 900, 50, 12);
    check_cross_entropy(&be, &CrossEntropy { batch: 1000, classes: 40, smoothing: 0.01, floor: 1e-4 }, 13);
    check_optim(&be, 70_001, 14);
}

// ---- edge cases ------------------------------------------------------------------------------

/// The one-pass statistics (sums of values shifted by the first row) keep the variance when the
/// mean is a million standard deviations away from zero, where `Σx² − (Σx)²/N` would cancel.
#[test]
fn batch_norm_statistics_with_a_large_offset() {
    let (rows, c) = (20_000, 5);
    let mut rng = Rng::new(3);
    let x: Vec<f32> = rand_vec(&mut rng, rows * c).iter().map(|v| 1e4 + 0.01 * v).collect();
    let d = BatchNormDims { rows, c, eps: 1e-5, relu: false };
    let be = Cpu::with_threads(2);
    let (mut y, mut mean, mut var) = (be.zeros(rows * c), be.zeros(c), be.zeros(c));
    be.batch_norm_train(&d, &be.upload(&x), &be.upload(&vec![1.0; c]), &be.zeros(c), &mut y, &mut mean, &mut var);
    let (_, emean, evar) = common::batch_norm_train(&d, &x, &vec![1.0; c], &vec![0.0; c]);
    assert_close("large-offset mean", &be.download(&mean), &emean, 1e-7, 0.0);
    assert_close("large-offset var", &be.download(&var), &evar, 1e-4, 0.0);
}

#[test]
fn conv_shapes_take_streaming_paths() {
    let be = Cpu::with_threads(3);
    // (rows, K, N) of convolutions: y = cols·w, dW += colsᵀ·dy, dcols = dy·wᵀ
    for (i, &(rows, k, n)) in
        [(4100, 27, 32), (3000, 72, 9), (1500, 288, 70), (2048, 131, 129), (700, 1152, 5)].iter().enumerate()
    {
        let s = 20 + 3 * i as u64;
        check_gemm(&be, &Gemm::new(rows, n, k), s);
        check_gemm(&be, &Gemm::new(k, n, rows).ta().accumulate(), s + 1);
        check_gemm(&be, &Gemm::new(rows, k, n).tb().scaled(-0.5, 0.0), s + 2);
    }
    // batched, with C summed over the batch (stride_c = 0)
    check_gemm(&be, &Gemm { stride_c: 0, ..Gemm::new(9, 5, 3000).ta().batched(3).scaled(0.5, 1.0) }, 40);
    check_gemm(&be, &Gemm { stride_c: 0, ..Gemm::new(300, 7, 20).batched(4).accumulate() }, 41);
    check_gemm(&be, &Gemm { stride_b: 0, ..Gemm::new(300, 17, 20).tb().batched(3).scaled(2.0, 0.5) }, 42);
}

#[test]
fn gemm_k_zero_scales_c() {
    let be = be();
    let mut c = be.upload(&[1.0, f32::NAN, 3.0, 4.0]);
    be.gemm(&Gemm::new(2, 2, 0), &be.zeros(0), &be.zeros(0), &mut c);
    assert_eq!(be.download(&c), vec![0.0; 4]);
    let mut c = be.upload(&[1.0, 2.0, 3.0, 4.0]);
    be.gemm(&Gemm::new(2, 2, 0).scaled(1.0, 0.5), &be.zeros(0), &be.zeros(0), &mut c);
    assert_eq!(be.download(&c), vec![0.5, 1.0, 1.5, 2.0]);
}

#[test]
fn gemm_stride_c_zero_sums_over_batch() {
    // stride_c = 0 with beta = 1: C accumulates every batch item's product, in order.
    let be = be();
    let g = Gemm { stride_c: 0, ..Gemm::new(2, 3, 4).batched(5).accumulate() };
    let mut rng = Rng::new(3);
    let a = rand_vec(&mut rng, 5 * 8);
    let b = rand_vec(&mut rng, 5 * 12);
    let c0 = rand_vec(&mut rng, 6);
    let mut c = be.upload(&c0);
    be.gemm(&g, &be.upload(&a), &be.upload(&b), &mut c);
    close("gemm stride_c 0", &be.download(&c), &common::gemm(&g, &a, &b, &c0));
}

#[test]
fn max_pool_padding_never_wins() {
    // All inputs negative: a zero from the padding must not be the max.
    let be = be();
    let g = Window::same(1, 3, 3, 1, 3, 1);
    let x: Vec<f32> = (0..9).map(|i| -1.0 - i as f32).collect();
    let mut y = be.zeros(9);
    be.max_pool(&g, &be.upload(&x), &mut y);
    let y = be.download(&y);
    assert!(y.iter().all(|&v| v < 0.0), "{y:?}");
    assert_eq!(y[0], -1.0);
    assert_eq!(y[8], -5.0);
}

#[test]
fn name_reports_threads_and_simd() {
    let name = Cpu::with_threads(3).name();
    assert!(name.starts_with("cpu (3 threads, "), "{name}");
    assert!(Cpu::with_threads(1).name().starts_with("cpu (1 thread, "));
    assert!(Cpu::new().name().starts_with("cpu ("));
}
