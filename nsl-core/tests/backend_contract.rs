//! The backend contract (`nsl_core::backend::contract`): every op checks its arguments once, in
//! nsl-core, before any backend kernel runs, and names the op, the argument and the lengths.

use std::panic::{catch_unwind, AssertUnwindSafe};

use nsl_core::{AdamStep, Backend, BatchNormDims, ConvScale, CrossEntropy, Gemm, Patch, Window};
use nsl_cpu::Cpu;

/// The panic message of `f`, which must panic.
fn refusal(f: impl FnOnce()) -> String {
    let err = catch_unwind(AssertUnwindSafe(f)).expect_err("the call should have been refused");
    err.downcast_ref::<String>().cloned().or_else(|| err.downcast_ref::<&str>().map(|s| s.to_string())).unwrap()
}

#[test]
fn short_buffers_are_refused_naming_the_op_and_the_argument() {
    let be = Cpu::with_threads(1);
    let (a, b) = (be.zeros(6), be.zeros(6));
    let msg = refusal(|| be.gemm(&Gemm::new(2, 3, 3), &a, &b, &mut be.zeros(5)));
    assert_eq!(msg, "gemm: `C` holds 5 values, 6 needed");
    let msg = refusal(|| be.gemm(&Gemm::new(2, 3, 4).batched(2), &be.zeros(15), &be.zeros(24), &mut be.zeros(12)));
    assert_eq!(msg, "gemm: `A` holds 15 values, 16 needed");

    let g = Window::same(1, 4, 4, 2, 3, 1);
    let msg = refusal(|| be.im2col(&g, &be.zeros(31), &mut be.zeros(16 * 18)));
    assert_eq!(msg, "im2col: `x` holds 31 values, 32 needed");
    let (x, w) = (be.zeros(32), be.zeros(18 * 4));
    let msg = refusal(|| be.conv2d(&g, 4, &x, &w, ConvScale::Taps(&be.zeros(16 * 9 - 1)), &mut be.zeros(64)));
    assert_eq!(msg, "conv2d: `scale (per tap)` holds 143 values, 144 needed");
    let msg = refusal(|| be.conv2d(&g, 4, &x, &w, ConvScale::Rows(&be.zeros(15)), &mut be.zeros(64)));
    assert_eq!(msg, "conv2d: `scale (per row)` holds 15 values, 16 needed");

    let p = Patch { rows: 4, taps: 9, c: 2 };
    let msg = refusal(|| be.patch_matmul(&p, &be.zeros(72), &be.zeros(4 * 81 - 1), &mut be.zeros(72)));
    assert_eq!(msg, "patch_matmul: `m` holds 323 values, 324 needed");

    let msg = refusal(|| be.axpy(1.0, &be.zeros(3), &mut be.zeros(4)));
    assert_eq!(msg, "axpy: `x` holds 3 values but `y` holds 4");
}

#[test]
fn batch_norm_needs_the_output_exactly_when_a_relu_follows() {
    let be = Cpu::with_threads(1);
    let d = BatchNormDims::new(6, 2, 1e-5);
    let (x, c) = (be.zeros(12), be.zeros(2));
    let mut out = (be.zeros(12), be.zeros(2), be.zeros(2));
    let msg = refusal(|| {
        be.batch_norm_backward(&d.with_relu(), &x, &c, &c, &c, &c, None, &x, &mut out.0, &mut out.1, &mut out.2)
    });
    assert!(msg.contains("the forward's output `y` is needed exactly when `relu` is set"), "{msg}");
    let msg = refusal(|| be.batch_norm_train(&d, &x, &c, &be.zeros(1), &mut out.0, &mut out.1, &mut out.2));
    assert_eq!(msg, "batch_norm_train: `beta` holds 1 values, 2 needed");
}

#[test]
fn the_per_tap_gradient_is_only_for_a_per_tap_scale() {
    let be = Cpu::with_threads(1);
    let g = Window::same(1, 4, 4, 2, 3, 1);
    let (x, w, dy) = (be.zeros(32), be.zeros(18 * 4), be.zeros(64));
    let (mut dx, mut dw, mut ds) = (be.zeros(32), be.zeros(72), be.zeros(144));
    let msg = refusal(|| {
        be.conv2d_backward(&g, 4, &x, &w, ConvScale::None, &dy, &mut dx, &mut dw, Some(&mut ds));
    });
    assert!(msg.contains("`dscale` is only computed for a per-tap scale"), "{msg}");
}

#[test]
fn labels_and_optimiser_constants_are_checked_on_the_host() {
    let be = Cpu::with_threads(1);
    let d = CrossEntropy { batch: 2, classes: 5, smoothing: 0.0, floor: 0.0 };
    let msg = refusal(|| {
        be.cross_entropy(&d, &be.zeros(10), &[1, 5], &mut be.zeros(10));
    });
    assert_eq!(msg, "cross_entropy: label 5 of example 1 is out of range for K = 5 classes");
    let msg = refusal(|| {
        be.cross_entropy(&d, &be.zeros(10), &[1], &mut be.zeros(10));
    });
    assert_eq!(msg, "cross_entropy: `labels` holds 1 values but `batch` holds 2");

    let s = AdamStep { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0, t: 0 };
    let (mut w, g, mut m, mut v) = (be.zeros(3), be.zeros(3), be.zeros(3), be.zeros(3));
    let msg = refusal(|| be.adam_step(&s, &mut w, &g, &mut m, &mut v));
    assert_eq!(msg, "adam_step: step t must be >= 1, got 0");
    let s = AdamStep { t: 1, beta1: 1.0, ..s };
    let msg = refusal(|| be.adam_step(&s, &mut w, &g, &mut m, &mut v));
    assert!(msg.contains("β1 = 1"), "{msg}");
}

#[test]
fn a_checked_op_runs_its_kernel() {
    // the contract passes good arguments through unchanged
    let be = Cpu::with_threads(1);
    let mut y = be.upload(&[1.0, 2.0]);
    be.axpy(2.0, &be.upload(&[1.0, 1.0]), &mut y);
    assert_eq!(be.download(&y), vec![3.0, 4.0]);
    assert_eq!(
        AdamStep { lr: 0.1, beta1: 0.5, beta2: 0.75, eps: 0.0, weight_decay: 0.0, t: 2 }.corrections(),
        (1.0 / 0.75, 1.0 / (1.0 - 0.5625))
    );
}
