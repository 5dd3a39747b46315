//! # nsl-core
//!
//! Neural similarity learning (Liu et al., NeurIPS 2019): a convolution computes `wᵀx`; NSL
//! computes `wᵀ M x` with a learnable similarity `M`. This crate holds what every backend and
//! model shares: the [`Backend`] trait (storage + primitive ops), [`Tensor`], the layers in
//! [`nn`], the [`Similarity`] trait with every similarity of the paper, optimisers and the
//! finite-difference gradient checker.

pub mod backend;
pub mod geometry;
pub mod rng;
pub mod tensor;

pub use backend::{AdamStep, Backend, BatchNormDims, CrossEntropy, Gemm, Map, SgdStep};
pub use geometry::Window;
pub use rng::Rng;
pub use tensor::Tensor;
