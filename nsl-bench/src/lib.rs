//! Benchmark workloads shared by the criterion benches and `cargo xtask bench`.
//!
//! Speed is measured here, never asserted in tests. Absolute numbers drift between runs on a
//! shared machine, so the report also gives each convolution's speed as a **ratio** to a plain
//! sgemm of the same FLOPs measured in the same run.

pub mod latency;

use std::time::Instant;

use nsl_core::nn::{Layer, Mode, NslConv, Padding};
use nsl_core::optim::Optimizer;
use nsl_core::similarity::Similarity;
use nsl_core::{Backend, Gemm, Rng, Tensor};
use nsl_models::nets::{cnn9, Cnn9Config, SimilarityChoice};

/// The nine NSL layers of CNN-9 at batch `b`: `(name, c_in, c_out, side)`.
pub fn cnn9_layers() -> Vec<(&'static str, usize, usize, usize)> {
    vec![
        ("conv1_x 32→32 @32²", 32, 32, 32),
        ("conv2_0 32→64 @16²", 32, 64, 16),
        ("conv2_x 64→64 @16²", 64, 64, 16),
        ("conv3_0 64→128 @8²", 64, 128, 8),
        ("conv3_x 128→128 @8²", 128, 128, 8),
    ]
}

/// Best wall time of `reps` calls of `f` after one warm-up call, in seconds.
pub fn best_of(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    (0..reps)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min)
}

/// [`best_of`] for work on backend `be`, waiting for it to finish inside each timed call
/// ([`Backend::synchronize`]: GPU ops only queue work when they return).
pub fn best_of_on<B: Backend>(be: &B, reps: usize, mut f: impl FnMut()) -> f64 {
    best_of(reps, || {
        f();
        be.synchronize();
    })
}

/// GFLOP/s of a square sgemm with (about) `flops` floating-point operations.
pub fn sgemm_gflops<B: Backend>(be: &B, flops: f64, reps: usize) -> f64 {
    let n = ((flops / 2.0).cbrt().round() as usize).max(16);
    let mut rng = Rng::new(1);
    let a = be.upload(&rng.normal_vec(n * n, 1.0));
    let b = be.upload(&rng.normal_vec(n * n, 1.0));
    let mut c = be.zeros(n * n);
    let t = best_of_on(be, reps, || be.gemm(&Gemm::new(n, n, n), &a, &b, &mut c));
    2.0 * (n * n * n) as f64 / t / 1e9
}

/// A 3×3 conv layer with `similarity` and a random input batch.
pub fn conv_layer<B: Backend>(
    be: &B,
    sim: Box<dyn Similarity<B>>,
    c_in: usize,
    c_out: usize,
    side: usize,
    batch: usize,
) -> (NslConv<B>, Tensor<B>) {
    let mut rng = Rng::new(7);
    let layer = NslConv::new(be, &mut rng, "bench", (c_in, c_out), (3, 1, Padding::Same), 1.0, 0.0, sim);
    let x = Tensor::from_vec(be, &[batch, side, side, c_in], &rng.normal_vec(batch * side * side * c_in, 1.0));
    (layer, x)
}

/// Seconds of one training step (forward, backward, SGD step) and one inference forward of a
/// CNN-9 variant at batch `batch`, best of `reps`.
pub fn network_step_seconds<B: Backend>(
    be: &B,
    sim: SimilarityChoice,
    fold: bool,
    batch: usize,
    reps: usize,
) -> (f64, f64) {
    let mut rng = Rng::new(3);
    let mut net = cnn9(be, &mut rng, &Cnn9Config::paper(10, sim));
    let x = Tensor::from_vec(be, &[batch, 32, 32, 3], &rng.normal_vec(batch * 32 * 32 * 3, 50.0));
    let labels: Vec<usize> = (0..batch).map(|i| i % 10).collect();
    let mut opt = Optimizer::momentum(0.9);
    let train = best_of_on(be, reps, || {
        let logits = net.forward(be, &x, Mode::TRAIN);
        let (_, d) = nsl_core::nn::cross_entropy(be, &logits, &labels, 0.01, 1e-4);
        net.backward(be, &d);
        opt.step(be, 1e-4, &mut net);
    });
    if fold {
        net.fold(be).expect("static similarity folds");
    }
    let infer = best_of_on(be, reps, || {
        net.forward(be, &x, Mode::EVAL);
    });
    (train, infer)
}

/// The CNN-9 variants of [`throughput_report`]: (row name, label, similarity, folded for inference).
const VARIANTS: [(&str, &str, SimilarityChoice, bool); 6] = [
    ("plain", "plain", SimilarityChoice::Conv, false),
    ("static-dns", "static DNS", SimilarityChoice::StaticDns { code_init: true }, false),
    ("static-dns-folded", "static DNS, folded for inference", SimilarityChoice::StaticDns { code_init: true }, true),
    ("static-uns", "static UNS", SimilarityChoice::StaticUns, false),
    ("dynamic-dns", "dynamic DNS", SimilarityChoice::DynamicDns(nsl_models::nets::PredictorKind::Sphere), false),
    ("dynamic-uns", "dynamic UNS", SimilarityChoice::DynamicUns, false),
];

/// Row names of [`throughput_report`]: the CNN-9 variants, `layers` (the conv table) and
/// `latency` (batch-1 latency, nsl beside its ONNX export in tract: [`latency::latency_report`]).
pub fn report_rows() -> impl Iterator<Item = &'static str> {
    VARIANTS.iter().map(|v| v.0).chain(["layers", "latency"])
}

/// The table `cargo xtask bench` prints: network img/s, then per-layer GFLOP/s and the ratio to
/// a same-FLOP sgemm. Each line goes to `emit` as soon as it is measured, so a run cut short
/// still leaves its finished rows. `only` picks rows by [`report_rows`] name (empty: all).
pub fn throughput_report<B: Backend>(be: &B, batch: usize, reps: usize, only: &[String], mut emit: impl FnMut(&str)) {
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    emit(&format!("backend: {}, batch {batch}, best of {reps}\n", be.name()));
    emit("| CNN-9 variant | train img/s | inference img/s |");
    emit("|---|---:|---:|");
    for (name, label, sim, fold) in VARIANTS {
        if !wanted(name) {
            continue;
        }
        let (train, infer) = network_step_seconds(be, sim, fold, batch, reps);
        emit(&format!("| {label} | {:.0} | {:.0} |", batch as f64 / train, batch as f64 / infer));
    }
    if wanted("latency") {
        latency::latency_report(be, reps, &mut emit);
    }
    if !wanted("layers") {
        return;
    }
    // GFLOP/s counts the direct convolution's 2·rows·9c·n FLOPs whatever algorithm runs
    // (Winograd layers do fewer), so the ratio is a speed ratio.
    emit("\n| 3×3 conv forward (GFLOP/s of the direct FLOPs) | GFLOP/s | same-FLOP sgemm GFLOP/s | ratio |");
    emit("|---|---:|---:|---:|");
    for (name, c_in, c_out, side) in cnn9_layers() {
        let (mut layer, x) = conv_layer(be, nsl_core::similarity::InnerProduct::boxed(), c_in, c_out, side, batch);
        let flops = 2.0 * (batch * side * side * 9 * c_in * c_out) as f64;
        let t = best_of_on(be, reps, || {
            layer.forward(be, &x, Mode::EVAL);
        });
        let conv = flops / t / 1e9;
        let gemm = sgemm_gflops(be, flops, reps);
        emit(&format!("| {name} | {conv:.1} | {gemm:.1} | {:.2} |", conv / gemm));
    }
}
