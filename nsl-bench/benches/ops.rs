//! Criterion benches of every primitive op of [`nsl_core::Backend`] on the CPU backend, at
//! CNN-9's shapes (batch 32 to keep runs short): per convolution layer the convolution family,
//! the patch ops of the similarities, batch norm, activations, pooling and the elementwise ops on
//! that layer's maps; then the loss, softmax (self-attention over an 8×8 map's 64 positions)
//! and the optimiser steps over CNN-9's 511 200 parameters.
//!
//! `cargo bench -p nsl-bench --bench ops` (all), or e.g. `-- "conv2_x.*batch_norm"`.

use criterion::{criterion_group, criterion_main, Criterion};
use nsl_core::{AdamStep, Backend, BatchNormDims, ConvScale, CrossEntropy, Gemm, Map, Patch, Rng, SgdStep, Window};
use nsl_cpu::Cpu;

const BATCH: usize = 32;
/// Parameters of CNN-9 on CIFAR-10 (spec §2).
const CNN9_PARAMS: usize = 511_200;

fn layer_ops(c: &mut Criterion) {
    let be = Cpu::new();
    let mut rng = Rng::new(0);
    for (name, c_in, c_out, side) in nsl_bench::cnn9_layers() {
        let g = Window::same(BATCH, side, side, c_in, 3, 1);
        let (rows, pl, taps) = (g.rows(), g.patch_len(), g.taps());
        let mut normal = |len: usize, std: f32| be.upload(&rng.normal_vec(len, std));
        let x = normal(g.input_len(), 1.0);
        let w = normal(pl * c_out, 0.1);
        let m = normal(rows * taps, 1.0); // DNS: one scale per position and tap
        let m_uns = normal(rows * taps * taps, 0.1); // UNS: a k²×k² matrix per position
        let q = normal(rows, 1.0); // SphereConv's per-row 1/‖x‖
        let dy = normal(rows * c_out, 1.0);
        let dn = normal(rows, 1.0);
        let y = normal(rows * c_out, 1.0);
        let mut cols = be.zeros(rows * pl);
        let mut xt = be.zeros(rows * pl);
        let mut dcols = be.zeros(rows * pl);
        let mut out = be.zeros(rows * c_out);
        let mut dx = be.zeros(g.input_len());
        let mut dw = be.zeros(pl * c_out);
        let mut ds = be.zeros(rows * taps);
        let mut dm_uns = be.zeros(rows * taps * taps);
        let (mut n, mut norms) = (be.zeros(rows), be.zeros(rows));
        be.im2col(&g, &x, &mut cols);
        be.window_norm(&g, &x, 1e-4, &mut n);

        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        // Convolution geometry and the GEMM it lowers to.
        group.bench_function("im2col", |b| b.iter(|| be.im2col(&g, &x, &mut xt)));
        group.bench_function("col2im", |b| b.iter(|| be.col2im(&g, &cols, &mut dx)));
        group.bench_function("gemm cols·w", |b| b.iter(|| be.gemm(&Gemm::new(rows, c_out, pl), &cols, &w, &mut out)));
        // conv2d as the backend picks it (Winograd here), direct, with a DNS patch scale, and
        // row-scaled (SphereConv); each with its backward.
        let direct = be.clone().with_winograd(false);
        group.bench_function("conv2d", |b| b.iter(|| be.conv2d(&g, c_out, &x, &w, ConvScale::None, &mut out)));
        group.bench_function("conv2d direct", |b| {
            b.iter(|| direct.conv2d(&g, c_out, &x, &w, ConvScale::None, &mut out))
        });
        group.bench_function("conv2d scaled (DNS)", |b| {
            b.iter(|| be.conv2d(&g, c_out, &x, &w, ConvScale::Taps(&m), &mut out))
        });
        group.bench_function("conv2d_rows_scaled (SphereConv)", |b| {
            b.iter(|| be.conv2d(&g, c_out, &x, &w, ConvScale::Rows(&q), &mut out))
        });
        group.bench_function("conv2d_backward", |b| {
            b.iter(|| be.conv2d_backward(&g, c_out, &x, &w, ConvScale::None, &dy, &mut dx, &mut dw, None))
        });
        group.bench_function("conv2d_backward scaled (DNS)", |b| {
            b.iter(|| be.conv2d_backward(&g, c_out, &x, &w, ConvScale::Taps(&m), &dy, &mut dx, &mut dw, Some(&mut ds)))
        });
        group.bench_function("conv2d_rows_scaled_backward (SphereConv)", |b| {
            b.iter(|| be.conv2d_backward(&g, c_out, &x, &w, ConvScale::Rows(&q), &dy, &mut dx, &mut dw, None))
        });
        // The similarities' patch ops (the unfused path) and the window norms.
        group.bench_function("patch_scale (DNS)", |b| {
            b.iter(|| be.patch_scale(&Patch { rows, taps, c: c_in }, &cols, &m, &mut xt))
        });
        group.bench_function("patch_scale_backward (DNS)", |b| {
            b.iter(|| be.patch_scale_backward(&Patch { rows, taps, c: c_in }, &cols, &m, &xt, &mut dcols, &mut ds))
        });
        group.bench_function("patch_matmul (UNS)", |b| {
            b.iter(|| be.patch_matmul(&Patch { rows, taps, c: c_in }, &cols, &m_uns, &mut xt))
        });
        group.bench_function("patch_matmul_backward (UNS)", |b| {
            b.iter(|| {
                be.patch_matmul_backward(&Patch { rows, taps, c: c_in }, &cols, &m_uns, &xt, &mut dcols, &mut dm_uns)
            })
        });
        group.bench_function("window_norm", |b| b.iter(|| be.window_norm(&g, &x, 1e-4, &mut norms)));
        group.bench_function("window_norm_backward", |b| b.iter(|| be.window_norm_backward(&g, &x, &n, &dn, &mut dx)));

        // Batch norm on the layer's output (the training pass, inference, backward; + ReLU).
        let d = BatchNormDims { rows, c: c_out, eps: 1e-3, relu: false };
        let (gamma, beta) = (be.upload(&vec![1.0; c_out]), be.zeros(c_out));
        let (mut mean, mut var) = (be.zeros(c_out), be.zeros(c_out));
        let (mut dgamma, mut dbeta) = (be.zeros(c_out), be.zeros(c_out));
        let mut dz = be.zeros(rows * c_out);
        group.bench_function("batch_norm_train", |b| {
            b.iter(|| be.batch_norm_train(&d, &y, &gamma, &beta, &mut out, &mut mean, &mut var))
        });
        group.bench_function("batch_norm_eval", |b| {
            b.iter(|| be.batch_norm_eval(&d, &y, &gamma, &beta, &mean, &var, &mut out))
        });
        group.bench_function("batch_norm_backward", |b| {
            b.iter(|| {
                be.batch_norm_backward(&d, &y, &gamma, &beta, &mean, &var, None, &dy, &mut dz, &mut dgamma, &mut dbeta)
            })
        });
        group.bench_function("batch_norm_relu_train", |b| {
            b.iter(|| be.batch_norm_train(&d.with_relu(), &y, &gamma, &beta, &mut out, &mut mean, &mut var))
        });
        group.bench_function("batch_norm_relu_eval", |b| {
            b.iter(|| be.batch_norm_eval(&d.with_relu(), &y, &gamma, &beta, &mean, &var, &mut out))
        });
        be.batch_norm_train(&d.with_relu(), &y, &gamma, &beta, &mut out, &mut mean, &mut var);
        group.bench_function("batch_norm_relu_backward", |b| {
            b.iter(|| {
                be.batch_norm_backward(
                    &d.with_relu(),
                    &y,
                    &gamma,
                    &beta,
                    &mean,
                    &var,
                    Some(&out),
                    &dy,
                    &mut dz,
                    &mut dgamma,
                    &mut dbeta,
                )
            })
        });

        // Activations and the 2×2 max-pool closing a stage, on the layer's output.
        group.bench_function("relu", |b| b.iter(|| be.relu(&y, &mut out)));
        group.bench_function("relu_backward", |b| b.iter(|| be.relu_backward(&y, &dy, &mut dz)));
        let pool = Window::valid(BATCH, side, side, c_out, 2, 2);
        let (mut pooled, mut dpool) = (be.zeros(pool.rows() * c_out), be.zeros(rows * c_out));
        be.max_pool(&pool, &y, &mut pooled);
        let dpooled = normal(pool.rows() * c_out, 1.0);
        group.bench_function("max_pool 2×2", |b| b.iter(|| be.max_pool(&pool, &y, &mut pooled)));
        group.bench_function("max_pool_backward 2×2", |b| {
            b.iter(|| be.max_pool_backward(&pool, &y, &pooled, &dpooled, &mut dpool))
        });

        // Elementwise and row/column ops on the layer's output map (rows × c_out).
        let mut acc = be.zeros(rows * c_out);
        let per_col = be.upload(&vec![0.5; c_out]);
        let mut per_row = be.zeros(rows);
        let mut col_sums = be.zeros(c_out);
        group.bench_function("copy", |b| b.iter(|| be.copy(&y, &mut acc)));
        group.bench_function("fill", |b| b.iter(|| be.fill(&mut acc, 0.0)));
        group.bench_function("axpy", |b| b.iter(|| be.axpy(0.5, &y, &mut acc)));
        group.bench_function("scale", |b| b.iter(|| be.scale(0.5, &mut acc)));
        group.bench_function("mul", |b| b.iter(|| be.mul(&y, &dy, &mut out)));
        group.bench_function("map (affine)", |b| b.iter(|| be.map(Map::Affine(2.0, 1.0), &y, &mut out)));
        group.bench_function("dot", |b| b.iter(|| be.dot(&y, &dy)));
        group.bench_function("mul_rows", |b| b.iter(|| be.mul_rows(&y, &q, rows, c_out, &mut out)));
        group.bench_function("mul_cols", |b| b.iter(|| be.mul_cols(&y, &per_col, rows, c_out, &mut out)));
        group.bench_function("dot_rows", |b| b.iter(|| be.dot_rows(&y, &dy, rows, c_out, &mut per_row)));
        group.bench_function("dot_cols", |b| b.iter(|| be.dot_cols(&y, &dy, rows, c_out, &mut col_sums)));
        group.finish();
    }
}

fn head_and_optimiser_ops(c: &mut Criterion) {
    let be = Cpu::new();
    let mut rng = Rng::new(1);
    let mut group = c.benchmark_group("head and optimiser");
    group.sample_size(10);
    // The classifier's loss over 10 classes, as training computes it.
    let d = CrossEntropy { batch: BATCH, classes: 10, smoothing: 0.01, floor: 1e-4 };
    let logits = be.upload(&rng.normal_vec(BATCH * 10, 1.0));
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
    let mut dlogits = be.zeros(BATCH * 10);
    group.bench_function("cross_entropy 32×10", |b| b.iter(|| be.cross_entropy(&d, &logits, &labels, &mut dlogits)));
    // Self-attention on an 8×8 map: each position's softmax over the 64 positions.
    let (rows, cols) = (BATCH * 64, 64);
    let x = be.upload(&rng.normal_vec(rows * cols, 1.0));
    let dy = be.upload(&rng.normal_vec(rows * cols, 1.0));
    let (mut y, mut dx) = (be.zeros(rows * cols), be.zeros(rows * cols));
    be.softmax_rows(&x, rows, cols, &mut y);
    group.bench_function("softmax_rows 2048×64", |b| b.iter(|| be.softmax_rows(&x, rows, cols, &mut y)));
    group.bench_function("softmax_rows_backward 2048×64", |b| {
        b.iter(|| be.softmax_rows_backward(&y, &dy, rows, cols, &mut dx))
    });
    // One optimiser step over all of CNN-9's parameters.
    let mut w = be.upload(&rng.normal_vec(CNN9_PARAMS, 0.1));
    let grad = be.upload(&rng.normal_vec(CNN9_PARAMS, 0.01));
    let (mut m, mut v) = (be.zeros(CNN9_PARAMS), be.zeros(CNN9_PARAMS));
    let sgd = SgdStep { lr: 0.01, momentum: 0.9, dampening: 0.0, weight_decay: 5e-4, first_step: false };
    group.bench_function("sgd_step CNN-9", |b| b.iter(|| be.sgd_step(&sgd, &mut w, &grad, &mut v)));
    let adam = AdamStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 5e-4, t: 10 };
    group.bench_function("adam_step CNN-9", |b| b.iter(|| be.adam_step(&adam, &mut w, &grad, &mut m, &mut v)));
    group.finish();
}

criterion_group!(benches, layer_ops, head_and_optimiser_ops);
criterion_main!(benches);
