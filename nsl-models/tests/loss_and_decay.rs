//! The loss and the coupled weight decay against hand-computed values (spec §1).

use nsl_core::nn::{cross_entropy, NslConv, Padding};
use nsl_core::optim::{apply_regularizers, Optimizer};
use nsl_core::similarity::InnerProduct;
use nsl_core::{Rng, Tensor};
use nsl_cpu::Cpu;

#[test]
fn smoothed_cross_entropy_with_log_floor_by_hand() {
    // z = [0, ln 3] → p = [0.25, 0.75]; label 1, s = 0.01 → ỹ = [0.005, 0.995];
    // L = −(0.005·ln(0.25 + 1e-4) + 0.995·ln(0.75 + 1e-4)) = 0.293040476…
    // ∂L/∂z_j = −Σ_k ỹ_k·p_k/(p_k + 1e-4)·(δ_kj − p_j) = [0.244968…, −0.244968…]
    let be = Cpu::new();
    let logits = Tensor::from_vec(&be, &[1, 2], &[0.0, 3f32.ln()]);
    let (loss, d) = cross_entropy(&be, &logits, &[1], 0.01, 1e-4);
    assert!((loss - 0.293_040_48).abs() < 1e-6, "{loss}");
    let d = d.to_vec(&be);
    assert!((d[0] - 0.244_968_34).abs() < 1e-6 && (d[1] + 0.244_968_34).abs() < 1e-6, "{d:?}");
    // the batch mean: two identical rows give the same loss and half the gradient each
    let logits = Tensor::from_vec(&be, &[2, 2], &[0.0, 3f32.ln(), 0.0, 3f32.ln()]);
    let (loss2, d2) = cross_entropy(&be, &logits, &[1, 1], 0.01, 1e-4);
    assert!((loss2 - loss).abs() < 1e-6);
    assert!((d2.to_vec(&be)[0] - 0.122_484_17).abs() < 1e-6);
}

#[test]
fn coupled_weight_decay_and_tf_momentum_by_hand() {
    // w = 2, g = 0.5, λ = 0.1, lr = 0.1, μ = 0.9 (TF: v = μv + g', w −= lr·v):
    // step 1: g' = 0.5 + 0.2 = 0.7, v = 0.7, w = 1.93
    // step 2: g' = 0.5 + 0.193 = 0.693, v = 0.63 + 0.693 = 1.323, w = 1.7977
    let be = Cpu::new();
    let mut layer =
        NslConv::new(&be, &mut Rng::new(0), "c", (1, 1), (1, 1, Padding::Same), 1.0, 0.1, InnerProduct::boxed());
    layer.weight.value = Tensor::from_vec(&be, &[1, 1], &[2.0]);
    let mut opt = Optimizer::momentum(0.9);
    // the reported L2 term is λ/2·w² = 0.2
    assert!((apply_regularizers(&be, &mut layer) - 0.2).abs() < 1e-7);
    for expected in [1.93f32, 1.7977] {
        layer.weight.grad = Tensor::from_vec(&be, &[1, 1], &[0.5]);
        opt.step(&be, 0.1, &mut layer);
        let w = layer.weight.value.to_vec(&be)[0];
        assert!((w - expected).abs() < 1e-6, "{w} vs {expected}");
        assert_eq!(layer.weight.grad.to_vec(&be), vec![0.0], "step zeroes the gradient");
    }
}

#[test]
fn lr_schedule_code_and_paper() {
    let code = nsl_models::train::RunConfig::code_cifar();
    assert_eq!(code.lr_at(0), 0.1);
    assert!((code.lr_at(19_999) - 0.1).abs() < 1e-9);
    assert!((code.lr_at(20_000) - 0.01).abs() < 1e-9);
    assert!((code.lr_at(37_500) - 1e-4).abs() < 1e-9);
    assert_eq!(code.iterations, 42_500);
    let paper = code.with_paper_schedule();
    assert!((paper.lr_at(34_000) - 0.01).abs() < 1e-9);
    assert!((paper.lr_at(54_000) - 0.001).abs() < 1e-9);
    assert_eq!(paper.iterations, 64_000);
}
