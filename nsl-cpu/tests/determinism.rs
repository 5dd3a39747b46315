//! Bitwise reproducibility: the same inputs give the same bits run to run, and (by design:
//! fixed, size-only chunking) for any thread count.

use nsl_core::conformance::rand_vec;
use nsl_core::{Backend, BatchNormDims, ConvScale, CrossEntropy, Gemm, Rng, Window};
use nsl_cpu::Cpu;

/// Runs a pipeline of reducing / scattering ops and returns every output's bits.
fn pipeline(be: &Cpu) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(42);
    let mut outs = Vec::new();
    let mut keep = |v: Vec<f32>| outs.push(v.iter().map(|x| x.to_bits()).collect::<Vec<u32>>());

    // gemm, single (panelled) and batched, with beta ≠ 0
    let g = Gemm::new(513, 257, 300).scaled(0.7, 0.3);
    let (a, b, c0) = (rand_vec(&mut rng, 513 * 300), rand_vec(&mut rng, 300 * 257), rand_vec(&mut rng, 513 * 257));
    let mut c = be.upload(&c0);
    be.gemm(&g, &be.upload(&a), &be.upload(&b), &mut c);
    keep(be.download(&c));
    let g = Gemm::new(100, 90, 80).ta().tb().batched(7).accumulate();
    let (a, b) = (rand_vec(&mut rng, 7 * 8000), rand_vec(&mut rng, 7 * 7200));
    let mut c = be.upload(&rand_vec(&mut rng, 7 * 9000));
    be.gemm(&g, &be.upload(&a), &be.upload(&b), &mut c);
    keep(be.download(&c));
    // convolution-shaped products (streaming kernels): y = cols·w, dW += colsᵀ·dy, dcols = dy·wᵀ
    let (rows, k, n) = (20_000, 75, 9);
    let (cols, w, dy) = (rand_vec(&mut rng, rows * k), rand_vec(&mut rng, k * n), rand_vec(&mut rng, rows * n));
    let (cols, w, dy) = (be.upload(&cols), be.upload(&w), be.upload(&dy));
    let mut y = be.zeros(rows * n);
    be.gemm(&Gemm::new(rows, n, k), &cols, &w, &mut y);
    keep(be.download(&y));
    let mut dw = be.upload(&rand_vec(&mut rng, k * n));
    be.gemm(&Gemm::new(k, n, rows).ta().accumulate(), &cols, &dy, &mut dw);
    keep(be.download(&dw));
    let mut dcols = be.zeros(rows * k);
    be.gemm(&Gemm::new(rows, k, n).tb(), &dy, &w, &mut dcols);
    keep(be.download(&dcols));

    // fused convolution with a patch scale, forward and backward (dW reduced over tasks)
    let (g, n) = (Window::same(12, 16, 16, 16, 3, 1), 24);
    let (x, w) = (be.upload(&rand_vec(&mut rng, g.input_len())), be.upload(&rand_vec(&mut rng, g.patch_len() * n)));
    let (s, dy) = (be.upload(&rand_vec(&mut rng, g.rows() * g.taps())), be.upload(&rand_vec(&mut rng, g.rows() * n)));
    let mut y = be.zeros(g.rows() * n);
    be.conv2d(&g, n, &x, &w, ConvScale::Taps(&s), &mut y);
    let (mut dx, mut dw, mut ds) =
        (be.zeros(g.input_len()), be.zeros(g.patch_len() * n), be.zeros(g.rows() * g.taps()));
    be.conv2d_backward(&g, n, &x, &w, ConvScale::Taps(&s), &dy, &mut dx, &mut dw, Some(&mut ds));
    for v in [&y, &dx, &dw, &ds] {
        keep(be.download(v));
    }

    // the scaled forward reading its windows in place (maps ≥ 32 wide), and the row-scaled
    // Winograd convolution with its backward
    let (g, n) = (Window::same(3, 8, 40, 8, 3, 1), 24);
    let (x, w) = (be.upload(&rand_vec(&mut rng, g.input_len())), be.upload(&rand_vec(&mut rng, g.patch_len() * n)));
    let s = be.upload(&rand_vec(&mut rng, g.rows() * g.taps()));
    let mut y = be.zeros(g.rows() * n);
    be.conv2d(&g, n, &x, &w, ConvScale::Taps(&s), &mut y);
    keep(be.download(&y));
    let (g, n) = (Window::same(4, 12, 12, 16, 3, 1), 16);
    let (x, w) = (be.upload(&rand_vec(&mut rng, g.input_len())), be.upload(&rand_vec(&mut rng, g.patch_len() * n)));
    let (q, dy) = (be.upload(&rand_vec(&mut rng, g.rows())), be.upload(&rand_vec(&mut rng, g.rows() * n)));
    let mut y = be.zeros(g.rows() * n);
    be.conv2d(&g, n, &x, &w, ConvScale::Rows(&q), &mut y);
    let (mut dx, mut dw) = (be.zeros(g.input_len()), be.zeros(g.patch_len() * n));
    be.conv2d_backward(&g, n, &x, &w, ConvScale::Rows(&q), &dy, &mut dx, &mut dw, None);
    for v in [&y, &dx, &dw] {
        keep(be.download(v));
    }

    // batch norm train + backward
    let d = BatchNormDims { rows: 20_000, c: 7, eps: 1e-5, relu: false };
    let x = be.upload(&rand_vec(&mut rng, 140_000));
    let (gamma, beta) = (be.upload(&rand_vec(&mut rng, 7)), be.upload(&rand_vec(&mut rng, 7)));
    let (mut y, mut mean, mut var) = (be.zeros(140_000), be.zeros(7), be.zeros(7));
    be.batch_norm_train(&d, &x, &gamma, &beta, &mut y, &mut mean, &mut var);
    let dy = be.upload(&rand_vec(&mut rng, 140_000));
    let (mut dx, mut dg, mut db) = (be.zeros(140_000), be.zeros(7), be.zeros(7));
    be.batch_norm_backward(&d, &x, &gamma, &beta, &mean, &var, None, &dy, &mut dx, &mut dg, &mut db);
    for v in [&y, &mean, &var, &dx, &dg, &db] {
        keep(be.download(v));
    }

    // col2im with overlapping windows, window-norm backward, max-pool backward
    let w = Window::same(3, 33, 29, 16, 3, 1);
    let dcols = be.upload(&rand_vec(&mut rng, w.rows() * w.patch_len()));
    let mut dxi = be.zeros(w.input_len());
    be.col2im(&w, &dcols, &mut dxi);
    keep(be.download(&dxi));
    let xi = be.upload(&rand_vec(&mut rng, w.input_len()));
    let mut n = be.zeros(w.rows());
    be.window_norm(&w, &xi, 1e-3, &mut n);
    let mut dxn = be.zeros(w.input_len());
    be.window_norm_backward(&w, &xi, &n, &be.upload(&rand_vec(&mut rng, w.rows())), &mut dxn);
    keep(be.download(&dxn));
    let p = Window::same(3, 33, 29, 16, 3, 2);
    let mut yp = be.zeros(p.rows() * p.c);
    be.max_pool(&p, &xi, &mut yp);
    let mut dxp = be.zeros(p.input_len());
    be.max_pool_backward(&p, &xi, &yp, &be.upload(&rand_vec(&mut rng, p.rows() * p.c)), &mut dxp);
    keep(be.download(&dxp));

    // reductions to scalars / columns
    let (u, v) = (be.upload(&rand_vec(&mut rng, 300_001)), be.upload(&rand_vec(&mut rng, 300_001)));
    keep(vec![be.dot(&u, &v)]);
    let mut cols = be.zeros(13);
    be.dot_cols(&u, &v, 23_077, 13, &mut cols);
    keep(be.download(&cols));
    let ce = CrossEntropy { batch: 3000, classes: 100, smoothing: 0.01, floor: 1e-4 };
    let z = be.upload(&rand_vec(&mut rng, 300_000));
    let labels: Vec<u32> = (0..3000).map(|i| i * 7 % 100).collect();
    let mut dz = be.zeros(300_000);
    let loss = be.cross_entropy(&ce, &z, &labels, &mut dz);
    keep(vec![loss]);
    keep(be.download(&dz));
    outs
}

#[test]
fn bitwise_identical_run_to_run() {
    let be = Cpu::with_threads(2);
    let first = pipeline(&be);
    let second = pipeline(&be);
    for (i, (a, b)) in first.iter().zip(&second).enumerate() {
        assert!(a == b, "output {i} differs between two runs with 2 threads");
    }
}

#[test]
fn bitwise_identical_across_thread_counts() {
    let one = pipeline(&Cpu::with_threads(1));
    for t in [2, 3] {
        let other = pipeline(&Cpu::with_threads(t));
        for (i, (a, b)) in one.iter().zip(&other).enumerate() {
            assert!(a == b, "output {i} differs between 1 and {t} threads");
        }
    }
}
