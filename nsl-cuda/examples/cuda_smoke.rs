//! Smoke test of the CUDA backend: open device 0, run one GEMM, check it against the host.
//!
//! ```text
//! cargo run -p nsl-cuda --features cuda --example cuda_smoke
//! ```
//! Prints the device, or the reason no device could be used (exit status 2), e.g.
//! `no CUDA-capable device is detected: build without --features cuda or run on a machine with
//! an NVIDIA GPU (...)`.

use nsl_core::{Backend, Gemm};
use nsl_cuda::Cuda;

fn main() {
    let be = match Cuda::new() {
        Ok(be) => be,
        Err(e) => {
            eprintln!("nsl-cuda smoke test: {e}");
            std::process::exit(2);
        }
    };
    println!("backend: {}", be.name());
    let (m, n, k) = (129, 65, 77);
    let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) / 8.0).collect();
    let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) / 8.0).collect();
    let mut c = be.alloc(m * n);
    be.gemm(&Gemm::new(m, n, k), &be.upload(&a), &be.upload(&b), &mut c);
    let got = be.download(&c);
    let mut worst = 0f64;
    for i in 0..m {
        for j in 0..n {
            let want: f64 = (0..k).map(|l| a[i * k + l] as f64 * b[l * n + j] as f64).sum();
            worst = worst.max((got[i * n + j] as f64 - want).abs());
        }
    }
    println!("gemm {m}x{n}x{k}: max |error| vs f64 host reference = {worst:.3e}");
    if worst > 1e-3 {
        eprintln!("nsl-cuda smoke test: GEMM result is wrong");
        std::process::exit(1);
    }
    println!("ok");
}
