//! A network's inference description ([`InferenceOp`]s, NHWC) as an ONNX graph (NCHW, opset 13,
//! standard operators only), with the data set's input normalisation in front.
//!
//! The batch dimension is the symbol `N`: every `Reshape` copies it with a `0` entry. Layers:
//! - convolution: `Conv` with TF `SAME`/`VALID` pads (asymmetric where TF's are); a SphereConv
//!   divides by `Sqrt(Conv(x², 1) + ε)`, the window norm;
//! - batch norm: `BatchNormalization` on the running statistics (+ `Relu`); max-pool: `MaxPool`;
//! - dynamic similarity, as the reference code computes it: patches `P` by a one-hot depthwise
//!   `Conv` (`[N, HW, k², C]`), the prediction `m` from the predictor's ops, then
//!   `P̃ = (m + 1) ⊙ P` (DNS) or `P̃ = M P (+ P)` (UNS, `MatMul` per position), and
//!   `y = P̃ · W` (`MatMul` with the `[k²·C, C_out]` kernel);
//! - self-attention: `MatMul`s and `Softmax` over the `H·W` positions of each image.

use nsl_core::nn::{BatchNormOp, ConvOp, InferenceOp, Padding};
use nsl_core::similarity::DynamicKind;

use super::onnx_proto::{Attribute, Dim, Graph, Initializer, Node, TensorData, ValueInfo};
use super::{kernel_oihw, window_pads};

/// The images the model takes and how the graph turns them into network inputs, as the run's
/// data loader does: zero padding by `pad` pixels on each side, then `(x − mean[c]) / std[c]`
/// (none for raw 0..255 inputs).
#[derive(Clone, Debug, PartialEq)]
pub struct InputSpec {
    /// `[C, H, W]` of one raw image (0..255 values), before padding.
    pub chw: [usize; 3],
    pub pad: usize,
    pub mean_std: Option<(Vec<f32>, Vec<f32>)>,
}

/// The name of the graph's input, `[N, C, H, W]` raw pixels.
pub const INPUT: &str = "pixels";
/// The name of the graph's output, `[N, classes]`.
pub const OUTPUT: &str = "logits";

/// The ONNX graph of `ops` (a network's [`nsl_core::nn::Layer::inference_graph`]) behind the
/// input pipeline `input`, ending in `[N, classes]` logits.
///
/// # Errors
/// If the ops' shapes do not chain (e.g. a convolution expecting other channels), naming the op.
pub fn onnx_graph(name: &str, input: &InputSpec, ops: &[InferenceOp], classes: usize) -> Result<Graph, String> {
    let mut b = Builder::default();
    let [c, h, w] = input.chw;
    let mut x = Value { name: INPUT.to_string(), chw: [c, h, w] };
    if input.pad > 0 {
        let p = input.pad as i64;
        let pads = b.int64s("input.pads", &[0, 0, p, p, 0, 0, p, p]);
        let side = |s: usize| s + 2 * input.pad;
        x = Value { name: b.node("Pad", &[&x.name, &pads], vec![]), chw: [c, side(h), side(w)] };
    }
    if let Some((mean, std)) = &input.mean_std {
        let mean = b.floats("input.mean", &[1, c as i64, 1, 1], mean);
        let std = b.floats("input.std", &[1, c as i64, 1, 1], std);
        let centred = b.node("Sub", &[&x.name, &mean], vec![]);
        x.name = b.node("Div", &[&centred, &std], vec![]);
    }
    for op in ops {
        x = b.op(op, x)?;
    }
    if x.chw != [classes, 1, 1] {
        return Err(format!("the network ends in a {:?} map, not [{classes}, 1, 1] logits", x.chw));
    }
    b.node_into("Flatten", &[&x.name], vec![("axis", Attribute::Int(1))], OUTPUT.to_string());
    let batch = || Dim::Symbol("N".into());
    b.graph.name = name.to_string();
    b.graph.inputs = vec![ValueInfo {
        name: INPUT.into(),
        dims: vec![batch(), Dim::Fixed(c as i64), Dim::Fixed(h as i64), Dim::Fixed(w as i64)],
    }];
    b.graph.outputs = vec![ValueInfo { name: OUTPUT.into(), dims: vec![batch(), Dim::Fixed(classes as i64)] }];
    Ok(b.graph)
}

/// A tensor of the graph: its name and `[C, H, W]` (the batch is `N`).
#[derive(Clone, Debug)]
struct Value {
    name: String,
    chw: [usize; 3],
}

#[derive(Default)]
struct Builder {
    graph: Graph,
    names: std::collections::HashSet<String>,
}

impl Builder {
    /// `hint`, or `hint#n` if taken (a shared trunk's tensors recur with each layer's statistics).
    fn unique(&mut self, hint: &str) -> String {
        let mut name = hint.to_string();
        let mut n = 1;
        while !self.names.insert(name.clone()) {
            n += 1;
            name = format!("{hint}#{n}");
        }
        name
    }
    fn initializer(&mut self, hint: &str, dims: Vec<i64>, data: TensorData) -> String {
        let name = self.unique(hint);
        self.graph.initializers.push(Initializer { name: name.clone(), dims, data });
        name
    }
    fn floats(&mut self, hint: &str, dims: &[i64], v: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<i64>() as usize, v.len(), "{hint}");
        self.initializer(hint, dims.to_vec(), TensorData::F32(v.to_vec()))
    }
    fn int64s(&mut self, hint: &str, v: &[i64]) -> String {
        self.initializer(hint, vec![v.len() as i64], TensorData::I64(v.to_vec()))
    }
    /// One node with a single output; returns the output's name.
    fn node(&mut self, op_type: &'static str, inputs: &[&str], attributes: Vec<(&'static str, Attribute)>) -> String {
        let n = self.graph.nodes.len();
        let out = self.unique(&format!("{}_{n}", op_type.to_lowercase()));
        self.node_into(op_type, inputs, attributes, out)
    }
    /// One node writing the tensor `out`; returns `out`.
    fn node_into(
        &mut self,
        op_type: &'static str,
        inputs: &[&str],
        attributes: Vec<(&'static str, Attribute)>,
        out: String,
    ) -> String {
        self.graph.nodes.push(Node {
            name: out.clone(),
            op_type,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![out.clone()],
            attributes,
        });
        out
    }
    fn reshape(&mut self, x: &str, shape: &[i64]) -> String {
        let shape = self.int64s("shape", shape);
        self.node("Reshape", &[x, &shape], vec![])
    }
    fn transpose(&mut self, x: &str, perm: &[i64]) -> String {
        self.node("Transpose", &[x], vec![("perm", Attribute::Ints(perm.to_vec()))])
    }

    fn op(&mut self, op: &InferenceOp, x: Value) -> Result<Value, String> {
        match op {
            InferenceOp::Conv(conv) => self.conv(conv, x),
            InferenceOp::BatchNorm(bn) => self.batch_norm(bn, x),
            InferenceOp::Relu => Ok(Value { name: self.node("Relu", &[&x.name], vec![]), ..x }),
            InferenceOp::MaxPool { k, stride, padding } => {
                let ([ho, wo], pads) = window(&x, *k, *stride, *padding)?;
                let attrs = vec![
                    ("kernel_shape", Attribute::Ints(vec![*k as i64; 2])),
                    ("strides", Attribute::Ints(vec![*stride as i64; 2])),
                    ("pads", Attribute::Ints(pads)),
                ];
                Ok(Value { name: self.node("MaxPool", &[&x.name], attrs), chw: [x.chw[0], ho, wo] })
            }
            InferenceOp::Dynamic { conv, kind, identity_residual, predictor } => {
                self.dynamic(conv, *kind, *identity_residual, predictor, x)
            }
            InferenceOp::SelfAttention { g1, g2, v, gamma } => self.self_attention([g1, g2, v], *gamma, x),
        }
    }

    /// `Conv` with the kernel in ONNX's `[C_out, C_in, k, k]` (÷ the window norm for a SphereConv).
    fn conv(&mut self, conv: &ConvOp, x: Value) -> Result<Value, String> {
        check_channels(&conv.name, conv.c_in, &x)?;
        let ([ho, wo], pads) = window(&x, conv.k, conv.stride, conv.padding)?;
        let (k, c, o) = (conv.k, conv.c_in, conv.c_out);
        let w = kernel_oihw(conv);
        let dims = [o as i64, c as i64, k as i64, k as i64];
        let w = self.floats(&format!("{}.weight", conv.name), &dims, &w);
        let attrs = || {
            vec![
                ("kernel_shape", Attribute::Ints(vec![k as i64; 2])),
                ("strides", Attribute::Ints(vec![conv.stride as i64; 2])),
                ("pads", Attribute::Ints(pads.clone())),
            ]
        };
        let mut y = self.node("Conv", &[&x.name, &w], attrs());
        if let Some(eps) = conv.input_norm {
            let sq = self.node("Mul", &[&x.name, &x.name], vec![]);
            let ones = self.floats("window_ones", &[1, c as i64, k as i64, k as i64], &vec![1.0; c * k * k]);
            let sum = self.node("Conv", &[&sq, &ones], attrs());
            let eps = self.floats("sphere_eps", &[], &[eps]);
            let sum_eps = self.node("Add", &[&sum, &eps], vec![]);
            let norm = self.node("Sqrt", &[&sum_eps], vec![]);
            y = self.node("Div", &[&y, &norm], vec![]);
        }
        Ok(Value { name: y, chw: [o, ho, wo] })
    }

    fn batch_norm(&mut self, bn: &BatchNormOp, x: Value) -> Result<Value, String> {
        check_channels(&bn.name, bn.gamma.len(), &x)?;
        let c = [bn.gamma.len() as i64];
        let gamma = self.floats(&format!("{}.gamma", bn.name), &c, &bn.gamma);
        let beta = self.floats(&format!("{}.beta", bn.name), &c, &bn.beta);
        let mean = self.floats(&format!("{}.running_mean", bn.name), &c, &bn.mean);
        let var = self.floats(&format!("{}.running_var", bn.name), &c, &bn.var);
        let attrs = vec![("epsilon", Attribute::Float(bn.eps))];
        let mut y = self.node("BatchNormalization", &[&x.name, &gamma, &beta, &mean, &var], attrs);
        if bn.relu {
            y = self.node("Relu", &[&y], vec![]);
        }
        Ok(Value { name: y, ..x })
    }

    /// `[N, C, H, W]` → `[N, H·W, C]`.
    fn positions_major(&mut self, x: &Value) -> String {
        let [c, h, w] = x.chw;
        let flat = self.reshape(&x.name, &[0, c as i64, (h * w) as i64]);
        self.transpose(&flat, &[0, 2, 1])
    }
    /// `[N, H·W, C]` → `[N, C, H, W]`.
    fn channels_major(&mut self, x: &str, chw: [usize; 3]) -> Value {
        let t = self.transpose(x, &[0, 2, 1]);
        let [c, h, w] = chw.map(|d| d as i64);
        Value { name: self.reshape(&t, &[0, c, h, w]), chw }
    }

    fn dynamic(
        &mut self,
        conv: &ConvOp,
        kind: DynamicKind,
        identity_residual: bool,
        predictor: &[InferenceOp],
        x: Value,
    ) -> Result<Value, String> {
        check_channels(&conv.name, conv.c_in, &x)?;
        let (k, c) = (conv.k, conv.c_in);
        let taps = k * k;
        let ([ho, wo], pads) = window(&x, k, 1, Padding::Same)?;
        let hw = (ho * wo) as i64;
        // patches [N, HW, k², C]: output channel c·k² + t of a depthwise one-hot conv reads tap t of channel c
        let mut one_hot = vec![0f32; c * taps * taps];
        for ch in 0..c {
            for t in 0..taps {
                one_hot[(ch * taps + t) * taps + t] = 1.0;
            }
        }
        let dims = [(c * taps) as i64, 1, k as i64, k as i64];
        let one_hot = self.floats(&format!("{}.unfold", conv.name), &dims, &one_hot);
        let attrs = vec![
            ("kernel_shape", Attribute::Ints(vec![k as i64; 2])),
            ("pads", Attribute::Ints(pads)),
            ("group", Attribute::Int(c as i64)),
        ];
        let unfolded = self.node("Conv", &[&x.name, &one_hot], attrs);
        let unfolded = self.reshape(&unfolded, &[0, c as i64, taps as i64, hw]);
        let patches = self.transpose(&unfolded, &[0, 3, 2, 1]);
        // the prediction m [N, HW, k²] or [N, HW, k², k²]
        let mut m = x.clone();
        for op in predictor {
            m = self.op(op, m)?;
        }
        let per = match kind {
            DynamicKind::Diagonal => taps,
            DynamicKind::Unconstrained => taps * taps,
        };
        if m.chw != [per, ho, wo] {
            return Err(format!("{}: the predictor gives {:?}, not [{per}, {ho}, {wo}]", conv.name, m.chw));
        }
        let m = self.positions_major(&m);
        let transformed = match kind {
            DynamicKind::Diagonal => {
                let s = if identity_residual {
                    let one = self.floats("one", &[], &[1.0]);
                    self.node("Add", &[&m, &one], vec![])
                } else {
                    m
                };
                let axes = self.int64s("axes", &[3]);
                let s = self.node("Unsqueeze", &[&s, &axes], vec![]);
                self.node("Mul", &[&patches, &s], vec![])
            }
            DynamicKind::Unconstrained => {
                let mat = self.reshape(&m, &[0, hw, taps as i64, taps as i64]);
                let mp = self.node("MatMul", &[&mat, &patches], vec![]);
                if identity_residual {
                    self.node("Add", &[&mp, &patches], vec![])
                } else {
                    mp
                }
            }
        };
        let rows = self.reshape(&transformed, &[0, hw, (taps * c) as i64]);
        let w = self.floats(&format!("{}.weight", conv.name), &[(taps * c) as i64, conv.c_out as i64], &conv.weight);
        let y = self.node("MatMul", &[&rows, &w], vec![]);
        Ok(self.channels_major(&y, [conv.c_out, ho, wo]))
    }

    fn self_attention(&mut self, [g1, g2, v]: [&ConvOp; 3], gamma: f32, x: Value) -> Result<Value, String> {
        let q = self.conv(g1, x.clone())?;
        let q = Value { name: self.node("Relu", &[&q.name], vec![]), ..q };
        let key = self.conv(g2, x.clone())?;
        let value = self.conv(v, x.clone())?;
        let q = self.positions_major(&q); // [N, HW, C/8]
        let [c8, h, w] = key.chw;
        let key = self.reshape(&key.name, &[0, c8 as i64, (h * w) as i64]); // [N, C/8, HW]
        let scores = self.node("MatMul", &[&q, &key], vec![]);
        let attention = self.node("Softmax", &[&scores], vec![("axis", Attribute::Int(-1))]);
        let value = self.positions_major(&value);
        let attended = self.node("MatMul", &[&attention, &value], vec![]);
        let attended = self.channels_major(&attended, x.chw);
        let gamma = self.floats(&format!("{}.gamma", v.name), &[], &[gamma]);
        let scaled = self.node("Mul", &[&attended.name, &gamma], vec![]);
        Ok(Value { name: self.node("Add", &[&x.name, &scaled], vec![]), ..x })
    }
}

fn check_channels(name: &str, expected: usize, x: &Value) -> Result<(), String> {
    if x.chw[0] == expected {
        Ok(())
    } else {
        Err(format!("{name}: expects {expected} channels, its input has {}", x.chw[0]))
    }
}

/// The layer's output side and ONNX pads `[top, left, bottom, right]` over `x`.
fn window(x: &Value, k: usize, stride: usize, padding: Padding) -> Result<([usize; 2], Vec<i64>), String> {
    let [_, h, w] = x.chw;
    if padding == Padding::Valid && (h < k || w < k) {
        return Err(format!("a VALID {k}×{k} window does not fit the {h}×{w} map"));
    }
    let (pads, out) = window_pads(x.chw, k, stride, padding);
    Ok((out, pads.map(|p| p as i64).to_vec()))
}
