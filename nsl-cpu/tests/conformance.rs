//! The backend conformance suite of nsl-core (every op against its `f64` reference, every
//! backward against finite differences, every fused op against its composed reference), on a
//! two-thread `Cpu`.

nsl_core::conformance_suite!(nsl_cpu::Cpu::with_threads(2));
