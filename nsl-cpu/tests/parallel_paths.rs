//! The CPU backend's own paths, at fixed shapes: large shapes that take the parallel and
//! streaming kernels, and edge cases. (Random shapes of every op are nsl-core's conformance
//! suite, `tests/conformance.rs`.)

use nsl_core::conformance::{
    assert_close, check_activations, check_batch_norm, check_cross_entropy, check_elementwise, check_gemm, check_optim,
    check_patch_ops, check_rows_cols, check_window_ops, close, rand_vec, reference,
};
use nsl_core::{Backend, BatchNormDims, CrossEntropy, Gemm, Patch, Rng, Window};
use nsl_cpu::Cpu;

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
    check_patch_ops(&be, &Patch { rows: 700, taps: 9, c: 8 }, 10);
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
    let (_, emean, evar) = reference::batch_norm_train(&d, &x, &vec![1.0; c], &vec![0.0; c]);
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
    let be = Cpu::with_threads(2);
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
    let be = Cpu::with_threads(2);
    let g = Gemm { stride_c: 0, ..Gemm::new(2, 3, 4).batched(5).accumulate() };
    let mut rng = Rng::new(3);
    let a = rand_vec(&mut rng, 5 * 8);
    let b = rand_vec(&mut rng, 5 * 12);
    let c0 = rand_vec(&mut rng, 6);
    let mut c = be.upload(&c0);
    be.gemm(&g, &be.upload(&a), &be.upload(&b), &mut c);
    close("gemm stride_c 0", &be.download(&c), &reference::gemm(&g, &a, &b, &c0));
}

#[test]
fn max_pool_padding_never_wins() {
    // All inputs negative: a zero from the padding must not be the max.
    let be = Cpu::with_threads(2);
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
