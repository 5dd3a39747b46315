//! Deploying a trained network: load a run's checkpoint for inference without its data set
//! ([`load_for_inference`]), and write it as an ONNX model ([`onnx_model`], `nsl export`).
//!
//! Exports read the network's own inference description
//! ([`nsl_core::nn::Layer::inference_graph`]): static similarities appear folded into plain
//! convolutions (paper §3.2), dynamic ones and self-attention as the standard operators that
//! compute them ([`onnx_graph`]). Batch norms export the running statistics the run evaluates
//! with (debiased when the run's `bn_debias` is on, as `nsl eval`).

pub mod onnx_graph;
pub mod onnx_proto;
pub mod torch;

use std::fmt;
use std::path::{Path, PathBuf};

use nsl_core::nn::{ConvOp, Layer, Padding};
use nsl_core::{Backend, Rng, Window};

use crate::data::augment::Normalize;
use crate::data::{cifar, fashion_mnist};
use crate::nets::Network;
use crate::train::{build_network, load_test, normalize_of, DatasetChoice, RunConfig, RunDir};
use onnx_graph::InputSpec;

/// What `nsl export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// The whole network as an ONNX model (see `onnx_model`).
    Onnx,
    /// A plain or static network's weights in PyTorch's layout (see `torch::torch_safetensors`).
    TorchSafetensors,
}

/// Why a network could not be loaded or exported.
#[derive(Debug)]
pub enum ExportError {
    /// The checkpoint (or run folder) cannot be used: missing, unreadable, not written by nsl.
    Checkpoint { path: PathBuf, problem: String },
    /// The network holds a layer the format cannot express.
    Unsupported { what: String, fix: String },
    /// Writing the output failed.
    Write { path: PathBuf, source: std::io::Error },
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::Checkpoint { path, problem } => write!(f, "{}: {problem}", path.display()),
            ExportError::Unsupported { what, fix } => write!(f, "{what}; {fix}"),
            ExportError::Write { path, source } => {
                write!(f, "cannot write {}: {}", path.display(), crate::files::io_hint(source))
            }
        }
    }
}

impl std::error::Error for ExportError {}

/// The class count, input shape and class names of a run's data set, known without reading it
/// for the built-in sets (the others open their test split).
#[derive(Clone, Debug, PartialEq)]
pub struct DataGeometry {
    pub classes: usize,
    /// `[H, W, C]` the network takes.
    pub input: [usize; 3],
    /// `[C, H, W]` of a stored image, before the zero padding of `pad` pixels per side.
    pub raw_chw: [usize; 3],
    pub pad: usize,
    pub class_names: Option<Vec<String>>,
}

/// [`DataGeometry`] of the data set `cfg` names.
///
/// # Errors
/// When a data set outside the built-in ones cannot be opened.
pub fn data_geometry(cfg: &RunConfig) -> Result<DataGeometry, String> {
    let names = |n: &[&str]| Some(n.iter().map(|s| s.to_string()).collect());
    let plain = |classes, side, c, class_names| DataGeometry {
        classes,
        input: [side, side, c],
        raw_chw: [c, side, side],
        pad: 0,
        class_names,
    };
    Ok(match cfg.dataset {
        DatasetChoice::FashionMnist | DatasetChoice::FashionMnistEmbedded => DataGeometry {
            classes: fashion_mnist::CLASSES,
            input: [fashion_mnist::SIDE, fashion_mnist::SIDE, 1],
            raw_chw: [1, fashion_mnist::RAW_SIDE, fashion_mnist::RAW_SIDE],
            pad: (fashion_mnist::SIDE - fashion_mnist::RAW_SIDE) / 2,
            class_names: names(&fashion_mnist::CLASS_NAMES),
        },
        DatasetChoice::Cifar10 => plain(10, cifar::SIDE, 3, names(&cifar::CIFAR10_CLASS_NAMES)),
        DatasetChoice::Cifar100 => plain(100, cifar::SIDE, 3, None),
        DatasetChoice::Synthetic => plain(10, 32, 3, None),
        DatasetChoice::Synthetic100 => plain(100, 32, 3, None),
        DatasetChoice::Imagenet | DatasetChoice::MiniImagenet | DatasetChoice::SyntheticFewshot => {
            let test = load_test(cfg).map_err(|e| e.to_string())?;
            let [h, w, c] = test.shape();
            DataGeometry { classes: test.classes(), input: [h, w, c], raw_chw: [c, h, w], pad: 0, class_names: None }
        }
    })
}

/// The checkpoint `path` names: itself, or the `checkpoint.safetensors` of a run folder.
///
/// # Errors
/// A folder without a checkpoint.
pub fn checkpoint_file(path: &Path) -> Result<PathBuf, String> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let inside = RunDir::new(path).checkpoint();
    if inside.exists() {
        Ok(inside)
    } else {
        Err(format!(
            "{} is a folder without a checkpoint.safetensors: give a run folder written by `nsl train` or the checkpoint file",
            path.display()
        ))
    }
}

/// The run config stored in the metadata of the checkpoint `path` (validated).
///
/// # Errors
/// An unreadable file, or one not written by nsl.
pub fn checkpoint_config(path: &Path) -> Result<RunConfig, String> {
    let bytes =
        std::fs::read(path).map_err(|e| format!("checkpoint {}: {}", path.display(), crate::files::io_hint(&e)))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| format!("checkpoint {} is truncated or not a safetensors file ({e})", path.display()))?;
    let text = header.metadata().as_ref().and_then(|m| m.get("config").cloned()).ok_or_else(|| {
        format!("checkpoint {} has no run config in its metadata (not written by nsl)", path.display())
    })?;
    let cfg = RunConfig::from_toml(&text).map_err(|e| format!("{}: config in metadata: {e}", path.display()))?;
    cfg.validate().map_err(|e| format!("{}: config in metadata: {e}", path.display()))?;
    Ok(cfg)
}

/// A run's network, ready for inference: rebuilt from the config in the checkpoint (or the
/// run folder's checkpoint) `path`, its weights loaded, and its batch-norm statistics debiased
/// if the run evaluates that way (`bn_debias`), so it computes what `nsl eval` measures.
///
/// # Errors
/// A missing or foreign checkpoint, or weights holding NaN or infinity.
pub fn load_for_inference<B: Backend>(be: &B, path: &Path) -> Result<(RunConfig, Network<B>), ExportError> {
    let fail = |problem: String| ExportError::Checkpoint { path: path.to_path_buf(), problem };
    let file = checkpoint_file(path).map_err(fail)?;
    let cfg = checkpoint_config(&file).map_err(fail)?;
    let geometry = data_geometry(&cfg).map_err(fail)?;
    let mut net = build_network(be, &cfg, geometry.classes, geometry.input, &mut Rng::new(cfg.seed))
        .map_err(|e| fail(e.to_string()))?;
    crate::checkpoint::load(be, &file, &mut net, None).map_err(|e| fail(e.to_string()))?;
    if let Some(culprit) = crate::train::first_non_finite(be, &mut net) {
        return Err(fail(format!("{culprit}; the network's outputs would be meaningless")));
    }
    if cfg.bn_debias {
        net.visit_batch_norms(&mut |bn| bn.debias_running_statistics(be));
    }
    Ok((cfg, net))
}

/// How the graph turns raw pixels into the network's input for run `cfg`.
///
/// # Errors
/// For a normalisation computed from data (`mean-std`, few-shot rows only).
pub fn input_spec(cfg: &RunConfig) -> Result<InputSpec, String> {
    let geometry = data_geometry(cfg)?;
    let c = geometry.raw_chw[0];
    let mean_std = match normalize_of(cfg.normalize).map_err(|e| e.to_string())? {
        Normalize::Raw => None,
        Normalize::Centered => Some((vec![127.5; c], vec![128.0; c])),
        Normalize::MeanStd(mean, std) => Some((mean, std)),
    };
    Ok(InputSpec { chw: geometry.raw_chw, pad: geometry.pad, mean_std })
}

/// nsl's version and the git commit it was built from (`unknown` outside a checkout).
pub fn nsl_version() -> (&'static str, &'static str) {
    (env!("CARGO_PKG_VERSION"), env!("NSL_GIT_COMMIT"))
}

/// The ONNX model of run `cfg`'s network `net` as it is (see [`load_for_inference`]): input
/// `pixels` `[N, C, H, W]` raw 0..255 values at the data set's stored size, output `logits`
/// `[N, classes]`; `metadata_props` name the network, similarity, data set, classes,
/// preprocessing and the nsl version and commit.
///
/// ```
/// use nsl_models::export::onnx_model;
/// use nsl_models::train::{build_network, RunConfig};
/// let be = nsl_cpu::Cpu::new();
/// let cfg = RunConfig { width: 0.125, ..RunConfig::default() }; // CNN-9 on Fashion-MNIST
/// let mut net = build_network(&be, &cfg, 10, [32, 32, 1], &mut nsl_core::Rng::new(0)).unwrap();
/// let bytes = onnx_model(&be, &mut net, &cfg).unwrap().encode();
/// assert!(bytes.len() > 4 * net.param_count());
/// ```
///
/// # Errors
/// If a layer has no inference description (none of the CLI's networks), or the data set's
/// geometry is unknown.
pub fn onnx_model<B: Backend>(be: &B, net: &mut Network<B>, cfg: &RunConfig) -> Result<onnx_proto::Model, ExportError> {
    let unsupported = |what: String| ExportError::Unsupported {
        what,
        fix: "export a network trained with a similarity `nsl train --help` lists".into(),
    };
    let ops = net.inference_graph(be).map_err(unsupported)?;
    let input = input_spec(cfg).map_err(|e| unsupported(format!("the input pipeline: {e}")))?;
    let graph = onnx_graph::onnx_graph(&net.name, &input, &ops, net.classes).map_err(unsupported)?;
    let geometry = data_geometry(cfg).map_err(|e| unsupported(format!("the data set: {e}")))?;
    let (version, commit) = nsl_version();
    let [c, h, w] = input.chw;
    let preprocessing = match &input.mean_std {
        None => "none: the network takes raw 0..255 values".to_string(),
        Some((mean, std)) => format!("(x - mean[c]) / std[c], mean {mean:?}, std {std:?}"),
    };
    let mut metadata = vec![
        ("network".to_string(), cfg.network.to_string()),
        ("similarity".to_string(), cfg.similarity.to_string()),
        ("width".to_string(), cfg.width.to_string()),
        ("dataset".to_string(), cfg.dataset.to_string()),
        ("classes".to_string(), net.classes.to_string()),
        ("input".to_string(), format!("pixels: [N, {c}, {h}, {w}] float32, raw 0..255 values, NCHW")),
        ("padding".to_string(), format!("{} zero pixels per side, inside the graph", input.pad)),
        ("normalization".to_string(), format!("{}: {preprocessing}, inside the graph", cfg.normalize)),
        ("output".to_string(), format!("logits: [N, {}] float32 (softmax gives probabilities)", net.classes)),
        ("nsl_version".to_string(), version.to_string()),
        ("nsl_git_commit".to_string(), commit.to_string()),
    ];
    if let Some(names) = geometry.class_names {
        metadata.push(("class_names".to_string(), serde_json::to_string(&names).expect("strings serialise")));
    }
    Ok(onnx_proto::Model {
        producer_name: "nsl".into(),
        producer_version: version.into(),
        doc_string: format!("{} ({} similarity) trained on {} by nsl", cfg.network, cfg.similarity, cfg.dataset),
        graph,
        metadata,
    })
}

/// Write `bytes` to `out` atomically (temp file, fsync, rename), as checkpoints are.
///
/// # Errors
/// If the folder cannot be created or the file written.
pub fn write_file(out: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    crate::files::write_atomic(out, bytes).map_err(|source| ExportError::Write { path: out.to_path_buf(), source })
}

/// The kernel `[k²·C, O]` (row `t·C + c`) as ONNX's and PyTorch's `(O, C, k, k)`, row-major.
pub fn kernel_oihw(conv: &ConvOp) -> Vec<f32> {
    let (k, c, o) = (conv.k, conv.c_in, conv.c_out);
    let mut w = vec![0f32; conv.weight.len()];
    for (row, values) in conv.weight.chunks_exact(o).enumerate() {
        let (t, ch) = (row / c, row % c);
        for (oc, &v) in values.iter().enumerate() {
            w[(oc * c + ch) * k * k + t] = v;
        }
    }
    w
}

/// The pads `[top, left, bottom, right]` and output `[H, W]` of a window over a `[C, H, W]` map
/// (TF `SAME` puts the odd pixel after).
pub fn window_pads([c, h, w]: [usize; 3], k: usize, stride: usize, padding: Padding) -> ([usize; 4], [usize; 2]) {
    let g = match padding {
        Padding::Same => Window::same(1, h, w, c, k, stride),
        Padding::Valid => Window::valid(1, h, w, c, k, stride),
    };
    let bottom = ((g.ho - 1) * stride + k).saturating_sub(h + g.pad_top);
    let right = ((g.wo - 1) * stride + k).saturating_sub(w + g.pad_left);
    ([g.pad_top, g.pad_left, bottom, right], [g.ho, g.wo])
}

/// `nsl export`: load the checkpoint (or run folder) `checkpoint` for inference and write it to
/// `out` in `format`; returns a one-line summary.
///
/// # Errors
/// A missing or foreign checkpoint, a network the format cannot express, a failed write.
pub fn export<B: Backend>(be: &B, checkpoint: &Path, format: ExportFormat, out: &Path) -> Result<String, ExportError> {
    let (cfg, mut net) = load_for_inference(be, checkpoint)?;
    let bytes = match format {
        ExportFormat::Onnx => onnx_model(be, &mut net, &cfg)?.encode(),
        ExportFormat::TorchSafetensors => torch::torch_safetensors(be, &mut net, &cfg, checkpoint)?,
    };
    write_file(out, &bytes)?;
    let input = input_spec(&cfg).map_err(|e| ExportError::Checkpoint { path: checkpoint.to_path_buf(), problem: e })?;
    let [c, h, w] = input.chw;
    Ok(format!(
        "wrote {} ({} {} on {}, {} parameters, {:.1} MB): input [N, {c}, {h}, {w}] raw 0..255 pixels, output [N, {}] \
         logits",
        out.display(),
        cfg.network,
        cfg.similarity,
        cfg.dataset,
        net.param_count(),
        bytes.len() as f64 / 1e6,
        net.classes,
    ))
}
