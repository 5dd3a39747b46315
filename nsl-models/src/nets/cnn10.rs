//! ImageNet CNN-10 (spec §5.5): 8,897,728 weights plain, 9,607,936 with dynamic DNS (64 hidden).

use nsl_core::nn::{BatchNorm, MaxPool, NslConv, Padding, Relu, Sequential};
use nsl_core::similarity::InnerProduct;
use nsl_core::{Backend, Rng};

use super::{similarity_stream, Network, SimilarityChoice};

/// CNN-10's weight decay: the spec does not state one; DCNets' ImageNet code uses 1e-4 (spec
/// §5.5 \[ASSUMPTION\]).
pub const CNN10_WEIGHT_DECAY: f32 = 1e-4;

/// CNN-10: 7×7/2 conv 64 + BN + ReLU, 3×3/2 max-pool; three stages of 3 × [3×3 NSL conv + BN +
/// ReLU] (64/128/256) each followed by a 2×2 max-pool; FC 512 + ReLU (as a VALID conv over the
/// final map) and FC `classes`. `weight_decay` is the coupled L2 on every filter and BN γ/β
/// ([`CNN10_WEIGHT_DECAY`] = 1e-4 for Table 5).
/// `input` is the `[H, W, C]` of one image, `[224, 224, 3]` on ImageNet (square: `H = W`);
/// smaller sides and `width < 1` (every width scaled, at least 4) give the reduced networks of
/// smoke runs.
pub fn cnn10<B: Backend>(
    be: &B,
    rng: &mut Rng,
    classes: usize,
    similarity: SimilarityChoice,
    input: [usize; 3],
    width: f32,
    weight_decay: f32,
) -> Network<B> {
    let s = |w: usize| ((w as f32 * width).round() as usize).max(4);
    let wd = weight_decay;
    let bn = |name: &str, c: usize| BatchNorm::new(be, name, c, 1e-3, wd);
    let plain = |rng: &mut Rng, name: &str, c: (usize, usize), k: (usize, usize, Padding)| {
        NslConv::new(be, rng, name, c, k, 1.0, wd, InnerProduct::boxed())
    };
    let mut sim_rng = similarity_stream(rng);
    let mut body = Sequential::new("cnn10")
        .push(plain(rng, "stem", (input[2], s(64)), (7, 2, Padding::Same)))
        .push(bn("stem.bn", s(64)).with_relu())
        .push(MaxPool::new(3, 2));
    let mut side = input[0].div_ceil(2).div_ceil(2);
    let mut c_in = s(64);
    for (stage, width) in [s(64), s(128), s(256)].into_iter().enumerate() {
        for i in 0..3 {
            let name = format!("conv{}_{i}", stage + 1);
            let sim = similarity.build(be, &mut sim_rng, &name, c_in, 3, s(64));
            body = body
                .push(NslConv::new(be, rng, &name, (c_in, width), (3, 1, Padding::Same), 1.0, wd, sim))
                .push(bn(&format!("{name}.bn"), width).with_relu());
            c_in = width;
        }
        body = body.push(MaxPool::new(2, 2));
        side = side.div_ceil(2);
    }
    body = body.push(plain(rng, "fc1", (c_in, 512), (side, 1, Padding::Valid))).push(Relu::new()).push(plain(
        rng,
        "fc2",
        (512, classes),
        (1, 1, Padding::Valid),
    ));
    Network { name: format!("cnn10-{similarity}"), body, shared: Vec::new(), classes, input }
}
