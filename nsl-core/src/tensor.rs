//! [`Tensor`]: a backend buffer with a shape.

use std::sync::Arc;

use crate::Backend;

/// A dense row-major `f32` tensor living on backend `B` (feature maps are NHWC).
///
/// `clone()` is cheap and shares the storage (layers keep their activations this way);
/// [`Tensor::buf_mut`] needs the storage to be unshared.
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
    buf: Arc<B::Buf>,
    shape: Vec<usize>,
}

impl<B: Backend> Clone for Tensor<B> {
    fn clone(&self) -> Self {
        Tensor { buf: Arc::clone(&self.buf), shape: self.shape.clone() }
    }
}

impl<B: Backend> Tensor<B> {
    /// A zero tensor.
    pub fn zeros(be: &B, shape: &[usize]) -> Self {
        Tensor { buf: Arc::new(be.zeros(shape.iter().product())), shape: shape.to_vec() }
    }
    /// A tensor with unspecified contents ([`Backend::alloc`]): only for the output of an op
    /// that overwrites every element.
    pub fn empty(be: &B, shape: &[usize]) -> Self {
        Tensor { buf: Arc::new(be.alloc(shape.iter().product())), shape: shape.to_vec() }
    }
    /// The same as [`Tensor::empty`] with the shape of `self`.
    pub fn empty_like(&self, be: &B) -> Self {
        Self::empty(be, &self.shape)
    }
    /// Upload host data; panics if `data.len()` is not the product of `shape`.
    pub fn from_vec(be: &B, shape: &[usize], data: &[f32]) -> Self {
        let n: usize = shape.iter().product();
        assert_eq!(n, data.len(), "tensor of shape {shape:?} needs {n} values, got {}", data.len());
        Tensor { buf: Arc::new(be.upload(data)), shape: shape.to_vec() }
    }
    /// Wrap an existing buffer.
    pub fn from_buf(be: &B, buf: B::Buf, shape: &[usize]) -> Self {
        assert_eq!(be.len(&buf), shape.iter().product::<usize>(), "buffer length does not match shape {shape:?}");
        Tensor { buf: Arc::new(buf), shape: shape.to_vec() }
    }
    /// The device buffer.
    pub fn buf(&self) -> &B::Buf {
        &self.buf
    }
    /// The device buffer for writing; panics if another clone shares it.
    pub fn buf_mut(&mut self) -> &mut B::Buf {
        Arc::get_mut(&mut self.buf).expect("Tensor::buf_mut on a shared tensor (a clone is still alive)")
    }
    /// Download to the host.
    pub fn to_vec(&self, be: &B) -> Vec<f32> {
        be.download(&self.buf)
    }
    /// Download as an `ndarray` array of the same shape (row-major; an NHWC activation is
    /// `[batch, height, width, channels]`, a convolution kernel `[k·k·C_in, C_out]`).
    ///
    /// ```
    /// use nsl_core::Tensor;
    /// let be = nsl_cpu::Cpu::with_threads(1);
    /// let t = Tensor::from_vec(&be, &[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    /// let a = t.to_ndarray(&be);
    /// assert_eq!(a[[1, 0]], 4.0);
    /// assert_eq!(Tensor::from_ndarray(&be, &a).to_vec(&be), t.to_vec(&be));
    /// ```
    pub fn to_ndarray(&self, be: &B) -> ndarray::ArrayD<f32> {
        ndarray::ArrayD::from_shape_vec(self.shape.clone(), self.to_vec(be)).expect("shape matches length")
    }
    /// Upload an `ndarray` array of any dimension and memory layout (read in logical,
    /// row-major order), keeping its shape: how host data in the ecosystem's array type enters
    /// a backend.
    pub fn from_ndarray<D: ndarray::Dimension>(
        be: &B,
        array: &ndarray::ArrayBase<impl ndarray::Data<Elem = f32>, D>,
    ) -> Self {
        let values: Vec<f32> = array.iter().copied().collect();
        Tensor::from_vec(be, array.shape(), &values)
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
        assert_eq!(self.numel(), shape.iter().product::<usize>(), "cannot reshape {:?} to {shape:?}", self.shape);
        self.shape = shape.to_vec();
        self
    }
    /// A copy on the same backend.
    pub fn duplicate(&self, be: &B) -> Self {
        let mut buf = be.alloc(self.numel());
        be.copy(&self.buf, &mut buf);
        Tensor { buf: Arc::new(buf), shape: self.shape.clone() }
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
