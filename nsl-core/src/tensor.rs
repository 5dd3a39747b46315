//! [`Tensor`]: a backend buffer with a shape.

use crate::Backend;

/// A dense row-major `f32` tensor living on backend `B` (feature maps are NHWC).
///
/// ```
/// use nsl_core::Tensor;
/// use nsl_cpu::Cpu;
/// let be = Cpu::new();
/// let t = Tensor::from_vec(&be, &[2, 3], &[1., 2., 3., 4., 5., 6.]);
/// assert_eq!(t.shape(), &[2, 3]);
/// assert_eq!(t.to_vec(&be)[4], 5.0);
/// ```
pub struct Tensor<B: Backend> {
    pub buf: B::Buf,
    shape: Vec<usize>,
}

impl<B: Backend> Tensor<B> {
    /// A zero tensor.
    pub fn zeros(be: &B, shape: &[usize]) -> Self {
        Tensor {
            buf: be.zeros(shape.iter().product()),
            shape: shape.to_vec(),
        }
    }
    /// Upload host data; panics if `data.len()` is not the product of `shape`.
    pub fn from_vec(be: &B, shape: &[usize], data: &[f32]) -> Self {
        let n: usize = shape.iter().product();
        assert_eq!(
            n,
            data.len(),
            "tensor of shape {shape:?} needs {n} values, got {}",
            data.len()
        );
        Tensor {
            buf: be.upload(data),
            shape: shape.to_vec(),
        }
    }
    /// Wrap an existing buffer.
    pub fn from_buf(be: &B, buf: B::Buf, shape: &[usize]) -> Self {
        assert_eq!(
            be.len(&buf),
            shape.iter().product::<usize>(),
            "buffer length does not match shape {shape:?}"
        );
        Tensor {
            buf,
            shape: shape.to_vec(),
        }
    }
    /// Download to the host.
    pub fn to_vec(&self, be: &B) -> Vec<f32> {
        be.download(&self.buf)
    }
    /// Download as an `ndarray` array of the same shape.
    pub fn to_ndarray(&self, be: &B) -> ndarray::ArrayD<f32> {
        ndarray::ArrayD::from_shape_vec(self.shape.clone(), self.to_vec(be))
            .expect("shape matches length")
    }
    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    /// The same data under a new shape with the same number of elements.
    pub fn reshape(mut self, shape: &[usize]) -> Self {
        assert_eq!(
            self.numel(),
            shape.iter().product::<usize>(),
            "cannot reshape {:?} to {shape:?}",
            self.shape
        );
        self.shape = shape.to_vec();
        self
    }
    /// A copy on the same backend.
    pub fn duplicate(&self, be: &B) -> Self {
        let mut buf = be.zeros(self.numel());
        be.copy(&self.buf, &mut buf);
        Tensor {
            buf,
            shape: self.shape.clone(),
        }
    }
    /// A zero tensor of the same shape.
    pub fn zeros_like(&self, be: &B) -> Self {
        Self::zeros(be, &self.shape)
    }
}

impl<B: Backend> std::fmt::Debug for Tensor<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor{:?}", self.shape)
    }
}
