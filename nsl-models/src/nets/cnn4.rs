//! CNN-4 for few-shot learning (spec §5.6).

use nsl_core::nn::{BatchNorm, MaxPool, NslConv, Padding, Sequential};
use nsl_core::similarity::InnerProduct;
use nsl_core::{Backend, Rng};

use super::{similarity_stream, Network, SimilarityChoice};

/// CNN-4: 4 × [3×3 NSL conv 32 + BN + ReLU + 2×2 VALID max-pool] (84 → 42 → 21 → 10 → 5), then
/// a linear classifier on the `5×5×32 = 800`-d features (a VALID conv named `classifier`).
/// `input` is the `[H, W, C]` of one image (square), `[84, 84, 3]` on mini-ImageNet; `width`
/// scales the 32 channels (at least 2; 1.0 = the paper's network).
pub fn cnn4<B: Backend>(
    be: &B,
    rng: &mut Rng,
    classes: usize,
    similarity: SimilarityChoice,
    input: [usize; 3],
    width: f32,
    weight_decay: f32,
) -> Network<B> {
    let channels = ((32.0 * width).round() as usize).max(2);
    let mut sim_rng = similarity_stream(rng);
    let mut body = Sequential::new("cnn4");
    let mut c_in = input[2];
    let mut side = input[0];
    for i in 0..4 {
        let name = format!("conv{i}");
        let sim = similarity.build(be, &mut sim_rng, &name, c_in, 3, 64);
        body = body
            .push(NslConv::new(be, rng, &name, (c_in, channels), (3, 1, Padding::Same), 1.0, weight_decay, sim))
            .push(BatchNorm::new(be, &format!("{name}.bn"), channels, 1e-3, weight_decay).with_relu())
            .push(MaxPool::valid(2, 2));
        c_in = channels;
        side /= 2;
    }
    body = body.push(NslConv::new(
        be,
        rng,
        "classifier",
        (channels, classes),
        (side, 1, Padding::Valid),
        1.0,
        weight_decay,
        InnerProduct::boxed(),
    ));
    Network { name: format!("cnn4-{similarity}"), body, shared: Vec::new(), classes, input }
}
