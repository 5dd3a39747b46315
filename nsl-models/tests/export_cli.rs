//! `nsl export` and `nsl predict` end to end on a briefly trained run: Fashion-MNIST test images
//! written as PNG files get the probabilities nsl's own softmax gives them, the exported ONNX
//! model computes the same logits from the PNG's raw pixels in tract, the PyTorch export holds
//! the folded kernels in `(O, C, kh, kw)`, and bad inputs are errors naming the file.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nsl_core::nn::{Layer, Mode};
use nsl_core::Tensor;
use nsl_cpu::Cpu;
use nsl_models::data::fashion_mnist;
use nsl_models::export::load_for_inference;
use nsl_models::predict::softmax;
use nsl_models::train::{normalize_of, RunConfig};
use tract_onnx::prelude::*;

fn nsl(args: &[&str], paths: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nsl")).args(["--threads", "2"]).args(args).args(paths).output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A short run of `similarity` on the embedded Fashion-MNIST (trained BN statistics).
fn train(dir: &Path, similarity: &str) -> PathBuf {
    let cfg = RunConfig {
        similarity: similarity.parse().unwrap(),
        width: 0.125,
        iterations: 6,
        batch_size: 32,
        lr: 0.01,
        warmup: 0,
        milestones: vec![],
        eval_every: 6,
        checkpoint_every: 6,
        ..RunConfig::default()
    };
    let config = dir.join(format!("{similarity}.toml"));
    std::fs::write(&config, cfg.to_toml()).unwrap();
    let run = dir.join(similarity);
    ok(&nsl(&["train", "--quiet", "--config"], &[&config, Path::new("--out"), &run]));
    run
}

/// Test images `indices` of the embedded Fashion-MNIST as 28×28 grayscale PNGs, with their
/// padded 32×32 bytes as the data set holds them.
fn write_pngs(dir: &Path, indices: &[usize]) -> Vec<(PathBuf, Vec<u8>)> {
    let (_, test) = fashion_mnist::embedded();
    indices
        .iter()
        .map(|&i| {
            let padded = test.image(i).to_vec();
            let raw: Vec<u8> = (2..30).flat_map(|y| padded[y * 32 + 2..y * 32 + 30].to_vec()).collect();
            let path = dir.join(format!("test{i}.png"));
            image::GrayImage::from_raw(28, 28, raw).unwrap().save(&path).unwrap();
            (path, padded)
        })
        .collect()
}

#[test]
fn predict_gives_nsls_softmax_and_the_onnx_export_the_same_logits() {
    let dir = common::TestDir::new("export_cli");
    let run = train(&dir, "dynamic-dns");
    let images = write_pngs(&dir, &[0, 1, 2, 3, 4, 5, 6]);
    let paths: Vec<&Path> = images.iter().map(|(p, _)| p.as_path()).collect();

    // nsl's own inference on the data set's bytes
    let be = Cpu::with_threads(2);
    let (cfg, mut net) = load_for_inference(&be, &run).unwrap();
    let normalize = normalize_of(cfg.normalize).unwrap();
    let mut x = vec![0f32; images.len() * 32 * 32];
    for ((_, padded), out) in images.iter().zip(x.chunks_exact_mut(32 * 32)) {
        normalize.apply(padded, 1, out);
    }
    let expected = net.forward(&be, &Tensor::from_vec(&be, &[images.len(), 32, 32, 1], &x), Mode::EVAL).to_vec(&be);

    // nsl predict --format json
    let mut args = vec![run.as_path()];
    args.extend(&paths);
    let json = ok(&nsl(&["predict", "--format", "json"], &args));
    let predictions: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(predictions.len(), images.len());
    for (p, logits) in predictions.iter().zip(expected.chunks_exact(10)) {
        let probabilities: Vec<f32> = serde_json::from_value(p["probabilities"].clone()).unwrap();
        let want = softmax(logits);
        for (a, b) in probabilities.iter().zip(&want) {
            assert!((a - b).abs() <= 1e-5, "{p}: predict says {a}, nsl's softmax {b}");
        }
        let top = p["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        let best = (0..10).max_by(|&a, &b| want[a].total_cmp(&want[b])).unwrap();
        assert_eq!(top[0]["name"], fashion_mnist::CLASS_NAMES[best]);
        assert!(p["latency_ms"].as_f64().unwrap() > 0.0);
    }
    let text = ok(&nsl(&["predict"], &[run.as_path(), paths[0]]));
    assert!(text.contains("test0.png") && text.contains("ms") && text.contains("5."), "{text}");

    // nsl export: tract on the PNGs' raw 28×28 pixels gives nsl's logits
    let onnx = dir.join("model.onnx");
    let summary = ok(&nsl(&["export", "--format", "onnx", "--out"], &[&onnx, &run]));
    assert!(summary.contains("[N, 1, 28, 28]"), "{summary}");
    let model = tract_onnx::onnx().model_for_path(&onnx).unwrap().into_optimized().unwrap().into_runnable().unwrap();
    let pixels: Vec<f32> =
        images.iter().flat_map(|(path, _)| image::open(path).unwrap().into_luma8().into_raw()).map(f32::from).collect();
    let input = tract_ndarray::Array4::from_shape_vec((images.len(), 1, 28, 28), pixels).unwrap().into_tensor();
    let got: Vec<f32> =
        model.run(tvec!(input.into())).unwrap()[0].to_plain_array_view::<f32>().unwrap().iter().copied().collect();
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    for (a, b) in got.iter().zip(&expected) {
        assert!((a - b).abs() <= 1e-4 * scale, "tract {a}, nsl {b}");
    }
}

#[test]
fn bad_images_and_checkpoints_are_errors_naming_the_file() {
    let dir = common::TestDir::new("export_cli_errors");
    let run = train(&dir, "conv");
    let missing = dir.join("no-such-image.png");
    let text = dir.join("notes.png");
    std::fs::write(&text, "not an image").unwrap();
    for (bad, why) in [(&missing, "no-such-image.png"), (&text, "not a PNG or JPEG")] {
        let out = nsl(&["predict"], &[run.as_path(), bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(&*bad.to_string_lossy()) && err.contains(why), "{err}");
        assert!(!err.contains("internal error"), "{err}");
    }
    let out = nsl(&["export", "--out"], &[&dir.join("m.onnx"), &dir.join("nothing")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("nothing") && !err.contains("internal error"), "{err}");
}

#[test]
fn torch_export_holds_folded_kernels_in_pytorch_layout_and_refuses_dynamic_networks() {
    let dir = common::TestDir::new("export_cli_torch");
    let run = train(&dir, "static-dns");
    let out = dir.join("model.safetensors");
    ok(&nsl(&["export", "--format", "torch-safetensors", "--out"], &[&out, &run]));
    let bytes = std::fs::read(&out).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = header.metadata().as_ref().unwrap();
    let layers: Vec<serde_json::Value> = serde_json::from_str(&meta["layers"]).unwrap();
    assert_eq!(layers[0]["type"], "Conv2d");
    assert_eq!(layers.last().unwrap()["type"], "Flatten");

    // every Conv2d kernel is the network's folded kernel permuted to (O, C, kh, kw)
    let be = Cpu::with_threads(2);
    let (_, mut net) = load_for_inference(&be, &run).unwrap();
    net.fold(&be).unwrap();
    let mut kernels = Vec::new();
    net.visit_params(&mut |p| {
        if p.role == nsl_core::Role::Weight {
            kernels.push(p.value.to_vec(&be));
        }
    });
    let convs: Vec<usize> = (0..layers.len()).filter(|&i| layers[i]["type"] == "Conv2d").collect();
    assert_eq!(convs.len(), kernels.len());
    for (&i, hwio) in convs.iter().zip(&kernels) {
        let t = file.tensor(&format!("features.{i}.weight")).unwrap();
        let [o, c, k, k2] = t.shape().try_into().unwrap();
        assert_eq!(k, k2);
        let oihw: Vec<f32> = t.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
        for (oc, ch, ky, kx) in
            (0..o).flat_map(|a| (0..c).flat_map(move |b| (0..k * k).map(move |t| (a, b, t / k, t % k))))
        {
            assert_eq!(oihw[((oc * c + ch) * k + ky) * k + kx], hwio[((ky * k + kx) * c + ch) * o + oc]);
        }
    }
    for part in ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"] {
        assert!(file.tensor(&format!("features.1.{part}")).is_ok(), "features.1.{part}");
    }

    let dynamic = train(&dir, "dynamic-dns");
    let refused = nsl(&["export", "--format", "torch-safetensors", "--out"], &[&dir.join("d.safetensors"), &dynamic]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success() && err.contains("dynamic") && err.contains("--format onnx"), "{err}");
}
