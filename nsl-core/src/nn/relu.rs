use super::{Cache, InferenceOp, Layer, Mode};
use crate::{Backend, Tensor};

/// `y = max(x, 0)`; backward `dx = dy·1[y > 0]`.
#[derive(Default)]
pub struct Relu<B: Backend> {
    y: Cache<Tensor<B>>,
}

impl<B: Backend> Relu<B> {
    pub fn new() -> Self {
        Relu { y: Cache::default() }
    }
}

impl<B: Backend> Layer<B> for Relu<B> {
    fn name(&self) -> String {
        "relu".into()
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let mut y = x.empty_like(be);
        be.relu(x.buf(), y.buf_mut());
        if mode.record {
            self.y.push(y.clone());
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let y = self.y.pop("relu");
        let mut dx = dy.empty_like(be);
        be.relu_backward(y.buf(), dy.buf(), dx.buf_mut());
        dx
    }
    fn inference_graph(&mut self, _be: &B) -> Result<Vec<InferenceOp>, String> {
        Ok(vec![InferenceOp::Relu])
    }
}
