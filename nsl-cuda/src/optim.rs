//! Optimiser updates (`kernels/optim.cu`; see [`nsl_core::SgdStep`], [`nsl_core::AdamStep`]),
//! elementwise in unfused `f32` with the CPU backend's operation order.

use nsl_core::{AdamStep, SgdStep};

use crate::launch::{int, p, Arg};
use crate::{Cuda, CudaBuf};

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

/// Bias-corrected Adam constants `(1/(1−β1ᵗ), 1/(1−β2ᵗ))`, computed as on the CPU.
fn adam_corrections(s: &AdamStep) -> (f32, f32) {
    assert!(s.t >= 1, "adam_step: step t must be >= 1, got {}", s.t);
    let t = s.t.min(i32::MAX as u64) as i32;
    let c1 = 1.0 / (1.0 - (s.beta1 as f64).powi(t));
    let c2 = 1.0 / (1.0 - (s.beta2 as f64).powi(t));
    (c1 as f32, c2 as f32)
}

/// See [`nsl_core::Backend::adam_step`].
pub(crate) fn adam_step(be: &Cuda, s: &AdamStep, w: &mut CudaBuf, g: &CudaBuf, m: &mut CudaBuf, v: &mut CudaBuf) {
    let (c1, c2) = adam_corrections(s);
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
