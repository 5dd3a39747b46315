//! The conformance suite every backend runs (feature `conformance`): each op against the naive
//! `f64` references of [`reference`], each backward against finite differences, and each
//! fused op against its composed reference, on random shapes.
//!
//! A backend crate gets all of it from one line in a test file:
//!
//! ```ignore
//! // my-backend/tests/conformance.rs
//! nsl_core::conformance_suite!(my_backend::MyBackend::new());
//! ```
//!
//! The cases are drawn from a fixed seed (`NSL_CONFORMANCE_SEED` picks another) and
//! `NSL_CONFORMANCE_CASES` scales their number, so a failure reproduces; it is shrunk to a
//! minimal shape and reported with it. The `check_*` functions are public too, for a backend's
//! own fixed-shape tests (e.g. shapes that take its parallel paths).

mod conv;
mod failing;
mod gradients;
mod ops;
pub mod reference;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

pub use conv::{check_rows_scaled, ConvCase};
pub use failing::FailingDevice;
pub use gradients::{
    batch_norm_grad, conv2d_grad, cross_entropy_grad, fd_check, im2col_adjoint, max_pool_grad, optimisers_by_hand,
    patch_grads, relu_grad, softmax_rows_grad, window_norm_grad,
};
pub use ops::{
    check_activations, check_batch_norm, check_cross_entropy, check_elementwise, check_gemm, check_optim,
    check_patch_ops, check_rows_cols, check_window_ops, gemm_operands,
};

use crate::{Gemm, Rng, Window};

/// Run `test` on `cases` values of `strategy`, each with a data seed (times
/// `NSL_CONFORMANCE_CASES`, default 1), drawn from a fixed seed; panics with the shrunk failing
/// value and its message.
pub fn run_cases<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn((S::Value, u64)))
where
    S::Value: std::fmt::Debug,
{
    let scale: f64 = std::env::var("NSL_CONFORMANCE_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let mut runner = seeded_runner(name, ((cases as f64 * scale).ceil() as u32).max(1));
    if let Err(e) = runner.run(&(strategy, any::<u64>()), |v| {
        test(v);
        Ok(())
    }) {
        panic!("{name}: {e}");
    }
}

/// A proptest runner of `cases` cases whose random stream is fixed by the test's `name` and
/// `NSL_CONFORMANCE_SEED` (default 0), so a failure reproduces run to run and on CI.
pub fn seeded_runner(name: &str, cases: u32) -> TestRunner {
    let seed: u64 = std::env::var("NSL_CONFORMANCE_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..8 + name.len().min(24)].copy_from_slice(&name.as_bytes()[..name.len().min(24)]);
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key))
}

/// `n` values uniform in `[-1, 1)`.
pub fn rand_vec(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform() * 2.0 - 1.0).collect()
}

/// `n` values uniform in `[lo, hi)`.
pub fn rand_range(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + rng.uniform() * (hi - lo)).collect()
}

/// `n` distinct values (a random permutation of a spaced grid), for max-pool tests.
pub fn distinct_vec(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.37).collect();
    rng.shuffle(&mut v);
    v
}

/// Element-wise `|a − e| ≤ atol + rtol·|e|` (NaN matches NaN), naming the op and the index.
pub fn assert_close(what: &str, actual: &[f32], expected: &[f64], rtol: f64, atol: f64) {
    assert_eq!(actual.len(), expected.len(), "{what}: length");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a.is_nan() && e.is_nan()) || approx::relative_eq!(a as f64, e, epsilon = atol, max_relative = rtol),
            "{what}: index {i}: got {a}, expected {e} (rtol {rtol}, atol {atol})"
        );
    }
}

/// The default tolerance for an `f32` op checked against an `f64` reference.
pub fn close(what: &str, actual: &[f32], expected: &[f64]) {
    assert_close(what, actual, expected, 1e-5, 1e-6)
}

/// Random window geometry: batch 1–3, maps 1–9 (non-square), channels 1–4, k ∈ {1,2,3,4,7},
/// stride 1–3, SAME or VALID.
pub fn window() -> impl Strategy<Value = Window> {
    (
        1usize..=3,
        1usize..=9,
        1usize..=9,
        1usize..=4,
        prop::sample::select(vec![1usize, 2, 3, 4, 7]),
        1usize..=3,
        any::<bool>(),
    )
        .prop_map(|(b, h, w, c, k, s, same)| shaped(same, b, h, w, c, k, s))
}

/// Small windows for the finite-difference checks (stride up to 2, SAME or VALID).
pub fn small_window() -> impl Strategy<Value = Window> {
    (1usize..=2, 1usize..=5, 1usize..=5, 1usize..=3, 1usize..=3, 1usize..=2, any::<bool>())
        .prop_map(|(b, h, w, c, k, s, same)| shaped(same, b, h, w, c, k, s))
}

/// Windows over maps at least 32 outputs wide (a backend may read such windows in place): any
/// k, stride, padding.
pub fn wide_window() -> impl Strategy<Value = Window> {
    (1usize..=2, 1usize..=6, 1usize..=4, prop::sample::select(vec![1usize, 2, 3, 4, 7]), 1usize..=3, any::<bool>())
        .prop_map(|(b, h, c, k, s, same)| shaped(same, b, h, 32 * s + k, c, k, s))
}

/// 3×3 stride-1 windows with at least 8 channels in and out (a Winograd F(4×4, 3×3) path's
/// shapes): maps of 1–13 (partial 4×4 tiles, maps smaller than a tile), SAME or VALID.
pub fn winograd_window() -> impl Strategy<Value = (Window, usize)> {
    (1usize..=3, 1usize..=13, 1usize..=13, 8usize..=20, 8usize..=20, any::<bool>())
        .prop_map(|(b, h, w, c, n, same)| (shaped(same, b, h, w, c, 3, 1), n))
}

#[allow(clippy::too_many_arguments)]
fn shaped(same: bool, b: usize, h: usize, w: usize, c: usize, k: usize, s: usize) -> Window {
    if same {
        Window::same(b, h, w, c, k, s)
    } else {
        Window::valid(b, h.max(k), w.max(k), c, k, s)
    }
}

/// Random GEMMs with `m, n` in `mn` and `k` in `k`: transposes, α/β, batches with contiguous,
/// broadcast, padded and summed (stride-0 C) operands.
pub fn gemm_case(
    mn: std::ops::RangeInclusive<usize>,
    k: std::ops::RangeInclusive<usize>,
) -> impl Strategy<Value = Gemm> {
    gemm_with((mn.clone(), mn, k, any::<bool>(), any::<bool>()))
}

/// The skinny products of convolutions: many rows, a few to a few hundred columns.
pub fn skinny_case() -> impl Strategy<Value = Gemm> {
    let shape = (
        prop_oneof![256usize..=2000, 1usize..=40],
        prop::sample::select(vec![1usize, 3, 5, 9, 16, 27, 32, 64, 70]),
        prop_oneof![1usize..=40, 100usize..=600],
        any::<bool>(),
        any::<bool>(),
    );
    gemm_with(shape)
}

fn gemm_with(shape: impl Strategy<Value = (usize, usize, usize, bool, bool)>) -> impl Strategy<Value = Gemm> {
    (
        shape,
        (
            1usize..=3,
            prop::sample::select(vec![1.0f32, -0.5, 2.0]),
            prop::sample::select(vec![0.0f32, 1.0, 0.3]),
            0..5u8,
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
                4 => {
                    g.stride_c = 0; // every batch item accumulates into one C, in order
                    g.beta = 1.0;
                }
                _ => {}
            }
            g
        })
}

/// The whole suite for one backend: a `#[test]` per op family, each over random shapes.
/// `$be` is an expression that makes the backend (evaluated once per test); with `optional`, an
/// `Option` of it, where `None` (no device here) makes each test pass without running.
///
/// ```ignore
/// nsl_core::conformance_suite!(nsl_cpu::Cpu::with_threads(2));
/// nsl_core::conformance_suite!(optional my_gpu_or_none());
/// ```
#[macro_export]
macro_rules! conformance_suite {
    ($be:expr) => {
        $crate::conformance_suite!(optional Some($be));
    };
    (optional $be:expr) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as c;

            #[test]
            fn gemm() {
                let Some(be) = $be else { return };
                c::run_cases("gemm", 24, c::gemm_case(1..=33, 1..=33), |(g, seed)| c::check_gemm(&be, &g, seed));
                c::run_cases("gemm_large", 4, c::gemm_case(60..=260, 1..=80), |(g, seed)| c::check_gemm(&be, &g, seed));
                c::run_cases("gemm_skinny", 16, c::skinny_case(), |(g, seed)| c::check_gemm(&be, &g, seed));
            }
            #[test]
            fn elementwise() {
                let Some(be) = $be else { return };
                c::run_cases("elementwise", 24, 0usize..300, |(n, seed)| c::check_elementwise(&be, n, seed));
                c::run_cases("rows_cols", 24, (1usize..40, 1usize..40), |((r, k), seed)| c::check_rows_cols(&be, r, k, seed));
            }
            #[test]
            fn window_ops() {
                let Some(be) = $be else { return };
                c::run_cases("window_ops", 24, c::window(), |(g, seed)| c::check_window_ops(&be, &g, seed));
            }
            #[test]
            fn patch_ops() {
                let Some(be) = $be else { return };
                c::run_cases("patch_ops", 24, (1usize..20, 1usize..=10, 1usize..=7), |((r, t, ch), seed)| {
                    c::check_patch_ops(&be, &$crate::Patch { rows: r, taps: t, c: ch }, seed)
                });
            }
            #[test]
            fn batch_norm() {
                let Some(be) = $be else { return };
                let dims = (1usize..60, 1usize..=9, proptest::sample::select(vec![1e-5f32, 1e-3]));
                c::run_cases("batch_norm", 24, dims, |((rows, ch, eps), seed)| {
                    c::check_batch_norm(&be, &$crate::BatchNormDims::new(rows, ch, eps), seed)
                });
            }
            #[test]
            fn activations_and_loss() {
                let Some(be) = $be else { return };
                c::run_cases("activations", 24, (1usize..10, 1usize..50), |((r, k), seed)| c::check_activations(&be, r, k, seed));
                c::run_cases("cross_entropy", 24, c::cross_entropy_case(), |(d, seed)| c::check_cross_entropy(&be, &d, seed));
                c::run_cases("optimisers", 24, 1usize..100, |(n, seed)| c::check_optim(&be, n, seed));
                c::optimisers_by_hand(&be);
            }
            #[test]
            fn conv2d() {
                let Some(be) = $be else { return };
                let widths = (proptest::arbitrary::any::<bool>(), 1usize..=20);
                c::run_cases("conv2d", 32, (c::window(), widths.clone()), |((g, (s, n)), seed)| {
                    c::ConvCase::new(g, n, s, seed).check(&be)
                });
                c::run_cases("conv2d_wide", 16, (c::wide_window(), widths), |((g, (s, n)), seed)| {
                    c::ConvCase::new(g, n, s, seed).check(&be)
                });
                c::run_cases("conv2d_winograd_shapes", 16, c::winograd_window(), |((g, n), seed)| {
                    c::ConvCase::new(g, n, false, seed).check(&be)
                });
                c::run_cases("conv2d_rows_scaled", 24, (c::window(), 1usize..=20), |((g, n), seed)| {
                    c::check_rows_scaled(&be, g, n, seed)
                });
            }
            #[test]
            fn gradients() {
                let Some(be) = $be else { return };
                c::run_cases("im2col_adjoint", 16, c::window(), |(g, seed)| c::im2col_adjoint(&be, &g, seed));
                c::run_cases("patch_grads", 16, (1usize..4, 1usize..=5, 1usize..=4), |((r, t, ch), seed)| {
                    c::patch_grads(&be, &$crate::Patch { rows: r, taps: t, c: ch }, seed)
                });
                c::run_cases("window_norm_grad", 16, c::small_window(), |(g, seed)| c::window_norm_grad(&be, &g, seed));
                let bn = (1usize..12, 1usize..=4, proptest::arbitrary::any::<bool>());
                c::run_cases("batch_norm_grad", 16, bn, |((rows, ch, relu), seed)| c::batch_norm_grad(&be, rows, ch, relu, seed));
                c::run_cases("relu_grad", 16, 1usize..60, |(n, seed)| c::relu_grad(&be, n, seed));
                c::run_cases("max_pool_grad", 16, c::small_window(), |(g, seed)| c::max_pool_grad(&be, &g, seed));
                c::run_cases("softmax_rows_grad", 16, (1usize..5, 1usize..10), |((r, k), seed)| c::softmax_rows_grad(&be, r, k, seed));
                c::run_cases("cross_entropy_grad", 16, c::cross_entropy_case(), |(d, seed)| c::cross_entropy_grad(&be, &d, seed));
                let conv = (c::small_window(), proptest::arbitrary::any::<bool>(), 1usize..=3);
                c::run_cases("conv2d_grad", 16, conv, |((g, s, n), seed)| c::conv2d_grad(&be, g, n, s, seed));
            }
        }
    };
}

/// Random cross-entropy shapes: batch 1–9, 1–12 classes, smoothing and floor of the code.
pub fn cross_entropy_case() -> impl Strategy<Value = crate::CrossEntropy> {
    (
        1usize..10,
        1usize..=12,
        prop::sample::select(vec![0.0f32, 0.01, 0.1]),
        prop::sample::select(vec![0.0f32, 1e-4, 1e-2]),
    )
        .prop_map(|(batch, classes, smoothing, floor)| crate::CrossEntropy { batch, classes, smoothing, floor })
}
