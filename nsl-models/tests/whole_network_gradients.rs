//! Finite-difference checks of whole networks, in every mode an experiment differentiates them:
//! batch statistics (training), running statistics (few-shot fine-tuning and MAML, through
//! CNN-4's fused BN+ReLU and the dynamic predictors' batch norms), one MAML inner step, and a
//! Hessian-vector product. Per-layer tests cannot catch a network-level mistake such as a batch
//! norm differentiated without its ReLU mask.

use nsl_core::gradcheck::check_path_integrals;
use nsl_core::nn::{Layer, Mode};
use nsl_core::{Rng, Tensor};
use nsl_cpu::Cpu;
use nsl_models::fewshot::{
    debias_bn_statistics, hessian_vector, loss_grad, new_head, outer_gradient, swap_head, FlatParams, HostBatch, Maml,
    MamlOrder,
};
use nsl_models::nets::{cnn4, Cnn4Config, Network, SimilarityChoice};
use nsl_models::train::{build_network, RunConfig};

/// The few-shot rows' static DNS (all-ones start).
const DNS_ONES: SimilarityChoice = SimilarityChoice::StaticDns { code_init: false };

/// A few training steps on random data, so the running statistics and every parameter are away
/// from their init (γ = 1, β = 0, statistics 0/1) and the checks see a realistic network.
fn warm_up(be: &Cpu, net: &mut Network<Cpu>, rng: &mut Rng) {
    let [h, w, c] = net.input;
    for _ in 0..4 {
        let x = Tensor::from_vec(be, &[6, h, w, c], &rng.normal_vec(6 * h * w * c, 1.0));
        let logits = net.forward(be, &x, Mode::TRAIN);
        let dlogits = Tensor::from_vec(be, logits.shape(), &rng.normal_vec(logits.numel(), 0.1));
        net.backward(be, &dlogits);
        net.visit_params(&mut |p| {
            if p.trainable {
                let (v, g) = (p.value.to_vec(be), p.grad.to_vec(be));
                let moved: Vec<f32> = v.iter().zip(&g).map(|(v, g)| v - 0.05 * g).collect();
                p.value = Tensor::from_vec(be, p.value.shape(), &moved);
                p.zero_grad(be);
            }
        });
    }
    // as pretraining leaves them: the zero-started EMA of 4 steps debiased
    debias_bn_statistics(be, net);
}

/// Check the input's and every trainable tensor's gradient of the whole network by
/// [`check_path_integrals`]: along a random unit direction per tensor, the difference of the
/// loss must equal the integral of the analytic directional derivative.
fn check(be: &Cpu, net: &mut Network<Cpu>, mode: Mode, what: &str) {
    check_with_step(be, net, mode, (1e-2, 32), what)
}

/// [`check`] with its path: half-length and midpoint-rule points.
fn check_with_step(be: &Cpu, net: &mut Network<Cpu>, mode: Mode, path: (f32, usize), what: &str) {
    let [h, w, c] = net.input;
    let mut rng = Rng::new(17);
    let x = Tensor::from_vec(be, &[4, h, w, c], &rng.normal_vec(4 * h * w * c, 1.0));
    let checks = check_path_integrals(be, net, &x, mode, path, 3);
    // `.d_r`: the joint mask's straight-through estimator is by design not the derivative
    let checked: Vec<_> = checks.iter().filter(|c| !c.tensor.ends_with(".d_r")).collect();
    let worst = checked.iter().max_by(|a, b| a.error().total_cmp(&b.error())).expect("tensors to check");
    eprintln!("{what}: {} tensors, worst {} at {:.2e}", checked.len(), worst.tensor, worst.error());
    // measured: at most 1e-2 in every case here; with the ReLU mask dropped from the
    // running-statistics backward (the few-shot bug), 0.23 (CNN-4) and 0.84 (CNN-9)
    assert!(
        checked.iter().all(|c| c.error() < 5e-2),
        "{what}: {:#?}",
        checked.iter().filter(|c| c.error() >= 5e-2).collect::<Vec<_>>()
    );
    assert!(checked.len() > 10 && checked.iter().any(|c| c.tensor == "input"));
}

/// CNN-4 as few-shot adaptation differentiates it: fused BN+ReLU on running statistics, static
/// DNS diagonals and the head among the checked parameters.
#[test]
fn cnn4_on_running_statistics() {
    let be = Cpu::with_threads(2);
    let mut rng = Rng::new(3);
    let mut net =
        cnn4(&be, &mut Rng::new(1), &Cnn4Config { input: [16, 16, 3], width: 0.25, ..Cnn4Config::paper(5, DNS_ONES) });
    warm_up(&be, &mut net, &mut rng);
    let mut roles = Vec::new();
    net.visit_params(&mut |p| roles.push(p.role));
    assert!(roles.contains(&nsl_core::Role::Similarity) && roles.contains(&nsl_core::Role::Weight));
    check(&be, &mut net, Mode::ADAPT, "CNN-4, static DNS, running statistics");
    check(&be, &mut net, Mode::TRAIN, "CNN-4, static DNS, batch statistics");
}

/// CNN-9 with the code's dynamic DNS at width ×0.25 (predictor batch norms included), in both
/// statistics modes, and the Table 1–4 similarity families in training mode.
#[test]
fn cnn9_similarity_families() {
    let be = Cpu::with_threads(2);
    for (similarity, modes) in [
        ("dynamic-dns", &[Mode::TRAIN, Mode::ADAPT][..]),
        ("static-dns", &[Mode::TRAIN][..]),
        ("static-uns", &[Mode::TRAIN][..]),
        ("shared-dns", &[Mode::TRAIN][..]),
        ("joint-dynamic-dns", &[Mode::TRAIN][..]),
    ] {
        let cfg = RunConfig { similarity: similarity.parse().unwrap(), width: 0.125, ..RunConfig::code_cifar() };
        let mut net = build_network(&be, &cfg, 4, [8, 8, 1], &mut Rng::new(2)).unwrap();
        warm_up(&be, &mut net, &mut Rng::new(5));
        for &mode in modes {
            check(&be, &mut net, mode, &format!("CNN-9 {similarity} {mode:?}"));
        }
    }
}

/// The Table 8 networks (SphereNet-9 and its plain twin, each ± self-attention) at their
/// narrowest (every width 8, attention `C/8 = 1`), as training differentiates them. After the
/// warm-up each attention's γ is set to 0.5, as training leaves it: at its zero start, or the
/// few-thousandths the warm-up moves it, the query, key and value paths carry gradients too
/// small for an f32 loss difference to resolve (measured: scale 1e-8 against noise 1e-6). Even
/// at 0.5 the cosine key projection's path at h = 1e-2 has scale 1.4e-5 against that noise, so
/// these paths are 10× longer with 4× the points (worst error measured: 1.0e-2).
#[test]
fn table8_networks_with_and_without_self_attention() {
    let be = Cpu::with_threads(2);
    for network in ["cnn9-wide", "cnn9-wide-attention", "spherenet9", "spherenet9-attention"] {
        let cfg = RunConfig { network: network.parse().unwrap(), width: 0.01, ..RunConfig::code_cifar() };
        let mut net = build_network(&be, &cfg, 4, [16, 16, 1], &mut Rng::new(2)).unwrap();
        warm_up(&be, &mut net, &mut Rng::new(5));
        let mut gammas = 0;
        net.visit_params(&mut |p| {
            if p.role == nsl_core::Role::AttentionScale {
                p.value = Tensor::from_vec(&be, &[1], &[0.5]);
                gammas += 1;
            }
        });
        assert_eq!(gammas, if network.ends_with("attention") { 2 } else { 0 }, "{network}");
        check_with_step(&be, &mut net, Mode::TRAIN, (1e-1, 128), &format!("{network} TRAIN"));
    }
}

/// A support/query pair of random images with labels `0..way` repeating.
fn batch(rng: &mut Rng, n: usize, way: usize, side: usize) -> HostBatch {
    HostBatch {
        images: rng.normal_vec(n * side * side * 3, 1.0),
        labels: (0..n).map(|i| i % way).collect(),
        shape: [n, side, side, 3],
    }
}

/// CNN-4 at width ×0.125 (4 channels) on 16×16 images with a 2-way head, everything but the
/// DNS diagonals and the head frozen: MAML's setting. Small, so a step of 1e-3 in θ rarely
/// moves a ReLU pre-activation across 0 and second differences converge.
fn maml_model(be: &Cpu) -> (Network<Cpu>, FlatParams, Vec<f32>) {
    let mut rng = Rng::new(11);
    let mut net =
        cnn4(be, &mut Rng::new(1), &Cnn4Config { input: [16, 16, 3], width: 0.125, ..Cnn4Config::paper(5, DNS_ONES) });
    warm_up(be, &mut net, &mut rng);
    let head = new_head(be, &mut Rng::new(4), &[1, 1, 1, 4], 2, 0.0);
    swap_head(&mut net, Box::new(head), 2);
    let params = FlatParams::similarity_and_head(&mut net);
    params.freeze(&mut net, true);
    // move θ off the all-ones start so the diagonals' gradients are generic
    let theta: Vec<f32> = params.get(be, &mut net).iter().map(|t| t + 0.1 * rng.normal()).collect();
    (net, params, theta)
}

/// `Σ v_i·w_i` in f64.
fn dot(v: &[f32], w: &[f32]) -> f64 {
    v.iter().zip(w).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
}

/// `θ + t·d`.
fn along(theta: &[f32], d: &[f32], t: f64) -> Vec<f32> {
    theta.iter().zip(d).map(|(a, b)| (f64::from(*a) + t * f64::from(*b)) as f32).collect()
}

/// A random unit vector of `n` values.
fn unit(rng: &mut Rng, n: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
    let norm = dot(&v, &v).sqrt();
    v.iter().map(|x| (f64::from(*x) / norm) as f32).collect()
}

/// One MAML inner step through the real CNN-4 on running statistics: along random directions
/// `d`, `F(θ + h·d) − F(θ − h·d)` of `F(θ) = L_Q(θ − α∇L_S(θ))` against the integral of the
/// second-order outer gradient `(I − αH)∇L_Q(θ_1)`, which first-order MAML must fail.
#[test]
fn maml_inner_step_matches_the_outer_loss() {
    let be = Cpu::with_threads(2);
    let (mut net, params, theta0) = maml_model(&be);
    let mut rng = Rng::new(8);
    let (support, query) = (batch(&mut rng, 2, 2, 16), batch(&mut rng, 4, 2, 16));
    let second = Maml { inner_steps: 1, inner_lr: 0.2, test_head_steps: 0, order: MamlOrder::Second, hvp_step: 1e-3 };
    let first = Maml { order: MamlOrder::First, ..second };
    let mut outer = |theta: &[f32]| {
        let (_, gs) = loss_grad(&be, &mut net, &params, theta, &support);
        let inner: Vec<f32> = theta.iter().zip(&gs).map(|(t, g)| t - 0.2 * g).collect();
        f64::from(loss_grad(&be, &mut net, &params, &inner, &query).0)
    };
    let h = 1e-2;
    let directions: Vec<Vec<f32>> = (0..3).map(|_| unit(&mut rng, theta0.len())).collect();
    let differences: Vec<f64> =
        directions.iter().map(|d| outer(&along(&theta0, d, h)) - outer(&along(&theta0, d, -h))).collect();
    for (order, cfg) in [("second", second), ("first", first)] {
        let errors: Vec<f64> = directions
            .iter()
            .zip(&differences)
            .map(|(d, diff)| {
                let points = 16;
                let step = 2.0 * h / points as f64;
                let integral: f64 = (0..points)
                    .map(|k| {
                        let theta = along(&theta0, d, -h + (k as f64 + 0.5) * step);
                        step * dot(&outer_gradient(&be, &mut net, &params, &theta, (&support, &query), &cfg).grad, d)
                    })
                    .sum();
                (integral - diff).abs() / diff.abs()
            })
            .collect();
        eprintln!(
            "{order}-order MAML gradient: relative errors {:?}",
            errors.iter().map(|e| format!("{e:.2e}")).collect::<Vec<_>>()
        );
        if order == "second" {
            assert!(errors.iter().all(|e| *e < 2e-2), "second-order outer gradient: {errors:?}");
        } else {
            assert!(errors.iter().any(|e| *e > 0.1), "first order should miss the Hessian term: {errors:?}");
        }
    }
}

/// MAML's Hessian-vector products (central differences of gradients through the real CNN-4 on
/// running statistics) integrate to the difference of gradients:
/// `∇L(θ + h·v) − ∇L(θ − h·v) = ∫_{−h}^{h} H(θ + t·v)·v dt`.
#[test]
fn hessian_vector_products_integrate_to_a_difference_of_gradients() {
    let be = Cpu::with_threads(2);
    let (mut net, params, theta) = maml_model(&be);
    let mut rng = Rng::new(21);
    let support = batch(&mut rng, 4, 2, 16);
    let v = unit(&mut rng, theta.len());
    // The gradient of a ReLU network jumps where a unit switches, and H·v has Dirac parts there
    // that no product captures: the path and the product's step must stay inside one linear
    // region. Measured on 8 seeds: with 1e-4 every error is below 5e-3; with 3e-4 one path
    // crossed a kink (0.37); with 1e-2 it is 0.63.
    let (h, hs) = (1e-4, 1e-4);
    let (_, plus) = loss_grad(&be, &mut net, &params, &along(&theta, &v, h), &support);
    let (_, minus) = loss_grad(&be, &mut net, &params, &along(&theta, &v, -h), &support);
    let difference: Vec<f64> = plus.iter().zip(&minus).map(|(p, m)| f64::from(*p) - f64::from(*m)).collect();
    let points = 16;
    let step = 2.0 * h / points as f64;
    let mut integral = vec![0.0f64; theta.len()];
    for k in 0..points {
        let at = along(&theta, &v, -h + (k as f64 + 0.5) * step);
        let hv = hessian_vector(&be, &mut net, &params, &at, &support, &v, hs);
        integral.iter_mut().zip(&hv).for_each(|(i, x)| *i += step * f64::from(*x));
    }
    let err: f64 = integral.iter().zip(&difference).map(|(a, b)| (a - b).powi(2)).sum::<f64>().sqrt();
    let rel = err / difference.iter().map(|x| x * x).sum::<f64>().sqrt();
    eprintln!("Hessian-vector products vs a difference of gradients: relative L2 error {rel:.2e}");
    assert!(rel < 2e-2, "H·v off by {rel:.3e}");
}
