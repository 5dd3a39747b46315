//! The current thread's handling of subnormal floats (|x| < 2⁻¹²⁶ ≈ 1.18e-38).
//!
//! x86 cores compute with subnormal operands or results through a microcode assist that costs
//! about a hundred cycles per instruction. A network whose activations or gradients drift into
//! that range (a collapsed run, vanishing gradients) then trains several times slower with the
//! same arithmetic. Flushing turns subnormal results into 0 (x86 FTZ, aarch64 FZ) and reads
//! subnormal operands as 0 (x86 DAZ); this is `torch.set_flush_denormal(True)`. It changes
//! numerics (values below 2⁻¹²⁶ become 0), so it is off unless asked for.
//!
//! The mode is a per-thread register (MXCSR, FPCR): [`set_flush_denormals`] changes it for
//! the calling thread only.

/// MXCSR bits: flush-to-zero (15) and denormals-are-zero (6).
#[cfg(target_arch = "x86_64")]
const MXCSR_FTZ_DAZ: u32 = (1 << 15) | (1 << 6);

/// FPCR bit 24: flush-to-zero.
#[cfg(target_arch = "aarch64")]
const FPCR_FZ: u64 = 1 << 24;

/// Whether this target can flush subnormals (x86-64 and aarch64).
pub const SUPPORTED: bool = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));

/// Whether the calling thread flushes subnormals to zero.
pub fn flushes_denormals() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        read_mxcsr() & MXCSR_FTZ_DAZ == MXCSR_FTZ_DAZ
    }
    #[cfg(target_arch = "aarch64")]
    {
        read_fpcr() & FPCR_FZ != 0
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// Make the calling thread flush subnormals to zero (`on`) or compute them exactly (`!on`,
/// the IEEE default). Returns false, changing nothing, where the target cannot ([`SUPPORTED`]).
pub fn set_flush_denormals(on: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let csr = read_mxcsr();
        write_mxcsr(if on { csr | MXCSR_FTZ_DAZ } else { csr & !MXCSR_FTZ_DAZ });
        true
    }
    #[cfg(target_arch = "aarch64")]
    {
        let fpcr = read_fpcr();
        write_fpcr(if on { fpcr | FPCR_FZ } else { fpcr & !FPCR_FZ });
        true
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = on;
        false
    }
}

#[cfg(target_arch = "x86_64")]
fn read_mxcsr() -> u32 {
    let mut csr = 0u32;
    // SAFETY: stmxcsr stores the 32-bit control register into the pointed-to u32.
    unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags)) };
    csr
}

#[cfg(target_arch = "x86_64")]
fn write_mxcsr(csr: u32) {
    // SAFETY: ldmxcsr loads a value read from MXCSR with only the FTZ/DAZ bits changed, which
    // are valid on every x86-64 core (SSE2 is baseline).
    unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &csr, options(nostack, preserves_flags, readonly)) };
}

#[cfg(target_arch = "aarch64")]
fn read_fpcr() -> u64 {
    let fpcr: u64;
    // SAFETY: reading FPCR has no side effects.
    unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
    fpcr
}

#[cfg(target_arch = "aarch64")]
fn write_fpcr(fpcr: u64) {
    // SAFETY: writes back the value read from FPCR with only the FZ bit changed.
    unsafe { std::arch::asm!("msr fpcr, {}", in(reg) fpcr, options(nomem, nostack, preserves_flags)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each test runs on its own thread, so changing this thread's mode cannot leak.
    #[test]
    fn flushing_turns_subnormal_products_into_zero_and_back() {
        assert!(!flushes_denormals(), "threads start with the IEEE default");
        let exact = std::hint::black_box(1e-19f32) * std::hint::black_box(1e-19f32);
        assert!(exact.is_subnormal(), "1e-38 is subnormal in f32: {exact:e}");
        if !SUPPORTED {
            assert!(!set_flush_denormals(true));
            return;
        }
        assert!(set_flush_denormals(true));
        assert!(flushes_denormals());
        let flushed = std::hint::black_box(1e-19f32) * std::hint::black_box(1e-19f32);
        assert_eq!(flushed, 0.0);
        let normal = std::hint::black_box(1e-18f32) * std::hint::black_box(1e-18f32);
        assert!(normal.is_normal(), "1e-36 is not subnormal and is kept: {normal:e}");
        assert!(set_flush_denormals(false));
        assert!(!flushes_denormals());
        let back = std::hint::black_box(1e-19f32) * std::hint::black_box(1e-19f32);
        assert_eq!(back, exact);
    }
}
