//! Run a job on the backend named at run time (`--backend cpu|cuda`), for the `nsl` CLI and
//! `cargo xtask`. The CUDA backend exists only when this crate is built with `--features cuda`;
//! without it, `cuda` is refused with the reason and the fix.

use nsl_core::Backend;
use nsl_cpu::Cpu;

/// Backend names accepted by [`run_on_backend`].
pub const BACKENDS: [&str; 2] = ["cpu", "cuda"];

/// A job generic over the backend it runs on.
pub trait BackendJob {
    type Output;
    fn run<B: Backend>(self, be: &B) -> Result<Self::Output, String>;
}

/// The CPU backend with `threads` workers (0 = all cores).
pub fn cpu(threads: usize) -> Cpu {
    if threads == 0 {
        Cpu::new()
    } else {
        Cpu::with_threads(threads)
    }
}

/// Run `job` on the backend called `name` (`cpu` with `threads` workers, or `cuda`).
///
/// ```
/// use nsl_models::backend_choice::{run_on_backend, BackendJob};
/// struct Name;
/// impl BackendJob for Name {
///     type Output = String;
///     fn run<B: nsl_core::Backend>(self, be: &B) -> Result<String, String> {
///         Ok(be.name())
///     }
/// }
/// assert!(run_on_backend("cpu", 1, Name).unwrap().contains("cpu"));
/// assert!(run_on_backend("tpu", 1, Name).unwrap_err().contains("expected cpu or cuda"));
/// ```
pub fn run_on_backend<J: BackendJob>(name: &str, threads: usize, job: J) -> Result<J::Output, String> {
    match name {
        "cpu" => job.run(&cpu(threads)),
        "cuda" => run_on_cuda(job),
        other => Err(format!("unknown backend `{other}`; expected cpu or cuda")),
    }
}

#[cfg(feature = "cuda")]
fn run_on_cuda<J: BackendJob>(job: J) -> Result<J::Output, String> {
    let be = nsl_cuda::Cuda::new().map_err(|e| e.to_string())?;
    job.run(&be)
}

#[cfg(not(feature = "cuda"))]
fn run_on_cuda<J: BackendJob>(_job: J) -> Result<J::Output, String> {
    Err(nsl_cuda::available().expect_err("nsl-cuda without the cuda feature has no device"))
}
