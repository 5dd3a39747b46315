//! The crate builds in every feature combination, and `available()` says why CUDA cannot be
//! used. Without features this needs no CUDA toolkit and no GPU.

#[test]
#[cfg(not(any(feature = "cuda", feature = "emulate")))]
fn without_the_feature_available_explains_how_to_enable_it() {
    let e = nsl_cuda::available().unwrap_err();
    assert!(e.starts_with("nsl-cuda was built without the `cuda` feature"), "{e}");
    assert!(e.contains("--features cuda"), "{e}");
}

#[test]
#[cfg(all(feature = "emulate", not(feature = "cuda")))]
fn the_emulator_is_not_reported_as_a_gpu() {
    let e = nsl_cuda::available().unwrap_err();
    assert!(e.contains("`emulate` feature only"), "{e}");
}

#[test]
#[cfg(feature = "cuda")]
fn with_the_feature_available_is_ok_or_names_the_missing_device() {
    use std::io::Write;
    match nsl_cuda::available() {
        Ok(()) => {}
        Err(e) => {
            // Any failure other than "no device" (PTX that does not load, …) is a real error.
            assert!(e.starts_with("no CUDA-capable device is detected: build without --features cuda"), "{e}");
            let _ = writeln!(std::io::stderr(), "skipped: no CUDA device ({e}) [available]");
        }
    }
}
