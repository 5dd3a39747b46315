//! The shared similarity predictor of Table 3 (paper §3.3.2; sizes are spec §5.3's \[ASSUMPTION\]).
//!
//! Each layer has its own adaptation network `3×3 x-normalised conv C_in→32 + BN + ReLU`; one
//! trunk `3×3 conv 32→64 + BN + ReLU → 3×3 conv 64→k² + BN` is shared by every layer. With the
//! CIFAR backbone this is about 190k predictor parameters, half of the disjoint 380k.
//!
//! The trunk's batch norms share γ and β, but their running statistics are a choice
//! ([`SharedBnStats`]): in training every layer normalises the trunk with its own batch
//! statistics, so by default each layer also keeps its own running statistics of them and
//! evaluation normalises each layer as training did ([`SharedBnStats::PerLayer`]). The pooled
//! alternative, one set updated by all layers, is what a TensorFlow graph reusing one BN layer
//! would do (the shared predictor's code was never released); it normalises every layer with
//! an average over layers at test time, and since the trunk's output is `M − 1`, that shifts
//! every layer's `M`.

use std::sync::{Arc, Mutex};

use nsl_core::nn::{BatchNorm, InferenceOp, Layer, Mode, NslConv, Padding, Sequential};
use nsl_core::similarity::{InnerProduct, Sphere};
use nsl_core::{Backend, Param, Rng, Role, Tensor};
use serde::{Deserialize, Serialize};

/// Width of the adapted maps the trunk reads.
pub const ADAPTED: usize = 32;

/// Whose running statistics the shared trunk's batch norms keep.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum SharedBnStats {
    /// One set per layer that uses the trunk (the default): evaluation normalises each layer
    /// with the statistics of its own inputs, as training did.
    #[default]
    PerLayer,
    /// One set for the trunk, updated by every layer in turn.
    Pooled,
}

/// A predictor trunk shared by several layers. Its layers keep a cache per call, so the calls
/// of one forward are undone in reverse order by the backward.
pub type SharedTrunk<B> = Arc<Mutex<Sequential<B>>>;

/// Build the shared trunk `32 → 64 → taps`; `weight_decay` on its filters and BN γ/β.
pub fn shared_trunk<B: Backend>(be: &B, rng: &mut Rng, taps: usize, weight_decay: f32) -> SharedTrunk<B> {
    let conv = |rng: &mut Rng, name: &str, c: (usize, usize), scale: f32| {
        NslConv::new(be, rng, name, c, (3, 1, Padding::Same), scale, weight_decay, InnerProduct::boxed())
    };
    let trunk = Sequential::new("shared_pred")
        .push(conv(rng, "shared_pred.m1", (ADAPTED, 64), 0.1))
        .push(BatchNorm::new(be, "shared_pred.bn1", 64, 1e-3, weight_decay).with_relu())
        .push(conv(rng, "shared_pred.m2", (64, taps), 0.001))
        .push(BatchNorm::new(be, "shared_pred.bn2", taps, 1e-3, weight_decay).predictor_output());
    Arc::new(Mutex::new(trunk))
}

/// One layer's view of the shared predictor: its own adaptation network, then the trunk (with
/// this layer's own running statistics swapped into the trunk's batch norms for each call, under
/// [`SharedBnStats::PerLayer`]). Visits its adapter's parameters and its own statistics (the
/// network visits the trunk once).
pub struct SharedPredictor<B: Backend> {
    adapter: Sequential<B>,
    trunk: SharedTrunk<B>,
    /// Per trunk batch norm, this layer's `(mean, var, count)` buffers (empty when pooled).
    stats: Vec<[Param<B>; 3]>,
}

impl<B: Backend> SharedPredictor<B> {
    /// The predictor of layer `name` with `c_in` input channels over `trunk`; `weight_decay` on
    /// the adapter's filter and BN γ/β.
    pub fn new(
        be: &B,
        rng: &mut Rng,
        name: &str,
        c_in: usize,
        trunk: SharedTrunk<B>,
        (weight_decay, stats): (f32, SharedBnStats),
    ) -> Self {
        let adapter = Sequential::new(format!("{name}.adapt"))
            .push(NslConv::new(
                be,
                rng,
                &format!("{name}.adapt.conv"),
                (c_in, ADAPTED),
                (3, 1, Padding::Same),
                0.1,
                weight_decay,
                Box::new(Sphere::x_normalized()),
            ))
            .push(BatchNorm::new(be, &format!("{name}.adapt.bn"), ADAPTED, 1e-3, weight_decay).with_relu());
        let mut own = Vec::new();
        if stats == SharedBnStats::PerLayer {
            let mut i = 0;
            lock(&trunk).visit_batch_norms(&mut |bn| {
                i += 1;
                let [m, v, n] = bn.running_statistics().map(|t| t.zeros_like(be));
                let buffer = |part: &str, role, t| Param::buffer(be, format!("{name}.trunk_bn{i}.{part}"), role, t);
                own.push([
                    buffer("running_mean", Role::RunningMean, m),
                    buffer("running_var", Role::RunningVar, v),
                    buffer("ema_count", Role::EmaCount, n),
                ]);
            });
        }
        SharedPredictor { adapter, trunk, stats: own }
    }

    /// Run `f` on the trunk with this layer's statistics in its batch norms (as they are when
    /// pooled).
    fn with_own_stats<T>(&mut self, f: impl FnOnce(&mut Sequential<B>) -> T) -> T {
        let mut trunk = lock(&self.trunk);
        swap_stats(&mut trunk, &mut self.stats);
        let out = f(&mut trunk);
        swap_stats(&mut trunk, &mut self.stats);
        out
    }
}

/// Exchange the trunk batch norms' running statistics with `stats` (one triple per batch norm;
/// nothing when `stats` is empty).
fn swap_stats<B: Backend>(trunk: &mut Sequential<B>, stats: &mut [[Param<B>; 3]]) {
    if stats.is_empty() {
        return;
    }
    let mut own = stats.iter_mut();
    trunk.visit_batch_norms(&mut |bn| {
        let slot = own.next().expect("one statistics triple per trunk batch norm");
        let mine = [0, 1, 2].map(|k| slot[k].value.clone());
        let theirs = bn.replace_running_statistics(mine);
        for (p, t) in slot.iter_mut().zip(theirs) {
            p.value = t;
        }
    });
}

fn lock<B: Backend>(trunk: &SharedTrunk<B>) -> std::sync::MutexGuard<'_, Sequential<B>> {
    trunk.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl<B: Backend> Layer<B> for SharedPredictor<B> {
    fn name(&self) -> String {
        format!("{} + shared trunk", self.adapter.name)
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let h = self.adapter.forward(be, x, mode);
        self.with_own_stats(|trunk| trunk.forward(be, &h, mode))
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        // the trunk's caches hold the statistics each call used
        let dh = lock(&self.trunk).backward(be, dy);
        self.adapter.backward(be, &dh)
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        self.adapter.visit_params(f);
        self.stats.iter_mut().flatten().for_each(f);
    }
    /// The adapter's batch norms, then (per layer) the trunk's with this layer's statistics in
    /// them: debiasing or replacing statistics reaches this layer's own.
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        self.adapter.visit_batch_norms(f);
        if !self.stats.is_empty() {
            self.with_own_stats(|trunk| trunk.visit_batch_norms(f));
        }
    }
    /// The adapter, then the trunk with this layer's running statistics.
    fn inference_graph(&mut self, be: &B) -> Result<Vec<InferenceOp>, String> {
        let mut ops = self.adapter.inference_graph(be)?;
        ops.extend(self.with_own_stats(|trunk| trunk.inference_graph(be))?);
        Ok(ops)
    }
}
