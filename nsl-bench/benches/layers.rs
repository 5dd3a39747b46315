//! Criterion benches of every similarity layer, forward and forward+backward, at CNN-9 shapes.

use criterion::{criterion_group, criterion_main, Criterion};
use nsl_core::nn::{Layer, Mode};
use nsl_core::Rng;
use nsl_cpu::Cpu;
use nsl_models::nets::{PredictorKind, SimilarityChoice};

const BATCH: usize = 32;

fn layers(c: &mut Criterion) {
    let be = Cpu::new();
    let choices = [
        SimilarityChoice::Conv,
        SimilarityChoice::StaticDns { code_init: true },
        SimilarityChoice::StaticUns,
        SimilarityChoice::CholeskyPsd,
        SimilarityChoice::DynamicDns(PredictorKind::Sphere),
        SimilarityChoice::DynamicUns,
        SimilarityChoice::JointDns { dynamic: true },
    ];
    for (name, c_in, c_out, side) in [nsl_bench::cnn9_layers()[0], nsl_bench::cnn9_layers()[4]] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10);
        for choice in choices {
            let sim = choice.build(&be, &mut Rng::new(1), "l", c_in, 3, 64);
            let (mut layer, x) = nsl_bench::conv_layer(&be, sim, c_in, c_out, side, BATCH);
            group.bench_function(format!("{choice} forward"), |b| b.iter(|| layer.forward(&be, &x, Mode::Eval)));
            let dy = layer.forward(&be, &x, Mode::Eval);
            group.bench_function(format!("{choice} forward+backward"), |b| {
                b.iter(|| {
                    layer.forward(&be, &x, Mode::Train);
                    layer.backward(&be, &dy)
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, layers);
criterion_main!(benches);
