//! Criterion benches of the primitive ops at CNN-9 shapes (batch 32 to keep runs short).

use criterion::{criterion_group, criterion_main, Criterion};
use nsl_core::{Backend, BatchNormDims, Gemm, Rng, Window};
use nsl_cpu::Cpu;

const BATCH: usize = 32;

fn ops(c: &mut Criterion) {
    let be = Cpu::new();
    let mut rng = Rng::new(0);
    for (name, c_in, c_out, side) in nsl_bench::cnn9_layers() {
        let g = Window::same(BATCH, side, side, c_in, 3, 1);
        let x = be.upload(&rng.normal_vec(g.input_len(), 1.0));
        let w = be.upload(&rng.normal_vec(g.patch_len() * c_out, 0.1));
        let mut cols = be.zeros(g.rows() * g.patch_len());
        let mut y = be.zeros(g.rows() * c_out);
        let mut dx = be.zeros(g.input_len());
        let m = be.upload(&rng.normal_vec(g.rows() * 9, 1.0));
        let mut xt = be.zeros(g.rows() * g.patch_len());
        let mut n = be.zeros(g.rows());
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        group.bench_function("im2col", |b| b.iter(|| be.im2col(&g, &x, &mut cols)));
        group.bench_function("col2im", |b| b.iter(|| be.col2im(&g, &cols, &mut dx)));
        group.bench_function("gemm cols·w", |b| {
            b.iter(|| be.gemm(&Gemm::new(g.rows(), c_out, g.patch_len()), &cols, &w, &mut y))
        });
        group.bench_function("patch_scale (DNS)", |b| b.iter(|| be.patch_scale(g.rows(), 9, c_in, &cols, &m, &mut xt)));
        group.bench_function("window_norm", |b| b.iter(|| be.window_norm(&g, &x, 1e-4, &mut n)));
        let d = BatchNormDims { rows: g.rows(), c: c_out, eps: 1e-3 };
        let (gamma, beta) = (be.upload(&vec![1.0; c_out]), be.zeros(c_out));
        let (mut mean, mut var, mut out) = (be.zeros(c_out), be.zeros(c_out), be.zeros(g.rows() * c_out));
        group.bench_function("batch_norm_train", |b| {
            b.iter(|| be.batch_norm_train(&d, &y, &gamma, &beta, &mut out, &mut mean, &mut var))
        });
        group.bench_function("batch_norm_relu_train", |b| {
            b.iter(|| be.batch_norm_relu_train(&d, &y, &gamma, &beta, &mut out, &mut mean, &mut var))
        });
        let (dy, mut dz) = (be.upload(&rng.normal_vec(g.rows() * c_out, 1.0)), be.zeros(g.rows() * c_out));
        let (mut dgamma, mut dbeta) = (be.zeros(c_out), be.zeros(c_out));
        group.bench_function("batch_norm_relu_backward", |b| {
            b.iter(|| {
                be.batch_norm_relu_backward(
                    &d,
                    &y,
                    &out,
                    &gamma,
                    &beta,
                    &mean,
                    &var,
                    &dy,
                    &mut dz,
                    &mut dgamma,
                    &mut dbeta,
                )
            })
        });
        // conv2d as the backend picks it (Winograd here), direct, and with a DNS patch scale
        let direct = be.clone().with_winograd(false);
        let mut dw = be.zeros(g.patch_len() * c_out);
        let mut ds = be.zeros(g.rows() * 9);
        group.bench_function("conv2d", |b| b.iter(|| be.conv2d(&g, c_out, &x, &w, None, &mut y)));
        group.bench_function("conv2d direct", |b| b.iter(|| direct.conv2d(&g, c_out, &x, &w, None, &mut y)));
        group.bench_function("conv2d scaled (DNS)", |b| b.iter(|| be.conv2d(&g, c_out, &x, &w, Some(&m), &mut y)));
        group.bench_function("conv2d_backward", |b| {
            b.iter(|| be.conv2d_backward(&g, c_out, &x, &w, None, &dy, &mut dx, &mut dw, None))
        });
        group.bench_function("conv2d_backward scaled (DNS)", |b| {
            b.iter(|| be.conv2d_backward(&g, c_out, &x, &w, Some(&m), &dy, &mut dx, &mut dw, Some(&mut ds)))
        });
        group.finish();
    }
}

criterion_group!(benches, ops);
criterion_main!(benches);
