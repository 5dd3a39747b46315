//! # nsl-core
//!
//! Neural similarity learning (Liu et al., NeurIPS 2019): a convolution computes `wᵀx`; NSL
//! computes `wᵀ M x` with a learnable similarity `M`. This crate holds what every backend and
//! model shares: the [`Backend`] trait (storage + primitive ops), [`Tensor`], the layers in
//! [`nn`], the [`similarity::Similarity`] trait with every similarity of the paper, optimisers
//! and the finite-difference gradient checker.
//!
//! ## Adding a similarity
//!
//! A new static similarity needs this crate only: implement [`similarity::SimilarityMatrix`]
//! (the `k²×k²` block `M_s(θ)` and its chain rule, on the host) and wrap it in
//! [`similarity::Static`]; forward, backward and `fold` then run through the [`Backend`] ops on
//! every backend. Here a symmetric similarity `M_s = (A + Aᵀ)/2` is defined and trained:
//!
//! ```
//! use nsl_core::nn::{Layer, Mode, NslConv, Padding};
//! use nsl_core::optim::Optimizer;
//! use nsl_core::similarity::{SimilarityMatrix, Static};
//! use nsl_core::{Rng, Tensor};
//! use nsl_cpu::Cpu;
//!
//! /// `M_s = (A + Aᵀ)/2`, starting at `I`.
//! struct Symmetric;
//!
//! impl SimilarityMatrix for Symmetric {
//!     fn name(&self) -> String {
//!         "symmetric".into()
//!     }
//!     fn init(&self, n: usize) -> Vec<f32> {
//!         (0..n * n).map(|i| f32::from(i / n == i % n)).collect()
//!     }
//!     fn matrix(&self, a: &[f32], n: usize) -> Vec<f32> {
//!         (0..n * n).map(|i| 0.5 * (a[i] + a[(i % n) * n + i / n])).collect()
//!     }
//!     fn matrix_backward(&self, _a: &[f32], n: usize, dm: &[f32], da: &mut [f32]) {
//!         for i in 0..n * n {
//!             da[i] += 0.5 * (dm[i] + dm[(i % n) * n + i / n]);
//!         }
//!     }
//! }
//!
//! let be = Cpu::new();
//! let mut rng = Rng::new(0);
//! let sim = Static::boxed(&be, "sym", Symmetric, 9);
//! let mut layer = NslConv::new(&be, &mut rng, "conv", (2, 4), (3, 1, Padding::Same), 1.0, 0.0, sim);
//! // regress the layer's output onto a fixed random target
//! let x = Tensor::from_vec(&be, &[4, 6, 6, 2], &rng.normal_vec(4 * 36 * 2, 1.0));
//! let target = rng.normal_vec(4 * 36 * 4, 1.0);
//! let mut opt = Optimizer::momentum(0.9);
//! let mut losses = vec![];
//! for _ in 0..40 {
//!     let y = layer.forward(&be, &x, Mode::TRAIN).to_vec(&be);
//!     let n = y.len() as f32;
//!     let diff: Vec<f32> = y.iter().zip(&target).map(|(a, b)| a - b).collect();
//!     losses.push(diff.iter().map(|d| d * d).sum::<f32>() / n);
//!     let dy: Vec<f32> = diff.iter().map(|d| 2.0 * d / n).collect();
//!     layer.backward(&be, &Tensor::from_vec(&be, &[4, 6, 6, 4], &dy));
//!     opt.step(&be, 0.05, &mut layer);
//! }
//! assert!(losses[39] < 0.8 * losses[0], "loss should fall: {losses:?}");
//! // the learned similarity is still symmetric and has moved away from I
//! let mut theta = vec![];
//! layer.similarity.visit_params(&mut |p| theta = p.value.to_vec(&be));
//! let m = Symmetric.matrix(&theta, 9);
//! assert!((0..81).all(|i| m[i] == m[(i % 9) * 9 + i / 9]));
//! assert!((0..81).any(|i| (m[i] - f32::from(i / 9 == i % 9)).abs() > 1e-3));
//! ```

pub mod backend;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod geometry;
pub mod gradcheck;
pub mod nn;
pub mod optim;
pub mod param;
pub mod rng;
pub mod similarity;
pub mod tensor;

pub use backend::{
    AdamStep, Backend, BackendError, BatchNormDims, ConvScale, CrossEntropy, Gemm, Kernels, Map, Patch, SgdStep,
};
pub use geometry::Window;
pub use param::{Param, Role};
pub use rng::Rng;
pub use similarity::Similarity;
pub use tensor::Tensor;
