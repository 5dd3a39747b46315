//! `BatchNorm::with_relu` (one fused backend op) against `BatchNorm` then `Relu`, and its
//! gradients by finite differences.

use nsl_core::gradcheck::{check_layer, GradCheck};
use nsl_core::nn::{BatchNorm, Layer, Mode, Relu, Sequential};
use nsl_core::{Rng, Tensor};
use nsl_cpu::Cpu;

#[test]
fn fused_layer_equals_batch_norm_then_relu() {
    let be = Cpu::with_threads(2);
    let mut rng = Rng::new(4);
    let x = Tensor::from_vec(&be, &[3, 5, 4, 6], &rng.normal_vec(3 * 5 * 4 * 6, 2.0));
    let dy = Tensor::from_vec(&be, &[3, 5, 4, 6], &rng.normal_vec(3 * 5 * 4 * 6, 1.0));
    let mut fused = BatchNorm::new(&be, "bn", 6, 1e-3, 0.0).with_relu();
    let mut pair = Sequential::new("pair").push(BatchNorm::new(&be, "bn", 6, 1e-3, 0.0)).push(Relu::new());
    for mode in [Mode::TRAIN, Mode::EVAL] {
        let (a, b) = (fused.forward(&be, &x, mode), pair.forward(&be, &x, mode));
        assert_eq!(a.to_vec(&be), b.to_vec(&be), "{mode:?} forward");
    }
    let (da, db) = (fused.backward(&be, &dy), pair.backward(&be, &dy));
    assert_eq!(da.to_vec(&be), db.to_vec(&be), "dx");
    let mut grads = Vec::new();
    fused.visit_params(&mut |p| grads.push((p.name.clone(), p.grad.to_vec(&be), p.value.to_vec(&be))));
    let mut i = 0;
    pair.visit_params(&mut |p| {
        assert_eq!((&p.name, &p.grad.to_vec(&be), &p.value.to_vec(&be)), (&grads[i].0, &grads[i].1, &grads[i].2));
        i += 1;
    });
    assert_eq!(i, grads.len());
}

#[test]
fn fused_layer_gradients() {
    let be = Cpu::with_threads(2);
    let mut rng = Rng::new(9);
    let x = Tensor::from_vec(&be, &[2, 3, 3, 4], &rng.normal_vec(2 * 3 * 3 * 4, 1.0));
    let mut layer = BatchNorm::new(&be, "bn", 4, 1e-3, 0.0).with_relu();
    let (bad, n) = check_layer(&be, &mut layer, &x, &GradCheck::default());
    assert!(n > 0 && bad.is_empty(), "{bad:#?}");
}

/// Batch norm on its running statistics, differentiated ([`Mode::ADAPT`], few-shot adaptation):
/// the forward is the inference forward bit for bit, leaves the statistics alone, and every
/// gradient (input, γ, β; through the fused ReLU's mask too) is the finite difference.
#[test]
fn running_statistics_mode_is_the_inference_forward_and_differentiable() {
    let be = Cpu::with_threads(2);
    let mut rng = Rng::new(12);
    for relu in [false, true] {
        let bn = BatchNorm::new(&be, "bn", 5, 1e-3, 0.0);
        let mut layer = if relu { bn.with_relu() } else { bn };
        // a few training steps give running statistics far from (0, 1) and γ, β off their init
        for _ in 0..3 {
            let x = Tensor::from_vec(&be, &[4, 3, 3, 5], &rng.normal_vec(4 * 3 * 3 * 5, 3.0));
            layer.forward(&be, &x, Mode::TRAIN);
            let dy = Tensor::from_vec(&be, &[4, 3, 3, 5], &rng.normal_vec(4 * 3 * 3 * 5, 1.0));
            layer.backward(&be, &dy);
        }
        layer.gamma.value = Tensor::from_vec(&be, &[5], &[0.5, 1.5, -0.7, 2.0, 1.0]);
        layer.beta.value = Tensor::from_vec(&be, &[5], &[0.3, -0.2, 0.1, 0.0, -1.0]);
        let stats = |l: &BatchNorm<Cpu>| l.running_statistics().map(|t| t.to_vec(&be));
        let before = stats(&layer);
        let x = Tensor::from_vec(&be, &[2, 3, 3, 5], &rng.normal_vec(2 * 3 * 3 * 5, 2.0));
        let adapt = layer.forward(&be, &x, Mode::ADAPT).to_vec(&be);
        layer.backward(&be, &Tensor::zeros(&be, &[2, 3, 3, 5]));
        assert_eq!(adapt, layer.forward(&be, &x, Mode::EVAL).to_vec(&be), "relu {relu}");
        let cfg = GradCheck { mode: Mode::ADAPT, samples: 20, ..GradCheck::default() };
        let (bad, n) = check_layer(&be, &mut layer, &x, &cfg);
        assert!(n == 30 && bad.is_empty(), "relu {relu}: {n} compared, {bad:#?}");
        assert_eq!(stats(&layer), before, "running statistics must not move in Mode::ADAPT");
    }
}
