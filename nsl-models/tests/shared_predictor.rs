//! The shared predictor's batch-norm statistics (Table 3): per layer by default, pooled as the
//! alternative.

use nsl_core::nn::{Layer, Mode, Stats};
use nsl_core::{Rng, Tensor};
use nsl_cpu::Cpu;
use nsl_models::nets::{cnn9, Cnn9Config, Network, SharedBnStats, SimilarityChoice};

fn shared_cnn9(be: &Cpu, stats: SharedBnStats) -> Network<Cpu> {
    let cfg = Cnn9Config { input_hw: 8, shared_stats: stats, ..Cnn9Config::paper(4, SimilarityChoice::SharedDns) };
    let mut net = cnn9(be, &mut Rng::new(3), &cfg.scaled(0.25));
    // move the trunk's output BN off its init so each layer's M depends on its statistics
    net.set_predictor_output_gamma(be, 1.0);
    net.visit_params(&mut |p| {
        if p.name == "shared_pred.m2.weight" {
            let v: Vec<f32> = p.value.to_vec(be).iter().map(|w| w * 300.0).collect();
            p.value = Tensor::from_vec(be, p.value.shape(), &v);
        }
    });
    net.set_bn_decay(0.5);
    net
}

/// Largest `|a − b|` relative to the largest `|b|`.
fn rel_diff(a: &[f32], b: &[f32]) -> f32 {
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// After the EMA has converged on one fixed batch, evaluation (running statistics) gives what
/// training (batch statistics) gives on that batch, layer by layer, only if each layer keeps
/// its own statistics of the shared trunk.
#[test]
fn per_layer_statistics_reproduce_training_normalisation() {
    let be = Cpu::with_threads(2);
    let x = Tensor::from_vec(&be, &[6, 8, 8, 3], &Rng::new(9).normal_vec(6 * 8 * 8 * 3, 1.0));
    let mut gaps = Vec::new();
    for stats in [SharedBnStats::PerLayer, SharedBnStats::Pooled] {
        let mut net = shared_cnn9(&be, stats);
        let batch_stats = Mode { stats: Stats::Batch, record: false };
        for _ in 0..60 {
            net.forward(&be, &x, batch_stats); // 0.5^60: the EMA equals the fixed batch's statistics
        }
        let train = net.forward(&be, &x, batch_stats).to_vec(&be);
        let eval = net.forward(&be, &x, Mode::EVAL).to_vec(&be);
        gaps.push(rel_diff(&eval, &train));
    }
    eprintln!("per-layer {:.2e}, pooled {:.2e}", gaps[0], gaps[1]);
    // per-layer: rounding only (the EMA sum and the inference formula: 1.3e-4 measured); pooled
    // (the old behaviour): 177× the largest logit
    assert!(gaps[0] < 1e-3, "per-layer: evaluation differs from training by {:.2e}", gaps[0]);
    assert!(gaps[1] > 1e-2, "pooled statistics should shift the evaluation ({:.2e})", gaps[1]);
}

/// Each layer's statistics are buffers of its own in checkpoints; the pooled network has none.
#[test]
fn per_layer_statistics_are_saved_per_layer() {
    let be = Cpu::with_threads(1);
    let names = |stats| {
        let mut v = Vec::new();
        shared_cnn9(&be, stats).visit_params(&mut |p| v.push(p.name.clone()));
        v
    };
    let per_layer = names(SharedBnStats::PerLayer);
    assert!(per_layer.contains(&"conv1_0.pred.trunk_bn1.running_mean".to_string()));
    assert!(per_layer.contains(&"conv3_2.pred.trunk_bn2.ema_count".to_string()));
    assert_eq!(per_layer.len(), names(SharedBnStats::Pooled).len() + 9 * 2 * 3);
}
