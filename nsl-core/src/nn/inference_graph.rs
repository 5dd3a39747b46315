//! What a network computes at inference (batch norm on its running statistics), as plain data
//! on the host: how exporters (ONNX, PyTorch) read a network without knowing its layer types.
//!
//! Every [`super::Layer`] describes itself with [`super::Layer::inference_graph`] and every
//! [`crate::Similarity`] the convolution it turns into with
//! [`crate::Similarity::inference_op`]; static similarities describe their folded kernel, so an
//! exported static NSN is a plain CNN (paper §3.2). Activations are NHWC as in the layers;
//! weights keep the layers' own layouts.

use super::Padding;
use crate::similarity::DynamicKind;

/// A `k×k` convolution `y[p, o] = Σ_{t,c} w[t·C_in + c, o] · x_{p,t,c}` (tap `t = ky·k + kx`),
/// with every output divided by the window norm `‖x_p‖ = sqrt(Σ_window x² + ε)` when
/// `input_norm = Some(ε)` (SphereConv; a cosine SphereConv's `1/‖w_o‖` is already in `weight`).
#[derive(Clone, Debug, PartialEq)]
pub struct ConvOp {
    pub name: String,
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
    pub c_in: usize,
    pub c_out: usize,
    /// `[k²·C_in, C_out]`, row `t·C_in + c`.
    pub weight: Vec<f32>,
    pub input_norm: Option<f32>,
}

/// Batch norm on running statistics, `y = γ·(x − μ)/sqrt(σ² + ε) + β` per channel, then
/// `max(y, 0)` with `relu`.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchNormOp {
    pub name: String,
    pub eps: f32,
    pub relu: bool,
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
    pub mean: Vec<f32>,
    pub var: Vec<f32>,
}

/// One inference step of a network.
#[derive(Clone, Debug, PartialEq)]
pub enum InferenceOp {
    Conv(ConvOp),
    BatchNorm(BatchNormOp),
    /// `max(x, 0)`.
    Relu,
    /// `k×k` max-pool; TF `SAME` (padding never wins) or `VALID`.
    MaxPool {
        k: usize,
        stride: usize,
        padding: Padding,
    },
    /// Dynamic similarity (paper §3.3): `m = predictor(x)` per position (`k²` values for DNS,
    /// `k⁴` for UNS), `M_p = diag(m_p)` or `M_p[a,q] = m_p[a·k² + q]`, plus `I` with
    /// `identity_residual`, and `y[p, o] = Σ_c w_{c,o}ᵀ M_p x_{p,c}` with `conv`'s kernel
    /// (stride 1, SAME).
    Dynamic {
        conv: ConvOp,
        kind: DynamicKind,
        identity_residual: bool,
        predictor: Vec<InferenceOp>,
    },
    /// Self-attention (paper Eq. 11) over the `N = H·W` positions of each image:
    /// `y = x + γ · softmax_rows(ReLU(g1(x)) g2(x)ᵀ) v(x)` with 1×1 convolutions `g1`, `g2`, `v`.
    SelfAttention {
        g1: ConvOp,
        g2: ConvOp,
        v: ConvOp,
        gamma: f32,
    },
}
