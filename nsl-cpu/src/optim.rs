//! Optimiser updates (see [`nsl_core::SgdStep`], [`nsl_core::AdamStep`]).

use nsl_core::{AdamStep, SgdStep};
use rayon::prelude::*;

use crate::par::{CHUNK, PAR_MIN};
use crate::Cpu;

fn sgd_slice(s: &SgdStep, w: &mut [f32], g: &[f32], v: &mut [f32]) {
    let damp = 1.0 - s.dampening;
    for ((w, g), v) in w.iter_mut().zip(g).zip(v.iter_mut()) {
        let gp = g + s.weight_decay * *w;
        *v = if s.first_step { gp } else { s.momentum * *v + damp * gp };
        *w -= s.lr * *v;
    }
}

/// See [`nsl_core::Backend::sgd_step`].
pub(crate) fn sgd_step(cpu: &Cpu, s: &SgdStep, w: &mut [f32], g: &[f32], v: &mut [f32]) {
    if w.len() < PAR_MIN {
        sgd_slice(s, w, g, v);
    } else {
        cpu.install(|| {
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|((w, g), v)| sgd_slice(s, w, g, v))
        });
    }
}

fn adam_slice(s: &AdamStep, c: (f32, f32), w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let (b1, b2) = (s.beta1, s.beta2);
    for (((w, g), m), v) in w.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let gp = g + s.weight_decay * *w;
        *m = b1 * *m + (1.0 - b1) * gp;
        *v = b2 * *v + (1.0 - b2) * gp * gp;
        *w -= s.lr * (*m * c.0) / ((*v * c.1).sqrt() + s.eps);
    }
}

/// See [`nsl_core::Backend::adam_step`].
pub(crate) fn adam_step(cpu: &Cpu, s: &AdamStep, w: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
    let c = s.corrections();
    if w.len() < PAR_MIN {
        adam_slice(s, c, w, g, m, v);
    } else {
        cpu.install(|| {
            w.par_chunks_mut(CHUNK)
                .zip(g.par_chunks(CHUNK))
                .zip(m.par_chunks_mut(CHUNK))
                .zip(v.par_chunks_mut(CHUNK))
                .for_each(|(((w, g), m), v)| adam_slice(s, c, w, g, m, v))
        });
    }
}
