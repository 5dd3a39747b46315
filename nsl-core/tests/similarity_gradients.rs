//! Every similarity's backward (input, kernel, similarity and predictor parameters) against
//! central finite differences, on the CPU backend.

use nsl_core::gradcheck::{check_similarity, GradCheck};
use nsl_core::similarity::predictor::{self, PredictorConfig, PredictorNorm};
use nsl_core::similarity::*;
use nsl_core::{Rng, Similarity};
use nsl_cpu::Cpu;

const SHAPE: (usize, usize, usize) = (2, 5, 4); // batch, h, w: odd, non-square
const CH: (usize, usize, usize) = (3, 4, 3); // c_in, c_out, k

fn cfg() -> GradCheck {
    GradCheck::default()
}

/// Random θ so the check is not taken at a special point such as the identity.
fn perturbed<P: SimilarityMatrix>(be: &Cpu, matrix: P, seed: u64) -> Box<dyn Similarity<Cpu>> {
    let mut s = Static::new(be, "sim", matrix, 9);
    let theta = s.theta.value.to_vec(be);
    let mut rng = Rng::new(seed);
    let noisy: Vec<f32> = theta.iter().map(|t| t + 0.3 * rng.normal()).collect();
    s.theta.value = nsl_core::Tensor::from_vec(be, &[noisy.len()], &noisy);
    Box::new(s)
}

#[test]
fn inner_product() {
    check_similarity(&Cpu::new(), InnerProduct::boxed(), SHAPE, CH, &cfg());
}

#[test]
fn inner_product_stride_and_valid_kernels() {
    use nsl_core::gradcheck::check_layer;
    use nsl_core::nn::{NslConv, Padding};
    let be = Cpu::new();
    let mut rng = Rng::new(3);
    for (k, stride, pad) in
        [(3, 2, Padding::Same), (4, 1, Padding::Valid), (7, 2, Padding::Same), (1, 1, Padding::Same)]
    {
        let mut conv = NslConv::new(&be, &mut rng, "c", (2, 3), (k, stride, pad), 1.0, 0.0, InnerProduct::boxed());
        let x = nsl_core::Tensor::from_vec(&be, &[2, 7, 6, 2], &rng.normal_vec(2 * 7 * 6 * 2, 1.0));
        let (bad, n) = check_layer(&be, &mut conv, &x, &cfg());
        assert!(n > 0 && bad.is_empty(), "k={k} s={stride}: {bad:#?}");
    }
}

#[test]
fn static_diagonal() {
    let be = Cpu::new();
    check_similarity(&be, perturbed(&be, Diagonal::new(DiagonalInit::CodeEye), 1), SHAPE, CH, &cfg());
}

#[test]
fn static_unconstrained() {
    let be = Cpu::new();
    check_similarity(&be, perturbed(&be, Unconstrained::default(), 2), SHAPE, CH, &cfg());
}

#[test]
fn cholesky_psd() {
    let be = Cpu::new();
    check_similarity(&be, perturbed(&be, CholeskyPsd::default(), 3), SHAPE, CH, &cfg());
}

#[test]
fn sphere_x_normalized_and_cosine() {
    let be = Cpu::new();
    check_similarity(&be, Box::new(Sphere::<Cpu>::x_normalized()), SHAPE, CH, &cfg());
    check_similarity(&be, Box::new(Sphere::<Cpu>::cosine()), SHAPE, CH, &cfg());
}

/// With 8 channels in and out the CPU backend runs the row-scaled convolution as Winograd,
/// scaling rows as the output transform writes them (and as the backward reads `dy`).
#[test]
fn sphere_on_the_winograd_path() {
    let be = Cpu::new();
    let (shape, ch) = ((1, 6, 5), (8, 8, 3));
    check_similarity(&be, Box::new(Sphere::<Cpu>::x_normalized()), shape, ch, &cfg());
    check_similarity(&be, Box::new(Sphere::<Cpu>::cosine()), shape, ch, &cfg());
}

fn test_predictor(be: &Cpu, norm: PredictorNorm, kind: DynamicKind) -> Box<dyn Similarity<Cpu>> {
    let mut rng = Rng::new(11);
    // init ×1 (not ×0.1/×0.001) so the predictor's contribution is visible to the check
    let cfg = PredictorConfig { hidden: 5, norm, init_scales: (1.0, 1.0), ..PredictorConfig::reference(kind, 9) };
    Box::new(Dynamic::new(kind, Box::new(predictor::build(be, &mut rng, "pred", CH.0, &cfg))))
}

#[test]
fn dynamic_diagonal_all_predictors() {
    let be = Cpu::new();
    for norm in [PredictorNorm::XNormalized, PredictorNorm::FullSphere, PredictorNorm::Plain] {
        check_similarity(&be, test_predictor(&be, norm, DynamicKind::Diagonal), SHAPE, CH, &cfg());
    }
}

#[test]
fn dynamic_unconstrained() {
    let be = Cpu::new();
    check_similarity(
        &be,
        test_predictor(&be, PredictorNorm::XNormalized, DynamicKind::Unconstrained),
        SHAPE,
        CH,
        &cfg(),
    );
}

#[test]
fn kernel_shape_over_static_and_dynamic() {
    let be = Cpu::new();
    // D_r's gradient is straight-through by design; checked separately below.
    let cfg = GradCheck { skip: vec![nsl_core::Role::ShapeMask], ..cfg() };
    let mut rng = Rng::new(5);
    let mut ks = KernelShape::code_default(&be, "ks", 9, perturbed(&be, Diagonal::new(DiagonalInit::Ones), 4));
    // switch two taps off so the mask matters
    let d_r: Vec<f32> = (0..9).map(|i| if i % 4 == 1 { 0.0 } else { 1.0 + rng.uniform() }).collect();
    ks.d_r.value = nsl_core::Tensor::from_vec(&be, &[9], &d_r);
    check_similarity(&be, Box::new(ks), SHAPE, CH, &cfg);
    let dynamic = test_predictor(&be, PredictorNorm::XNormalized, DynamicKind::Diagonal);
    check_similarity(&be, Box::new(KernelShape::code_default(&be, "ks", 9, dynamic)), SHAPE, CH, &cfg);
}

#[test]
fn global_diagonal() {
    let be = Cpu::new();
    let mut g = GlobalDiagonal::new(&be, "g", SHAPE.1, SHAPE.2);
    let mut rng = Rng::new(8);
    let mask: Vec<f32> = (0..SHAPE.1 * SHAPE.2).map(|_| 1.0 + 0.5 * rng.normal()).collect();
    g.mask.value = nsl_core::Tensor::from_vec(&be, &[mask.len()], &mask);
    check_similarity(&be, Box::new(g), SHAPE, CH, &cfg());
}

#[test]
fn self_attention_plain_and_sphere() {
    let be = Cpu::new();
    for sphere in [false, true] {
        let mut rng = Rng::new(9);
        let mut att = SelfAttention::new(&be, &mut rng, "att", 16, sphere, 0.0, 0.0);
        att.gamma.value = nsl_core::Tensor::from_vec(&be, &[1], &[0.7]); // γ = 0 would hide G1, G2, V
        check_similarity(&be, Box::new(att), (2, 3, 3), (16, 16, 1), &cfg());
    }
}
