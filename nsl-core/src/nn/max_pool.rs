use super::{Cache, InferenceOp, Layer, Mode, Padding};
use crate::{Backend, Tensor, Window};

/// k×k max-pool with a stride and TF `SAME` (padding never wins) or `VALID` (floor, as PyTorch) padding.
pub struct MaxPool<B: Backend> {
    k: usize,
    stride: usize,
    padding: Padding,
    cache: Cache<(Window, Tensor<B>, Tensor<B>)>,
}

impl<B: Backend> MaxPool<B> {
    /// `MaxPool::new(2, 2)` is the CIFAR backbone's pool; `MaxPool::new(3, 2)` the ImageNet stem's.
    pub fn new(k: usize, stride: usize) -> Self {
        MaxPool { k, stride, padding: Padding::Same, cache: Cache::default() }
    }
    /// VALID (floor) pooling, PyTorch's default: 84 → 42 → 21 → 10 → 5 in CNN-4.
    pub fn valid(k: usize, stride: usize) -> Self {
        MaxPool { k, stride, padding: Padding::Valid, cache: Cache::default() }
    }
}

impl<B: Backend> Layer<B> for MaxPool<B> {
    fn name(&self) -> String {
        format!("maxpool {}x{}/{}", self.k, self.k, self.stride)
    }
    fn forward(&mut self, be: &B, x: &Tensor<B>, mode: Mode) -> Tensor<B> {
        let s = x.shape();
        let g = match self.padding {
            Padding::Same => Window::same(s[0], s[1], s[2], s[3], self.k, self.stride),
            Padding::Valid => Window::valid(s[0], s[1], s[2], s[3], self.k, self.stride),
        };
        let mut y = Tensor::empty(be, &[g.batch, g.ho, g.wo, g.c]);
        be.max_pool(&g, x.buf(), y.buf_mut());
        if mode.record {
            self.cache.push((g, x.clone(), y.clone()));
        }
        y
    }
    fn backward(&mut self, be: &B, dy: &Tensor<B>) -> Tensor<B> {
        let (g, x, y) = self.cache.pop("maxpool");
        let mut dx = x.empty_like(be);
        be.max_pool_backward(&g, x.buf(), y.buf(), dy.buf(), dx.buf_mut());
        dx
    }
    fn inference_graph(&mut self, _be: &B) -> Result<Vec<InferenceOp>, String> {
        Ok(vec![InferenceOp::MaxPool { k: self.k, stride: self.stride, padding: self.padding }])
    }
}
