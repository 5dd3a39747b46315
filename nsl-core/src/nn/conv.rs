use super::{BatchNorm, Cache, ConvOp, InferenceOp, Layer, Mode};
use crate::similarity::Similarity;
use crate::{Backend, Param, Rng, Role, Tensor, Window};

/// TF padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// `ho = ceil(h / stride)`, zeros around the map.
    Same,
    /// No padding.
    Valid,
}

/// A k×k convolution whose inner product is replaced by a [`Similarity`]:
/// `y[b,p,o] = f_M(w[:,o], x_p)` (paper Eq. 1–2), then reshaped to NHWC `[B, ho, wo, C_out]`.
///
/// The kernel `w` is stored `[k·k·C_in, C_out]` with row `t·C_in + c` (HWIO, as TF), init
/// `N(0, 2/(k²·C_in))·init_scale`, no bias.
pub struct NslConv<B: Backend> {
    name: String,
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
    pub c_in: usize,
    pub c_out: usize,
    pub weight: Param<B>,
    pub similarity: Box<dyn Similarity<B>>,
    cache: Cache<Window>,
}

impl<B: Backend> NslConv<B> {
    /// A `k×k` conv `c_in → c_out` with He-normal init times `init_scale` and L2 `weight_decay`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        be: &B,
        rng: &mut Rng,
        name: &str,
        (c_in, c_out): (usize, usize),
        (k, stride, padding): (usize, usize, Padding),
        init_scale: f32,
        weight_decay: f32,
        similarity: Box<dyn Similarity<B>>,
    ) -> Self {
        let fan_in = k * k * c_in;
        let w = super::he_normal(rng, fan_in * c_out, fan_in, init_scale);
        let weight = Param::new(be, format!("{name}.weight"), Role::Weight, Tensor::from_vec(be, &[fan_in, c_out], &w))
            .with_decay(weight_decay);
        NslConv { name: name.into(), k, stride, padding, c_in, c_out, weight, similarity, cache: Cache::default() }
    }

    /// The window this conv slides over an input of shape `[B, H, W, C_in]`.
    pub fn window(&self, x_shape: &[usize]) -> Window {
        assert_eq!(x_shape.len(), 4, "{}: expected an NHWC input, got shape {x_shape:?}", self.name);
        assert_eq!(
            x_shape[3], self.c_in,
            "{}: input has {} channels, layer expects {}",
            self.name, x_shape[3], self.c_in
        );
        let (b, h, w) = (x_shape[0], x_shape[1], x_shape[2]);
        match self.padding {
            Padding::Same => Window::same(b, h, w, self.c_in, self.k, self.stride),
            Padding::Valid => Window::valid(b, h, w, self.c_in, self.k, self.stride),
        }
    }

    /// The plain kernel equivalent to this layer, if its similarity is static (paper §3.2).
    pub fn fold(&self, be: &B) -> Option<Tensor<B>> {
        self.similarity.fold(be, &self.weight.value)
    }

    /// What this layer computes at inference: its similarity's description of the convolution
    /// with this layer's geometry and kernel ([`Similarity::inference_op`]).
    pub fn inference_op(&mut self, be: &B) -> Result<InferenceOp, String> {
        let conv = ConvOp {
            name: self.name.clone(),
            k: self.k,
            stride: self.stride,
            padding: self.padding,
            c_in: self.c_in,
            c_out: self.c_out,
            weight: self.weight.value.to_vec(be),
            input_norm: None,
        };
        self.similarity.inference_op(be, conv).map_err(|e| format!("{}: {e}", self.name))
    }
}

impl<B: Backend> Layer<B> for NslConv<B> {
    fn name(&self) -> String {
        format!("{} ({} {}x{} {}→{})", self.name, self.similarity.name(), self.k, self.k, self.c_in, self.c_out)
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let g = self.window(x.shape());
        let y = self.similarity.forward(be, &g, x, &self.weight.value, mode);
        if mode.record {
            self.cache.push(g);
        }
        y.reshape(&[g.batch, g.ho, g.wo, self.c_out])
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let g = self.cache.pop(&self.name);
        let dy = dy.clone().reshape(&[g.rows(), self.c_out]);
        self.similarity.backward(be, &dy, &mut self.weight.grad).reshape(&[g.batch, g.h, g.w, g.c])
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        f(&mut self.weight);
        self.similarity.visit_params(f);
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        self.similarity.visit_batch_norms(f);
    }
    fn fold(&mut self, be: &B) -> Result<(), String> {
        let folded = NslConv::fold(self, be).ok_or_else(|| {
            format!("{}: a {} similarity is input-dependent and cannot fold", self.name, self.similarity.name())
        })?;
        self.weight.value = folded;
        self.similarity = crate::similarity::InnerProduct::boxed();
        Ok(())
    }
    fn inference_graph(&mut self, be: &B) -> Result<Vec<InferenceOp>, String> {
        Ok(vec![self.inference_op(be)?])
    }
}
