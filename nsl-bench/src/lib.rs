//! Benchmarks for nsl (work in progress).
