//! A plain or static (folded) network's weights for PyTorch: a safetensors file whose tensors
//! are the `state_dict` of `nn.Sequential(OrderedDict(features=nn.Sequential(*layers)))`
//! (`features.0.weight` `(O, C, kh, kw)`, `features.1.running_mean`, …) and whose metadata
//! holds `layers`, a JSON list of `{"type": <torch.nn class>, <its constructor arguments>}`,
//! and `preprocessing` (zero padding, mean, std). README.md ("Deploying a trained network")
//! shows the Python that builds and loads the module.
//!
//! TF `SAME` padding becomes `padding=p` when symmetric, an `nn.ZeroPad2d` before a convolution
//! when not, and `ceil_mode=True` for a max-pool padded only after (the ImageNet stem).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use nsl_core::nn::{InferenceOp, Layer};
use nsl_core::Backend;
use safetensors::tensor::{Dtype, TensorView};
use serde_json::{json, Value};

use super::{input_spec, kernel_oihw, window_pads, ExportError};
use crate::nets::Network;
use crate::train::RunConfig;

/// The safetensors bytes of `net` (run `cfg`, loaded from `source`) in PyTorch's layout.
///
/// # Errors
/// [`ExportError::Unsupported`] for a dynamic similarity, a SphereConv or self-attention (no
/// plain `torch.nn` layer computes them; the ONNX export does).
pub fn torch_safetensors<B: Backend>(
    be: &B,
    net: &mut Network<B>,
    cfg: &RunConfig,
    source: &Path,
) -> Result<Vec<u8>, ExportError> {
    let unsupported = |what: String| ExportError::Unsupported {
        what: format!("{}: {what}", source.display()),
        fix: "--format torch-safetensors writes plain and static (folded) networks only; use --format onnx, which \
              expresses every similarity"
            .into(),
    };
    let ops = net.inference_graph(be).map_err(unsupported)?;
    let mut layers = Vec::new();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut chw = {
        let [h, w, c] = net.input;
        [c, h, w]
    };
    let f32s = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    for op in &ops {
        match op {
            InferenceOp::Conv(conv) if conv.input_norm.is_none() => {
                let (pads, out) = window_pads(chw, conv.k, conv.stride, conv.padding);
                let [t, l, b, r] = pads;
                let padding = if [t, l] == [b, r] {
                    t
                } else {
                    layers.push(json!({"type": "ZeroPad2d", "padding": [l, r, t, b]}));
                    0
                };
                let i = layers.len();
                tensors.push((
                    format!("features.{i}.weight"),
                    vec![conv.c_out, conv.c_in, conv.k, conv.k],
                    f32s(&kernel_oihw(conv)),
                ));
                layers.push(json!({
                    "type": "Conv2d", "in_channels": conv.c_in, "out_channels": conv.c_out,
                    "kernel_size": conv.k, "stride": conv.stride, "padding": padding, "bias": false,
                }));
                chw = [conv.c_out, out[0], out[1]];
            }
            InferenceOp::BatchNorm(bn) => {
                let i = layers.len();
                let c = bn.gamma.len();
                for (part, v) in
                    [("weight", &bn.gamma), ("bias", &bn.beta), ("running_mean", &bn.mean), ("running_var", &bn.var)]
                {
                    tensors.push((format!("features.{i}.{part}"), vec![c], f32s(v)));
                }
                tensors.push((format!("features.{i}.num_batches_tracked"), vec![], 0i64.to_le_bytes().to_vec()));
                layers.push(json!({"type": "BatchNorm2d", "num_features": c, "eps": bn.eps}));
                if bn.relu {
                    layers.push(json!({"type": "ReLU"}));
                }
            }
            InferenceOp::Relu => layers.push(json!({"type": "ReLU"})),
            InferenceOp::MaxPool { k, stride, padding } => {
                let ([t, l, b, r], out) = window_pads(chw, *k, *stride, *padding);
                let (padding, ceil_mode) = match ([t, l], [b, r]) {
                    (before, after) if before == after => (t, false),
                    ([0, 0], _) => (0, true),
                    _ => {
                        return Err(unsupported(format!("a {k}×{k} max-pool padded {t}/{l} before and {b}/{r} after")))
                    }
                };
                layers.push(json!({
                    "type": "MaxPool2d", "kernel_size": k, "stride": stride, "padding": padding, "ceil_mode": ceil_mode,
                }));
                chw = [chw[0], out[0], out[1]];
            }
            other => return Err(unsupported(format!("{} is not a plain torch.nn layer", describe(other)))),
        }
    }
    layers.push(json!({"type": "Flatten"}));
    let input = input_spec(cfg).map_err(unsupported)?;
    let (mean, std) = input.mean_std.clone().unwrap_or_else(|| (vec![0.0; input.chw[0]], vec![1.0; input.chw[0]]));
    let metadata = HashMap::from([
        ("layers".to_string(), Value::Array(layers).to_string()),
        (
            "preprocessing".to_string(),
            json!({"input_chw": input.chw, "zero_pad": input.pad, "mean": mean, "std": std}).to_string(),
        ),
        ("network".to_string(), cfg.network.to_string()),
        ("similarity".to_string(), cfg.similarity.to_string()),
        ("dataset".to_string(), cfg.dataset.to_string()),
    ]);
    let views: BTreeMap<String, TensorView<'_>> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let dtype = if name.ends_with("num_batches_tracked") { Dtype::I64 } else { Dtype::F32 };
            (name.clone(), TensorView::new(dtype, shape.clone(), data).expect("shape matches the data"))
        })
        .collect();
    safetensors::serialize(views, &Some(metadata)).map_err(|e| unsupported(format!("serialising: {e}")))
}

fn describe(op: &InferenceOp) -> String {
    match op {
        InferenceOp::Conv(c) => format!("{} (a SphereConv)", c.name),
        InferenceOp::Dynamic { conv, .. } => format!("{} (a dynamic similarity)", conv.name),
        InferenceOp::SelfAttention { v, .. } => format!("{} (self-attention)", v.name),
        other => format!("{other:?}"),
    }
}
