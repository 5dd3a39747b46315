//! Checkpoints in safetensors (openable from PyTorch with `safetensors.torch.load_file`),
//! written atomically: a temp file in the same folder, fsync, then rename. A kill at any point
//! leaves either the previous checkpoint or the new one, never a half-written file.
//!
//! Tensor names: every parameter and buffer under its own name (`conv2_1.weight`,
//! `conv2_1.bn.running_mean`, …), optimiser state under `optim.<param>.first|second`.
//! `__metadata__` holds the training step and free-form strings (the run config).
//!
//! Layouts, for reading checkpoints elsewhere: all tensors are F32. A `k×k` convolution's
//! `<layer>.weight` is `(k·k·C_in, C_out)`, row `(ky·k + kx)·C_in + c` (TensorFlow's HWIO
//! flattened; PyTorch's `(C_out, C_in, k, k)` is `w.reshape(k, k, C_in, C_out).permute(3, 2, 0, 1)`).
//! Fully connected layers are VALID convolutions over the whole map, so the same holds with `k`
//! the map side. Batch norms hold `gamma`, `beta`, `running_mean`, `running_var` (`C` each) and
//! `ema_count` (one value). Static DNS diagonals are `<layer>.sim.theta` (`k²`), UNS matrices
//! `(k², k²)`. Activations are NHWC.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use nsl_core::nn::Layer;
use nsl_core::optim::Optimizer;
use nsl_core::{Backend, Tensor};
use safetensors::tensor::Dtype;

/// Why a checkpoint could not be read or written.
#[derive(Debug)]
pub enum CheckpointError {
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Not a safetensors file, or truncated.
    Corrupt {
        path: PathBuf,
        reason: String,
    },
    /// A tensor the model needs is absent.
    Missing {
        path: PathBuf,
        name: String,
    },
    /// The device failed before the tensors could be read back; nothing was written.
    Device {
        path: PathBuf,
        source: nsl_core::BackendError,
    },
    /// A tensor has another shape than the model's.
    Shape {
        path: PathBuf,
        name: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => write!(f, "checkpoint {}: {source}", path.display()),
            CheckpointError::Device { path, source } => {
                write!(f, "checkpoint {} not written (the file there is unchanged): {source}", path.display())
            }
            CheckpointError::Corrupt { path, reason } => write!(
                f,
                "checkpoint {} is truncated or not a safetensors file ({reason}); delete it (and start the run \
                 over without --resume), or give an intact checkpoint",
                path.display()
            ),
            CheckpointError::Missing { path, name } => write!(
                f,
                "checkpoint {} has no tensor `{name}`: it was saved from a different network or similarity \
                 (check --network/--similarity)",
                path.display()
            ),
            CheckpointError::Shape { path, name, found, expected } => write!(
                f,
                "checkpoint {}: tensor `{name}` has shape {found:?}, the network expects {expected:?}: it was saved \
                 from a different network, width or class count",
                path.display()
            ),
        }
    }
}

impl std::error::Error for CheckpointError {}

/// The training state besides the tensors.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Meta {
    /// Iterations completed.
    pub step: u64,
    /// Free-form strings (run config, network name, accuracies).
    pub extra: BTreeMap<String, String>,
}

/// The warning for resuming from the checkpoint at `path` (metadata `meta`) on a backend `be`
/// that computes differently from the one that wrote it (none for checkpoints of nsl versions
/// that did not record it): training can go on, but its bits will not equal an uninterrupted
/// run's.
pub fn backend_change_warning<B: Backend>(be: &B, path: &Path, meta: &Meta) -> Option<String> {
    change_warning(path, meta.extra.get("backend").map(String::as_str), &be.numerics())
}

fn change_warning(path: &Path, saved: Option<&str>, now: &str) -> Option<String> {
    saved.filter(|saved| *saved != now).map(|saved| {
        format!(
            "warning: {} was written on `{saved}` and this run continues on `{now}`; training goes on, \
             but the result will not equal an uninterrupted run bit for bit (resume on the first backend \
             and, for the CPU, with the same NSL_CPU_FLUSH_DENORMALS and NSL_CPU_GEMM, to get it)",
            path.display()
        )
    })
}

/// Save `model` (and `optimizer` state, if any) to `path` atomically.
pub fn save<B: Backend>(
    be: &B,
    path: &Path,
    model: &mut dyn Layer<B>,
    optimizer: Option<&mut Optimizer<B>>,
    meta: &Meta,
) -> Result<(), CheckpointError> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut push = |name: String, t: &Tensor<B>| {
        let bytes = t.to_vec(be).iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name, t.shape().to_vec(), bytes));
    };
    model.visit_params(&mut |p| push(p.name.clone(), &p.value));
    let mut metadata = meta.extra.clone();
    metadata.insert("step".into(), meta.step.to_string());
    metadata.insert("backend".into(), be.numerics());
    if let Some(opt) = optimizer {
        metadata.insert("optimizer_steps".into(), opt.steps.to_string());
        for slot in opt.slots_mut().iter() {
            push(format!("optim.{}.first", slot.name), &slot.first);
            if let Some(second) = &slot.second {
                push(format!("optim.{}.second", slot.name), second);
            }
        }
    }
    // After a device failure the downloads above are placeholders: write nothing.
    be.status().map_err(|source| CheckpointError::Device { path: path.into(), source })?;
    crate::files::write_atomic(path, &serialize(tensors, &metadata))
        .map_err(|source| CheckpointError::Io { path: path.into(), source })
}

/// The safetensors bytes of F32 `tensors` (name, shape, little-endian data) and `metadata`:
/// an 8-byte little-endian header length, the JSON header (keys in sorted order, padded with
/// spaces to a multiple of 8 bytes), then the data of the tensors in name order. The same
/// tensors and metadata always give the same bytes (`safetensors::serialize` orders the
/// metadata as a `HashMap` iterates, so two identical runs wrote different files).
fn serialize(mut tensors: Vec<(String, Vec<usize>, Vec<u8>)>, metadata: &BTreeMap<String, String>) -> Vec<u8> {
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0usize;
    for (name, shape, bytes) in &tensors {
        let entry =
            serde_json::json!({ "dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes.len()] });
        header.insert(name.clone(), entry);
        offset += bytes.len();
    }
    let mut json = serde_json::to_vec(&header).expect("a header serialises");
    json.resize(json.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + json.len() + offset);
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(&json);
    tensors.iter().for_each(|(_, _, bytes)| out.extend_from_slice(bytes));
    out
}

/// The metadata of the checkpoint at `path` (the run config, the step), without its tensors.
pub fn read_meta(path: &Path) -> Result<Meta, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.into(), reason };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let extra: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let step = extra
        .get("step")
        .ok_or_else(|| corrupt("metadata has no `step`".into()))?
        .parse()
        .map_err(|_| corrupt("metadata `step` is not a number".into()))?;
    Ok(Meta { step, extra })
}

/// Load `path` into `model` (every parameter and buffer must be present with its shape) and,
/// if given, into `optimizer`. Returns the metadata.
pub fn load<B: Backend>(
    be: &B,
    path: &Path,
    model: &mut dyn Layer<B>,
    optimizer: Option<&mut Optimizer<B>>,
) -> Result<Meta, CheckpointError> {
    let bytes = std::fs::read(path).map_err(|source| CheckpointError::Io { path: path.into(), source })?;
    let corrupt = |reason: String| CheckpointError::Corrupt { path: path.into(), reason };
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| corrupt(e.to_string()))?;
    let fetch = |name: &str, expected: &[usize]| -> Result<Tensor<B>, CheckpointError> {
        let view = file.tensor(name).map_err(|_| CheckpointError::Missing { path: path.into(), name: name.into() })?;
        if view.dtype() != Dtype::F32 {
            return Err(corrupt(format!("tensor `{name}` is {:?}, expected F32", view.dtype())));
        }
        if view.shape() != expected {
            return Err(CheckpointError::Shape {
                path: path.into(),
                name: name.into(),
                found: view.shape().to_vec(),
                expected: expected.to_vec(),
            });
        }
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Ok(Tensor::from_vec(be, expected, &values))
    };
    // Read everything first so a bad file changes nothing.
    let mut loaded = Vec::new();
    let mut failure = None;
    model.visit_params(&mut |p| {
        if failure.is_none() {
            match fetch(&p.name, p.value.shape()) {
                Ok(t) => loaded.push(t),
                Err(e) => failure = Some(e),
            }
        }
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let extra: BTreeMap<String, String> = header.metadata().clone().unwrap_or_default().into_iter().collect();
    let number = |key: &str| -> Result<u64, CheckpointError> {
        extra
            .get(key)
            .ok_or_else(|| corrupt(format!("metadata has no `{key}`")))?
            .parse()
            .map_err(|_| corrupt(format!("metadata `{key}` is not a number")))
    };
    let step = number("step")?;
    if let Some(opt) = optimizer.filter(|_| extra.get("optimizer_steps").is_some_and(|s| s != "0")) {
        let steps = number("optimizer_steps")?;
        let mut slots = Vec::new();
        let mut failure = None;
        let adam = matches!(opt.kind, nsl_core::optim::OptimizerKind::Adam { .. });
        model.visit_params(&mut |p| {
            if !p.trainable || failure.is_some() {
                return;
            }
            let first = fetch(&format!("optim.{}.first", p.name), p.value.shape());
            let second = adam.then(|| fetch(&format!("optim.{}.second", p.name), p.value.shape())).transpose();
            match (first, second) {
                (Ok(first), Ok(second)) => slots.push(nsl_core::optim::Slot { name: p.name.clone(), first, second }),
                (Err(e), _) | (_, Err(e)) => failure = Some(e),
            }
        });
        if let Some(e) = failure {
            return Err(e);
        }
        *opt.slots_mut() = slots;
        opt.steps = steps;
    }
    let mut it = loaded.into_iter();
    model.visit_params(&mut |p| p.value = it.next().expect("same visit order"));
    Ok(Meta { step, extra })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resuming_on_a_backend_that_computes_differently_warns() {
        let path = Path::new("runs/x/checkpoint.safetensors");
        let saved = Some("cpu (avx2+fma)");
        assert_eq!(change_warning(path, saved, "cpu (avx2+fma)"), None);
        assert_eq!(change_warning(path, None, "cpu (avx2+fma)"), None, "older checkpoints");
        let flushed = change_warning(path, saved, "cpu (avx2+fma, subnormals flushed)").unwrap();
        assert!(flushed.starts_with("warning: runs/x/checkpoint.safetensors was written on `cpu (avx2+fma)`"));
        assert!(flushed.contains("`cpu (avx2+fma, subnormals flushed)`") && flushed.contains("bit for bit"));
    }
}
