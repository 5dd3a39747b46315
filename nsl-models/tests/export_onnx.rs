//! ONNX export, checked by a real runtime: every network × similarity family of `nsl train`, at
//! reduced width with random batch-norm statistics, similarity parameters and attention scales
//! (so no layer is an identity), is exported, loaded by tract, and run on the same images as
//! nsl's own inference at batch sizes 1 and 7 on one model (the batch dimension is symbolic).

use nsl_core::nn::{Layer, Mode};
use nsl_core::{Rng, Role, Tensor};
use nsl_cpu::Cpu;
use nsl_models::export::{data_geometry, input_spec, onnx_model};
use nsl_models::train::{build_network, normalize_of, RunConfig};
use tract_onnx::prelude::*;

/// Largest |tract − nsl| allowed, relative to the largest |logit| (f32 rounding through ~12 layers).
const TOLERANCE: f32 = 1e-4;

/// Give every batch norm random running statistics and affine parameters, every static
/// similarity random parameters, every kernel-shape mask a random pattern, every attention
/// block a non-zero scale, and the predictors and attention projections unit-gain kernels
/// (their init is ×0.001 and ×0.1: `M` would stay within 1e-3 of `I` and attention uniform).
fn randomise(be: &Cpu, net: &mut nsl_models::nets::Network<Cpu>, rng: &mut Rng) {
    let mut draw = |lo: f32, hi: f32, n: usize| (0..n).map(|_| lo + (hi - lo) * rng.uniform()).collect::<Vec<f32>>();
    net.visit_params(&mut |p| {
        let n = p.value.numel();
        let values = match p.role {
            Role::Weight if [".pred.", "shared_pred.", ".g1.", ".g2."].iter().any(|part| p.name.contains(part)) => {
                let gain = 1.0 / (p.value.shape()[0] as f32).sqrt();
                draw(-gain, gain, n)
            }
            Role::RunningMean => draw(-0.3, 0.3, n),
            Role::RunningVar => draw(0.5, 2.0, n),
            Role::BnScale { .. } => draw(0.5, 1.5, n),
            Role::BnShift => draw(-0.2, 0.2, n),
            Role::Similarity => draw(0.2, 1.2, n),
            Role::ShapeMask => draw(0.0, 1.0, n), // some taps below α = 0.5: masked
            Role::AttentionScale => draw(0.5, 1.0, n),
            _ => return,
        };
        p.value = Tensor::from_vec(be, p.value.shape(), &values);
    });
}

/// Export run `cfg`'s freshly built (randomised) network, run it in tract and in nsl on the same
/// random raw images at batch 1 and 7; returns the largest relative difference.
fn check(cfg: &RunConfig) {
    let be = Cpu::with_threads(2);
    let geometry = data_geometry(cfg).unwrap();
    let mut rng = Rng::new(7);
    let mut net = build_network(&be, cfg, geometry.classes, geometry.input, &mut Rng::new(cfg.seed)).unwrap();
    randomise(&be, &mut net, &mut rng);
    let bytes = onnx_model(&be, &mut net, cfg).unwrap().encode();
    let model = tract_onnx::onnx()
        .model_for_read(&mut &bytes[..])
        .unwrap_or_else(|e| panic!("{}: tract cannot read the export: {e:?}", net.name))
        .into_optimized()
        .unwrap_or_else(|e| panic!("{}: tract cannot optimise the export: {e:?}", net.name))
        .into_runnable()
        .unwrap();
    let spec = input_spec(cfg).unwrap();
    let normalize = normalize_of(cfg.normalize).unwrap();
    let [c, raw_h, raw_w] = spec.chw;
    let [h, w, _] = geometry.input;
    for batch in [1, 7] {
        let raw: Vec<u8> = (0..batch * c * raw_h * raw_w).map(|_| (rng.uniform() * 256.0) as u8).collect();
        // nsl: pad and normalise each image as the data loader does, NHWC
        let mut x = vec![0f32; batch * h * w * c];
        for (b, image) in x.chunks_exact_mut(h * w * c).enumerate() {
            let mut padded = vec![0u8; h * w * c];
            for ((ch, y), xx) in
                (0..c).flat_map(|ch| (0..raw_h).map(move |y| (ch, y))).flat_map(|cy| (0..raw_w).map(move |x| (cy, x)))
            {
                padded[((y + spec.pad) * w + xx + spec.pad) * c + ch] = raw[((b * c + ch) * raw_h + y) * raw_w + xx];
            }
            normalize.apply(&padded, c, image);
        }
        let expected = net.forward(&be, &Tensor::from_vec(&be, &[batch, h, w, c], &x), Mode::EVAL).to_vec(&be);
        assert!(expected.iter().all(|v| v.is_finite()), "{}: nsl's logits are not finite", net.name);
        // tract: the raw NCHW pixels
        let pixels: Vec<f32> = raw.iter().map(|&v| f32::from(v)).collect();
        let input = tract_ndarray::Array4::from_shape_vec((batch, c, raw_h, raw_w), pixels).unwrap().into_tensor();
        let out = model.run(tvec!(input.into())).unwrap_or_else(|e| panic!("{} batch {batch}: {e:?}", net.name));
        let got: Vec<f32> = out[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect();
        assert_eq!(got.len(), expected.len(), "{} batch {batch}: output size", net.name);
        let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
        let worst = got.iter().zip(&expected).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        eprintln!("{} ({}) batch {batch}: relative difference {worst:.1e}", net.name, cfg.similarity);
        assert!(
            worst <= TOLERANCE && scale > 0.0,
            "{} ({}) batch {batch}: tract and nsl differ by {worst:e} of the largest logit {scale}",
            net.name,
            cfg.similarity
        );
    }
}

fn run(network: &str, similarity: &str, dataset: &str) -> RunConfig {
    RunConfig {
        network: network.parse().unwrap(),
        similarity: similarity.parse().unwrap(),
        dataset: dataset.parse().unwrap(),
        width: 0.125,
        ..RunConfig::default()
    }
}

#[test]
fn cnn9_with_every_similarity_matches_tract() {
    for similarity in nsl_models::nets::SimilarityChoice::names() {
        check(&run("cnn9", similarity, "fashion-mnist-embedded"));
    }
}

#[test]
fn cnn9_variants_match_tract() {
    // the code's raw 0..255 inputs, pooled shared statistics, UNS without I, a hidden FC layer
    check(&RunConfig { normalize: "raw".parse().unwrap(), ..run("cnn9", "dynamic-dns", "synthetic") });
    check(&RunConfig {
        shared_bn_stats: nsl_models::nets::SharedBnStats::Pooled,
        ..run("cnn9", "shared-dns", "fashion-mnist-embedded")
    });
    check(&RunConfig { uns_identity: false, ..run("cnn9", "dynamic-uns", "fashion-mnist-embedded") });
    check(&RunConfig { hidden_fc: 16, ..run("cnn9", "static-uns", "fashion-mnist-embedded") });
    check(&run("cnn9pp", "conv", "fashion-mnist-embedded"));
}

#[test]
fn cnn10_and_cnn4_match_tract() {
    // CNN-10's 7×7/2 stem and 3×3/2 pool have TF's asymmetric SAME pads on 32×32 inputs
    for similarity in ["conv", "static-dns", "dynamic-dns", "dynamic-uns"] {
        check(&run("cnn10", similarity, "synthetic"));
        check(&run("cnn4", similarity, "synthetic"));
    }
    check(&run("cnn10pp", "conv", "synthetic"));
}

#[test]
fn spherenet9_and_self_attention_match_tract() {
    for network in ["spherenet9", "spherenet9-attention", "cnn9-wide", "cnn9-wide-attention"] {
        check(&run(network, "conv", "fashion-mnist-embedded"));
    }
}

#[test]
fn the_model_carries_its_metadata_and_a_symbolic_batch() {
    let be = Cpu::with_threads(2);
    let cfg = run("cnn9", "dynamic-dns", "fashion-mnist-embedded");
    let mut net = build_network(&be, &cfg, 10, [32, 32, 1], &mut Rng::new(0)).unwrap();
    let bytes = onnx_model(&be, &mut net, &cfg).unwrap().encode();
    let proto = tract_onnx::onnx().proto_model_for_read(&mut &bytes[..]).unwrap();
    let meta: std::collections::HashMap<_, _> =
        proto.metadata_props.iter().map(|e| (e.key.as_str(), e.value.as_str())).collect();
    assert_eq!(meta["network"], "cnn9");
    assert_eq!(meta["similarity"], "dynamic-dns");
    assert_eq!(meta["dataset"], "fashion-mnist-embedded");
    assert!(meta["class_names"].contains("Ankle boot"), "{}", meta["class_names"]);
    assert_eq!(meta["nsl_version"], env!("CARGO_PKG_VERSION"));
    assert!(!meta["nsl_git_commit"].is_empty());
    assert_eq!(proto.opset_import[0].version, 13);
    let graph = proto.graph.unwrap();
    let input = format!("{:?}", graph.input[0]);
    assert!(input.contains("\"N\"") && input.contains("28"), "input is not [N, 1, 28, 28]: {input}");
    // standard operators only
    let allowed = [
        "Conv",
        "Mul",
        "Add",
        "Sub",
        "Div",
        "Sqrt",
        "Reshape",
        "Transpose",
        "Softmax",
        "MatMul",
        "BatchNormalization",
        "Relu",
        "MaxPool",
        "Pad",
        "Flatten",
        "Unsqueeze",
    ];
    for node in &graph.node {
        assert!(allowed.contains(&node.op_type.as_str()), "non-standard op {}", node.op_type);
    }
}
