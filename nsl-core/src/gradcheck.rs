//! A finite-difference gradient checker that any backend and any layer or similarity can call.
//!
//! The scalar checked is `L = Σ y ⊙ r` for a fixed random `r`, so `∂L/∂y = r`. For a sample of
//! coordinates of the input and of every trainable parameter, the analytic gradient from
//! `backward` is compared with the central difference `(L(θ+ε) − L(θ−ε)) / 2ε`, each `L`
//! accumulated in `f64` on the host.
//!
//! A coordinate that fails gets a second difference at `ε/2`. If the two differences disagree
//! with each other as much as with the analytic value, the difference has not converged there
//! (a ReLU kink inside `±ε`, or `f32` rounding of `L` above the tolerance for a tiny derivative)
//! and the coordinate is *unresolved*, not wrong. A wrong gradient is wrong at both steps. At
//! most one in [`UNRESOLVED_ONE_IN`] compared coordinates may be unresolved; beyond that they
//! are reported as mismatches too.

use crate::nn::{Layer, Mode};
use crate::similarity::Similarity;
use crate::{Backend, Rng, Role, Tensor};

/// Tolerances and sampling for [`check_layer`].
#[derive(Clone, Debug)]
pub struct GradCheck {
    /// Finite-difference step.
    pub eps: f32,
    /// Pass if `|a − n| ≤ atol + rtol·max(|a|, |n|)`.
    pub rtol: f64,
    pub atol: f64,
    /// Coordinates sampled per tensor.
    pub samples: usize,
    /// Parameters of these roles are not checked (e.g. [`Role::ShapeMask`], trained by a
    /// straight-through estimator whose gradient is by design not the finite difference).
    pub skip: Vec<Role>,
    pub seed: u64,
    /// How the forward runs: [`Mode::TRAIN`] (batch statistics), or [`Mode::ADAPT`] (batch
    /// norm on its running statistics, as few-shot adaptation differentiates it). Must record.
    pub mode: Mode,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck { eps: 1e-3, rtol: 3e-2, atol: 2e-3, samples: 12, skip: Vec::new(), seed: 1, mode: Mode::TRAIN }
    }
}

/// At most one compared coordinate in this many may be unresolved (see the module docs).
pub const UNRESOLVED_ONE_IN: usize = 16;

/// One compared coordinate.
#[derive(Clone, Debug)]
pub struct Mismatch {
    pub tensor: String,
    pub index: usize,
    pub analytic: f64,
    pub numeric: f64,
}

fn loss<B: Backend>(be: &B, layer: &mut dyn Layer<B>, x: &Tensor<B>, r: &[f32], mode: Mode) -> f64 {
    let y = layer.forward(be, x, mode);
    // pop the caches this forward left, without touching the checked gradients' meaning
    let _ = layer.backward(be, &y.zeros_like(be));
    y.to_vec(be).iter().zip(r).map(|(a, b)| *a as f64 * *b as f64).sum()
}

/// Check `∂L/∂x` and every trainable parameter gradient of `layer` at input `x`.
/// Returns the mismatches (empty means pass; unresolved coordinates count only beyond their
/// quota, see the module docs) and the number of coordinates compared.
pub fn check_layer<B: Backend>(
    be: &B,
    layer: &mut dyn Layer<B>,
    x: &Tensor<B>,
    cfg: &GradCheck,
) -> (Vec<Mismatch>, usize) {
    assert!(cfg.mode.record, "a gradient check needs a forward that records for backward");
    let mut rng = Rng::new(cfg.seed);
    crate::optim::zero_grads(be, layer);
    let y = layer.forward(be, x, cfg.mode);
    let r: Vec<f32> = (0..y.numel()).map(|_| rng.normal()).collect();
    let dx = layer.backward(be, &Tensor::from_vec(be, y.shape(), &r)).to_vec(be);

    // analytic parameter gradients with the parameters' visit positions
    let mut analytic: Vec<(usize, String, Vec<f32>)> = Vec::new();
    let mut position = 0;
    layer.visit_params(&mut |p| {
        if p.trainable && !cfg.skip.contains(&p.role) {
            analytic.push((position, p.name.clone(), p.grad.to_vec(be)));
        }
        position += 1;
    });

    let agree = |a: f64, n: f64| (a - n).abs() <= cfg.atol + cfg.rtol * a.abs().max(n.abs());
    let (mut bad, mut unresolved, mut compared) = (Vec::new(), Vec::new(), 0);
    // `difference(h)` is the central difference of step `h` for one coordinate.
    let mut compare = |tensor: &str, index: usize, a: f64, difference: &mut dyn FnMut(f32) -> f64| {
        compared += 1;
        let n = difference(cfg.eps);
        if agree(a, n) {
            return;
        }
        let n_half = difference(cfg.eps / 2.0);
        let mismatch = Mismatch { tensor: tensor.into(), index, analytic: a, numeric: n };
        if !agree(a, n_half) && agree(n, n_half) {
            bad.push(mismatch);
        } else if !agree(a, n_half) {
            unresolved.push(mismatch);
        }
    };

    let xv = x.to_vec(be);
    for _ in 0..cfg.samples.min(xv.len()) {
        let i = rng.below(xv.len());
        let mut difference = |h: f32| {
            let mut at = |delta: f32| {
                let mut v = xv.clone();
                v[i] += delta;
                loss(be, layer, &Tensor::from_vec(be, x.shape(), &v), &r, cfg.mode)
            };
            (at(h) - at(-h)) / (2.0 * h as f64)
        };
        compare("input", i, dx[i] as f64, &mut difference);
    }

    for (position, name, grad) in &analytic {
        for _ in 0..cfg.samples.min(grad.len()) {
            let i = rng.below(grad.len());
            let mut difference = |h: f32| {
                let mut at = |delta: f32| {
                    nudge_param(be, layer, *position, i, delta);
                    let l = loss(be, layer, x, &r, cfg.mode);
                    nudge_param(be, layer, *position, i, -delta);
                    l
                };
                (at(h) - at(-h)) / (2.0 * h as f64)
            };
            compare(name, i, grad[i] as f64, &mut difference);
        }
    }
    if unresolved.len() > compared / UNRESOLVED_ONE_IN {
        bad.extend(unresolved);
    }
    (bad, compared)
}

/// Add `delta` to value `index` of the parameter visited at `position`.
fn nudge_param<B: Backend>(be: &B, layer: &mut dyn Layer<B>, position: usize, index: usize, delta: f32) {
    with_param(layer, position, &mut |p| {
        let mut v = p.value.to_vec(be);
        v[index] += delta;
        p.value = Tensor::from_vec(be, p.value.shape(), &v);
    });
}

/// Run `f` on the parameter visited at `position`.
fn with_param<B: Backend>(layer: &mut dyn Layer<B>, position: usize, f: &mut dyn FnMut(&mut crate::Param<B>)) {
    let mut at = 0;
    layer.visit_params(&mut |p| {
        if at == position {
            f(p);
        }
        at += 1;
    });
}

/// Check a similarity inside a `k×k` stride-1 SAME [`crate::nn::NslConv`] `c_in → c_out` on a
/// random `[batch, h, w, c_in]` input. Panics with every mismatch listed if any coordinate fails.
#[allow(clippy::too_many_arguments)]
pub fn check_similarity<B: Backend>(
    be: &B,
    similarity: Box<dyn Similarity<B>>,
    (batch, h, w): (usize, usize, usize),
    (c_in, c_out, k): (usize, usize, usize),
    cfg: &GradCheck,
) {
    use crate::nn::{NslConv, Padding};
    let mut rng = Rng::new(cfg.seed ^ 0x5eed);
    let mut conv = NslConv::new(be, &mut rng, "conv", (c_in, c_out), (k, 1, Padding::Same), 1.0, 0.0, similarity);
    let x = Tensor::from_vec(be, &[batch, h, w, c_in], &rng.normal_vec(batch * h * w * c_in, 1.0));
    let name = conv.similarity.name();
    let (bad, compared) = check_layer(be, &mut conv, &x, cfg);
    assert!(compared > 0, "{name}: nothing was compared");
    assert!(
        bad.is_empty(),
        "{name}: {} of {compared} gradient coordinates disagree with finite differences:\n{bad:#?}",
        bad.len()
    );
}

/// One tensor's path-integral check ([`check_path_integrals`]).
#[derive(Clone, Debug)]
pub struct PathCheck {
    /// Parameter name, or `input`.
    pub tensor: String,
    /// `L(θ + h·d) − L(θ − h·d)`.
    pub difference: f64,
    /// `∫_{−h}^{h} ∇L(θ + t·d)·d dt` by the midpoint rule on the analytic gradients.
    pub integral: f64,
    /// `2h·‖∇L‖` of the tensor at `θ`: the largest `|difference|` a unit direction can give,
    /// the scale errors are measured against.
    pub scale: f64,
}

impl PathCheck {
    /// `|integral − difference| / scale`.
    pub fn error(&self) -> f64 {
        (self.integral - self.difference).abs() / self.scale.max(1e-30)
    }
}

/// A gradient check for whole piecewise-smooth networks (ReLU, max-pool): for the input and each
/// trainable tensor, a random unit direction `d` in it, and the exact identity
/// `L(θ + h·d) − L(θ − h·d) = ∫_{−h}^{h} ∇L(θ + t·d)·d dt`, the integral taken by the midpoint
/// rule over `points` analytic gradients (`L = Σ y ⊙ r` as in [`check_layer`], forward in `mode`).
///
/// A central difference of one coordinate cannot check such a network: with thousands of units
/// near a kink, any step f32 resolves moves some across, and single derivatives carry several %
/// of noise that depends on the input. Here a kink inside the path costs only its jump times
/// `h/points`, while a wrong gradient is wrong at every point of the path.
pub fn check_path_integrals<B: Backend>(
    be: &B,
    layer: &mut dyn Layer<B>,
    x: &Tensor<B>,
    mode: Mode,
    (h, points): (f32, usize),
    seed: u64,
) -> Vec<PathCheck> {
    assert!(mode.record, "a gradient check needs a forward that records for backward");
    let mut rng = Rng::new(seed);
    let y = layer.forward(be, x, mode);
    let r_host: Vec<f32> = (0..y.numel()).map(|_| rng.normal()).collect();
    let r = Tensor::from_vec(be, y.shape(), &r_host);
    let _ = layer.backward(be, &y.zeros_like(be));
    // f(t) and f'(t) along `d` in the parameter visited at `position` (`None`: the input)
    let value_at = |layer: &mut dyn Layer<B>, x: &Tensor<B>| -> f64 {
        let y = layer.forward(be, x, mode);
        let _ = layer.backward(be, &y.zeros_like(be));
        y.to_vec(be).iter().zip(&r_host).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum()
    };
    let grad_at = |layer: &mut dyn Layer<B>, x: &Tensor<B>, position: Option<usize>| -> Vec<f32> {
        crate::optim::zero_grads(be, layer);
        layer.forward(be, x, mode);
        let dx = layer.backward(be, &r);
        let Some(position) = position else { return dx.to_vec(be) };
        let mut g = Vec::new();
        with_param(layer, position, &mut |p| g = p.grad.to_vec(be));
        g
    };
    let mut targets = vec![(None, "input".to_string())];
    let mut position = 0;
    layer.visit_params(&mut |p| {
        if p.trainable {
            targets.push((Some(position), p.name.clone()));
        }
        position += 1;
    });
    let x_host = x.to_vec(be);
    let mut out = Vec::new();
    for (target, name) in targets {
        let base: Vec<f32> = match target {
            None => x_host.clone(),
            Some(position) => {
                let mut v = Vec::new();
                with_param(layer, position, &mut |p| v = p.value.to_vec(be));
                v
            }
        };
        let d = rng.normal_vec(base.len(), 1.0);
        let norm = d.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        let d: Vec<f32> = d.iter().map(|v| (f64::from(*v) / norm) as f32).collect();
        // move the tensor to θ + t·d; returns the input to use
        let at = |layer: &mut dyn Layer<B>, t: f64| -> Tensor<B> {
            let moved: Vec<f32> =
                base.iter().zip(&d).map(|(b, d)| (f64::from(*b) + t * f64::from(*d)) as f32).collect();
            let Some(position) = target else { return Tensor::from_vec(be, x.shape(), &moved) };
            with_param(layer, position, &mut |p| p.value = Tensor::from_vec(be, p.value.shape(), &moved));
            x.clone()
        };
        let dot = |g: &[f32]| g.iter().zip(&d).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>();
        let h = f64::from(h);
        let xi = at(layer, 0.0);
        let g0 = grad_at(layer, &xi, target);
        let scale = 2.0 * h * g0.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>().sqrt();
        let xp = at(layer, h);
        let plus = value_at(layer, &xp);
        let xm = at(layer, -h);
        let minus = value_at(layer, &xm);
        let step = 2.0 * h / points as f64;
        let mut integral = 0.0;
        for k in 0..points {
            let xt = at(layer, -h + (k as f64 + 0.5) * step);
            integral += step * dot(&grad_at(layer, &xt, target));
        }
        at(layer, 0.0);
        out.push(PathCheck { tensor: name, difference: plus - minus, integral, scale });
    }
    crate::optim::zero_grads(be, layer);
    out
}
