//! Optimiser updates (`kernels/optim.cu`; see [`nsl_core::SgdStep`], [`nsl_core::AdamStep`]),
//! elementwise in unfused `f32` with the CPU backend's operation order.

use nsl_core::{AdamStep, SgdStep};

use crate::launch::{int, p, Arg};
use crate::{Cuda, CudaBuf};

// Boilerplate: each optimiser is one elementwise launch whose arguments are its step's fields
// in the kernel's order, so the two argument lists have the same shape.

/// See [`nsl_core::Backend::sgd_step`].
pub(crate) fn sgd_step(be: &Cuda, s: &SgdStep, w: &mut CudaBuf, g: &CudaBuf, v: &mut CudaBuf) {
    let n = w.len();
    be.launch_1d(
        "nsl_sgd_step",
        n,
        &[
            int(n),
            Arg::F32(s.lr),
            Arg::F32(s.momentum),
            Arg::F32(1.0 - s.dampening),
            Arg::F32(s.weight_decay),
            Arg::I32(s.first_step as i32),
            p(w),
            p(g),
            p(v),
        ],
    );
}

/// See [`nsl_core::Backend::adam_step`].
pub(crate) fn adam_step(be: &Cuda, s: &AdamStep, w: &mut CudaBuf, g: &CudaBuf, m: &mut CudaBuf, v: &mut CudaBuf) {
    let (c1, c2) = s.corrections();
    let n = w.len();
    be.launch_1d(
        "nsl_adam_step",
        n,
        &[
            int(n),
            Arg::F32(s.lr),
            Arg::F32(s.beta1),
            Arg::F32(s.beta2),
            Arg::F32(s.eps),
            Arg::F32(s.weight_decay),
            Arg::F32(c1),
            Arg::F32(c2),
            p(w),
            p(g),
            p(m),
            p(v),
        ],
    );
}
