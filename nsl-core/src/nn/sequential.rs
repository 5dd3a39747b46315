use super::{BatchNorm, InferenceOp, Layer, Mode};
use crate::{Backend, Param, Tensor};

/// Layers applied in order; backward runs them in reverse.
pub struct Sequential<B: Backend> {
    pub name: String,
    pub layers: Vec<Box<dyn Layer<B>>>,
}

impl<B: Backend> Sequential<B> {
    pub fn new(name: impl Into<String>) -> Self {
        Sequential { name: name.into(), layers: Vec::new() }
    }
    /// Append a layer (builder style).
    pub fn push(mut self, layer: impl Layer<B> + 'static) -> Self {
        self.layers.push(Box::new(layer));
        self
    }
    /// Forward that stops at the first layer whose output holds NaN or ±inf and names it.
    pub fn forward_checked(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Result<Tensor<B>, String> {
        let mut h = x.clone();
        for (i, layer) in self.layers.iter_mut().enumerate() {
            h = layer.forward(be, &h, mode);
            if h.to_vec(be).iter().any(|v| !v.is_finite()) {
                return Err(format!("layer {i} ({}) produced a non-finite value", layer.name()));
            }
        }
        Ok(h)
    }
}

impl<B: Backend> Layer<B> for Sequential<B> {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let mut h = x.clone();
        for layer in &mut self.layers {
            h = layer.forward(be, &h, mode);
        }
        h
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let mut d = dy.clone();
        for layer in self.layers.iter_mut().rev() {
            d = layer.backward(be, &d);
        }
        d
    }
    fn visit_params(&mut self, f: &mut dyn FnMut(&mut Param<B>)) {
        for layer in &mut self.layers {
            layer.visit_params(f);
        }
    }
    fn visit_batch_norms(&mut self, f: &mut dyn FnMut(&mut BatchNorm<B>)) {
        for layer in &mut self.layers {
            layer.visit_batch_norms(f);
        }
    }
    fn fold(&mut self, be: &B) -> Result<(), String> {
        self.layers.iter_mut().try_for_each(|layer| layer.fold(be))
    }
    fn inference_graph(&mut self, be: &B) -> Result<Vec<InferenceOp>, String> {
        let mut ops = Vec::new();
        for layer in &mut self.layers {
            ops.extend(layer.inference_graph(be)?);
        }
        Ok(ops)
    }
}
