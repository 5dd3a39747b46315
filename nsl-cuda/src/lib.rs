//! CUDA backend for nsl. The kernels and the `cust` binding arrive with the CUDA issue; without
//! the `cuda` feature this crate is empty so the workspace builds on machines with no toolkit.
