//! Exact identities: fold() equals the unfolded layer; identity similarities equal plain conv;
//! a dynamic similarity with a zero predictor equals plain conv; the straight-through gradient
//! of the kernel-shape mask equals the static DNS gradient at the same mask.

use nsl_core::nn::{Layer, Mode, NslConv, Padding};
use nsl_core::similarity::predictor::{self, PredictorConfig};
use nsl_core::similarity::*;
use nsl_core::{Rng, Similarity, Tensor};
use nsl_cpu::Cpu;

fn conv_with(be: &Cpu, sim: Box<dyn Similarity<Cpu>>, seed: u64) -> NslConv<Cpu> {
    NslConv::new(be, &mut Rng::new(seed), "c", (3, 5), (3, 1, Padding::Same), 1.0, 0.0, sim)
}

fn input(be: &Cpu, seed: u64) -> Tensor<Cpu> {
    Tensor::from_vec(be, &[2, 6, 5, 3], &Rng::new(seed).normal_vec(2 * 6 * 5 * 3, 1.0))
}

fn randomize(be: &Cpu, p: &mut nsl_core::Param<Cpu>, seed: u64) {
    let mut rng = Rng::new(seed);
    let v: Vec<f32> = p.value.to_vec(be).iter().map(|t| t + 0.4 * rng.normal()).collect();
    p.value = Tensor::from_vec(be, p.value.shape(), &v);
}

#[test]
fn fold_equals_unfolded_layer_for_every_static_similarity() {
    let be = Cpu::new();
    let x = input(&be, 1);
    let sims: Vec<Box<dyn Similarity<Cpu>>> = vec![
        InnerProduct::boxed(),
        Static::boxed(&be, "s", Diagonal::new(DiagonalInit::CodeEye), 9),
        Static::boxed(&be, "s", Unconstrained::default(), 9),
        Static::boxed(&be, "s", CholeskyPsd::default(), 9),
        Box::new(KernelShape::code_default(&be, "s", 9, Static::boxed(&be, "r", Unconstrained::default(), 9))),
    ];
    for (i, sim) in sims.into_iter().enumerate() {
        let mut layer = conv_with(&be, sim, 2);
        layer.similarity.visit_params(&mut |p| randomize(&be, p, 10 + i as u64));
        let y = layer.forward(&be, &x, Mode::EVAL).to_vec(&be);
        let folded = layer.fold(&be).expect("static similarity folds");
        let mut plain = conv_with(&be, InnerProduct::boxed(), 2);
        plain.weight.value = folded;
        let y_plain = plain.forward(&be, &x, Mode::EVAL).to_vec(&be);
        for (a, b) in y.iter().zip(&y_plain) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{}: {a} vs {b}", layer.name());
        }
    }
}

#[test]
fn identity_similarities_are_exactly_plain_conv() {
    let be = Cpu::new();
    let x = input(&be, 3);
    let y_plain = conv_with(&be, InnerProduct::boxed(), 4).forward(&be, &x, Mode::EVAL).to_vec(&be);
    for sim in [
        Static::boxed(&be, "s", Diagonal::new(DiagonalInit::Ones), 9),
        Static::boxed(&be, "s", Unconstrained::default(), 9),
    ] {
        let mut layer = conv_with(&be, sim, 4);
        assert_eq!(layer.forward(&be, &x, Mode::EVAL).to_vec(&be), y_plain, "{}", layer.name());
    }
}

#[test]
fn dynamic_with_zero_predictor_is_exactly_plain_conv() {
    let be = Cpu::new();
    let x = input(&be, 5);
    let y_plain = conv_with(&be, InnerProduct::boxed(), 6).forward(&be, &x, Mode::TRAIN).to_vec(&be);
    for (kind, cfg) in
        [(DynamicKind::Diagonal, PredictorConfig::dns(9)), (DynamicKind::Unconstrained, PredictorConfig::uns(9))]
    {
        let mut pred = predictor::build(&be, &mut Rng::new(7), "p", 3, &cfg);
        pred.visit_params(&mut |p| {
            if p.trainable && p.name.ends_with(".weight") {
                p.value = p.value.zeros_like(&be);
            }
        });
        let mut layer = conv_with(&be, Box::new(Dynamic::new(kind, Box::new(pred))), 6);
        for mode in [Mode::TRAIN, Mode::EVAL] {
            assert_eq!(layer.forward(&be, &x, mode).to_vec(&be), y_plain, "{} {mode:?}", layer.name());
        }
    }
}

#[test]
fn dynamic_dns_starts_near_identity_with_code_init() {
    // spec §3.3: with init ×0.1/×0.001 and BN ε = 1e-3, m ≈ 1 ± 0.01 at init.
    let be = Cpu::new();
    let x = input(&be, 8);
    let mut pred = predictor::build(&be, &mut Rng::new(9), "p", 3, &PredictorConfig::dns(9));
    let m = pred.forward(&be, &x, Mode::TRAIN).to_vec(&be);
    let max = m.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(max < 0.1, "predicted residual should be small at init, max |m−1| = {max}");
    assert!(max > 1e-4, "predicted residual should not vanish, max |m−1| = {max}");
}

#[test]
fn kernel_shape_mask_gradient_is_straight_through() {
    let be = Cpu::new();
    let x = input(&be, 10);
    let mut ks = conv_with(&be, Box::new(KernelShape::code_default(&be, "k", 9, InnerProduct::boxed())), 11);
    let mut dns = conv_with(&be, Static::boxed(&be, "d", Diagonal::new(DiagonalInit::Ones), 9), 11);
    let dy = Tensor::from_vec(&be, &[2, 6, 5, 5], &Rng::new(12).normal_vec(2 * 6 * 5 * 5, 1.0));
    for layer in [&mut ks, &mut dns] {
        layer.forward(&be, &x, Mode::TRAIN);
        layer.backward(&be, &dy);
    }
    let grad_of = |layer: &mut NslConv<Cpu>| {
        let mut g = Vec::new();
        layer.similarity.visit_params(&mut |p| g = p.grad.to_vec(&be));
        g
    };
    let (a, b) = (grad_of(&mut ks), grad_of(&mut dns));
    for (x, y) in a.iter().zip(&b) {
        assert!((x - y).abs() <= 1e-4 * (1.0 + y.abs()), "{a:?} vs {b:?}");
    }
}

#[test]
fn tensors_round_trip_through_ndarray_in_any_layout() {
    let be = nsl_cpu::Cpu::with_threads(1);
    let a = ndarray::Array::from_shape_fn((2, 3, 4), |(i, j, k)| (i * 100 + j * 10 + k) as f32);
    let t = nsl_core::Tensor::from_ndarray(&be, &a);
    assert_eq!(t.shape(), &[2, 3, 4]);
    assert_eq!(t.to_ndarray(&be), a.clone().into_dyn());
    // a transposed view is read in its logical order, not its memory order
    let transposed = a.view().reversed_axes();
    let t = nsl_core::Tensor::from_ndarray(&be, &transposed);
    assert_eq!(t.shape(), &[4, 3, 2]);
    assert_eq!(t.to_ndarray(&be), transposed.to_owned().into_dyn());
    assert_eq!(t.to_vec(&be)[1], 100.0, "element [0, 0, 1] of the transposed view is a[1, 0, 0]");
}
