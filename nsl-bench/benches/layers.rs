//! Criterion benches of every similarity layer, forward and forward+backward, at CNN-9 shapes
//! (the first and the last 3×3 layer, batch 32): each `SimilarityChoice` a network can put in
//! its NSL slots, SphereConv (cosine and x-normalised), the global diagonal mask, and
//! self-attention as SphereNet places it (a 1×1 layer after the stage's 2×2 pool).
//!
//! `cargo bench -p nsl-bench --bench layers` (all), or e.g. `-- "dynamic-dns forward"`.

use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use nsl_core::nn::{Layer, Mode, NslConv, Padding};
use nsl_core::similarity::{GlobalDiagonal, SelfAttention, Similarity, Sphere};
use nsl_core::{Rng, Tensor};
use nsl_cpu::Cpu;
use nsl_models::nets::{PredictorKind, SimilarityChoice, SimilarityOptions, Slots};

const BATCH: usize = 32;

/// Benches `layer` on `x`: inference forward, and training forward then backward.
fn bench_layer(
    group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    be: &Cpu,
    label: &str,
    layer: &mut NslConv<Cpu>,
    x: &Tensor<Cpu>,
) {
    group.bench_function(format!("{label} forward"), |b| b.iter(|| layer.forward(be, x, Mode::EVAL)));
    let dy = layer.forward(be, x, Mode::EVAL);
    group.bench_function(format!("{label} forward+backward"), |b| {
        b.iter(|| {
            layer.forward(be, x, Mode::TRAIN);
            layer.backward(be, &dy)
        })
    });
}

fn layers(c: &mut Criterion) {
    let be = Cpu::new();
    let choices = [
        SimilarityChoice::Conv,
        SimilarityChoice::StaticDns { code_init: true },
        SimilarityChoice::StaticUns,
        SimilarityChoice::CholeskyPsd,
        SimilarityChoice::DynamicDns(PredictorKind::Sphere),
        SimilarityChoice::DynamicDns(PredictorKind::FullSphere),
        SimilarityChoice::DynamicDns(PredictorKind::Cnn),
        SimilarityChoice::DynamicUns,
        SimilarityChoice::JointDns { dynamic: false, code_init: true },
        SimilarityChoice::JointDns { dynamic: true, code_init: false },
        SimilarityChoice::SharedDns,
    ];
    for (name, c_in, c_out, side) in [nsl_bench::cnn9_layers()[0], nsl_bench::cnn9_layers()[4]] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        let extra: [(&str, Box<dyn Similarity<Cpu>>); 3] = [
            ("sphere-cosine", Box::new(Sphere::cosine())),
            ("sphere-x-normalized", Box::new(Sphere::x_normalized())),
            ("global-dns", Box::new(GlobalDiagonal::new(&be, "g", side, side))),
        ];
        let sims = choices
            .iter()
            .map(|&choice| {
                let mut rng = Rng::new(1);
                let slots = Slots::new(&be, &mut rng, choice, SimilarityOptions::code(5e-4), 3);
                (choice.to_string(), slots.build(&be, &mut rng, "l", c_in, 3))
            })
            .chain(extra.into_iter().map(|(label, sim)| (label.to_string(), sim)));
        for (label, sim) in sims {
            let (mut layer, x) = nsl_bench::conv_layer(&be, sim, c_in, c_out, side, BATCH);
            bench_layer(&mut group, &be, &label, &mut layer, &x);
        }
        // Self-attention (SphereNet + attention): `y = x + γ·softmax(G1 G2ᵀ)·V` over the
        // positions of the pooled map, the value projection a 1×1 cosine SphereConv.
        let (pooled, mut rng) = (side / 2, Rng::new(2));
        let att = SelfAttention::new(&be, &mut rng, "att", c_out, true, 0.0, 0.0);
        let mut layer =
            NslConv::new(&be, &mut rng, "att.v", (c_out, c_out), (1, 1, Padding::Same), 1.0, 0.0, Box::new(att));
        let x = Tensor::from_vec(
            &be,
            &[BATCH, pooled, pooled, c_out],
            &rng.normal_vec(BATCH * pooled * pooled * c_out, 1.0),
        );
        bench_layer(&mut group, &be, &format!("self-attention @{pooled}²"), &mut layer, &x);
        group.finish();
    }
}

criterion_group!(benches, layers);
criterion_main!(benches);
