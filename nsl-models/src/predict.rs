//! Classifying image files with a trained network (`nsl predict`): each PNG or JPEG is
//! converted as the run's data set stores its images (grayscale 28×28 for Fashion-MNIST, RGB
//! 32×32 for CIFAR, …), padded and normalised as training did, and run through the network.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use nsl_core::nn::{Layer, Mode};
use nsl_core::{Backend, Tensor};
use serde::Serialize;

use crate::data::decode::resize_area;
use crate::export::DataGeometry;
use crate::nets::Network;
use crate::train::{normalize_of, RunConfig};

/// Why an image could not be classified.
#[derive(Debug)]
pub enum PredictError {
    Unreadable { path: PathBuf, source: std::io::Error },
    NotAnImage { path: PathBuf, problem: String },
}

impl fmt::Display for PredictError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PredictError::Unreadable { path, source } => {
                write!(f, "image {}: {}", path.display(), crate::files::io_hint(source))
            }
            PredictError::NotAnImage { path, problem } => write!(
                f,
                "image {} is not a PNG or JPEG image nsl can decode ({problem}); give a .png or .jpg file",
                path.display()
            ),
        }
    }
}

impl std::error::Error for PredictError {}

/// How `nsl predict` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictFormat {
    /// A small table per image.
    Text,
    /// One JSON array of [`Prediction`]s.
    Json,
}

/// One class and its probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ranked {
    pub class: usize,
    pub name: String,
    pub probability: f32,
}

/// The prediction for one image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    pub image: PathBuf,
    /// The `k` most probable classes, most probable first.
    pub top: Vec<Ranked>,
    /// Softmax of the logits, by class.
    pub probabilities: Vec<f32>,
    /// Time of the network's forward pass on this image alone, in milliseconds.
    pub latency_ms: f64,
}

/// The image at `path` as the run's data set stores its images: `[C, H, W]` = `geometry.raw_chw`
/// (grayscale by ITU-R 601 luma, `(299R + 587G + 114B)/1000`, when `C = 1`; resized by area
/// averaging), then zero-padded to the network's input, HWC bytes.
///
/// # Errors
/// A file that cannot be read or decoded, naming it.
pub fn load_image(path: &Path, geometry: &DataGeometry) -> Result<Vec<u8>, PredictError> {
    let bytes = std::fs::read(path).map_err(|source| PredictError::Unreadable { path: path.into(), source })?;
    let rgb = image::load_from_memory(&bytes)
        .map_err(|e| PredictError::NotAnImage { path: path.into(), problem: e.to_string() })?
        .into_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let [c, raw_h, raw_w] = geometry.raw_chw;
    let pixels = if c == 1 {
        let luma =
            |p: &[u8]| ((299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]) + 500) / 1000) as u8;
        rgb.as_raw().chunks_exact(3).map(luma).collect()
    } else {
        rgb.into_raw()
    };
    let resized = resize_area(&pixels, [h, w, c], raw_h, raw_w);
    let [in_h, in_w, _] = geometry.input;
    let p = geometry.pad;
    let mut padded = vec![0u8; in_h * in_w * c];
    for y in 0..raw_h {
        let row = &resized[y * raw_w * c..(y + 1) * raw_w * c];
        padded[((y + p) * in_w + p) * c..][..raw_w * c].copy_from_slice(row);
    }
    Ok(padded)
}

/// `softmax(logits)`, computed stably in `f64`.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = logits.iter().map(|&v| f64::from(v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| (v / sum) as f32).collect()
}

/// Classify each of `images` with `net` (a run `cfg`'s network, e.g. from
/// [`crate::export::load_for_inference`]), one image per forward pass, keeping the `k` most
/// probable classes. Each image's latency is that of its forward pass, after one untimed pass
/// that warms the backend's buffers.
///
/// # Errors
/// The first image that cannot be read or decoded.
pub fn predict<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    cfg: &RunConfig,
    geometry: &DataGeometry,
    images: &[PathBuf],
    k: usize,
) -> Result<Vec<Prediction>, String> {
    let normalize = normalize_of(cfg.normalize).map_err(|e| e.to_string())?;
    let [h, w, c] = geometry.input;
    let mut out = Vec::new();
    for path in images {
        let pixels = load_image(path, geometry).map_err(|e| e.to_string())?;
        let mut x = vec![0f32; pixels.len()];
        normalize.apply(&pixels, c, &mut x);
        let x = Tensor::from_vec(be, &[1, h, w, c], &x);
        if out.is_empty() {
            net.forward(be, &x, Mode::EVAL);
        }
        let start = Instant::now();
        let logits = net.forward(be, &x, Mode::EVAL).to_vec(be);
        let latency_ms = start.elapsed().as_secs_f64() * 1e3;
        let probabilities = softmax(&logits);
        let mut order: Vec<usize> = (0..probabilities.len()).collect();
        order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]).then(a.cmp(&b)));
        let name = |class: usize| {
            geometry.class_names.as_ref().map_or_else(|| format!("class {class}"), |names| names[class].clone())
        };
        let top = order
            .iter()
            .take(k)
            .map(|&class| Ranked { class, name: name(class), probability: probabilities[class] })
            .collect();
        out.push(Prediction { image: path.clone(), top, probabilities, latency_ms });
    }
    Ok(out)
}

/// The predictions as `nsl predict` prints them.
pub fn render(predictions: &[Prediction], format: PredictFormat) -> String {
    match format {
        PredictFormat::Json => serde_json::to_string_pretty(predictions).expect("predictions serialise") + "\n",
        PredictFormat::Text => {
            let mut out = String::new();
            for p in predictions {
                out += &format!("{} (forward pass {:.2} ms)\n", p.image.display(), p.latency_ms);
                for (rank, r) in p.top.iter().enumerate() {
                    out += &format!("  {}. {:<14} {:6.2}%\n", rank + 1, r.name, 100.0 * r.probability);
                }
            }
            out
        }
    }
}
