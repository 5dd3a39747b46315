//! Batch-1 inference latency of the CNN-9 deployment variants: nsl's forward pass beside the
//! network's ONNX export ([`nsl_models::export::onnx_model`]) run by tract on the same machine.

use nsl_core::nn::{Layer, Mode};
use nsl_core::{Backend, Rng, Tensor};
use nsl_models::export::onnx_model;
use nsl_models::train::{build_network, RunConfig};
use tract_onnx::prelude::*;

use crate::best_of_on;

/// The variants: (label, similarity, folded before timing).
const VARIANTS: [(&str, &str, bool); 3] =
    [("plain", "conv", false), ("static DNS, folded", "static-dns", true), ("dynamic DNS", "dynamic-dns", false)];

/// `(nsl ms, tract ms)` of one 28×28 Fashion-MNIST image through the full-width CNN-9 with
/// `similarity` (untrained weights: the cost does not depend on them), best of `reps`.
///
/// # Panics
/// If tract rejects the export (the export tests check it does not).
pub fn cnn9_latency_ms<B: Backend>(be: &B, similarity: &str, fold: bool, reps: usize) -> (f64, f64) {
    let cfg = RunConfig { similarity: similarity.parse().expect("a similarity name"), ..RunConfig::default() };
    let mut rng = Rng::new(3);
    let mut net = build_network(be, &cfg, 10, [32, 32, 1], &mut rng).expect("CNN-9 builds");
    if fold {
        net.fold(be).expect("a static similarity folds");
    }
    let x = Tensor::from_vec(be, &[1, 32, 32, 1], &rng.normal_vec(32 * 32, 1.0));
    let nsl = best_of_on(be, reps, || {
        net.forward(be, &x, Mode::EVAL);
    });
    let bytes = onnx_model(be, &mut net, &cfg).expect("CNN-9 exports").encode();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("tract runs the export");
    let pixels = tract_ndarray::Array4::from_shape_vec((1, 1, 28, 28), rng.normal_vec(28 * 28, 50.0))
        .expect("28×28")
        .into_tensor();
    let tract = crate::best_of(reps, || {
        model.run(tvec!(pixels.clone().into())).expect("tract runs");
    });
    (nsl * 1e3, tract * 1e3)
}

/// The latency table of `cargo xtask bench --only latency`, one line at a time to `emit`.
pub fn latency_report<B: Backend>(be: &B, reps: usize, mut emit: impl FnMut(&str)) {
    emit("\n| CNN-9, one 28×28 image | nsl ms | ONNX export in tract ms |");
    emit("|---|---:|---:|");
    for (label, similarity, fold) in VARIANTS {
        let (nsl, tract) = cnn9_latency_ms(be, similarity, fold, reps);
        emit(&format!("| {label} | {nsl:.2} | {tract:.2} |"));
    }
}
