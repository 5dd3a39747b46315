//! Builds the kernels in `kernels/*.cu`:
//!
//! * feature `cuda`: compiles each file to PTX with `nvcc` and writes `$OUT_DIR/kernels.rs`,
//!   the table of files, PTX and kernel names that `src/device.rs` loads;
//! * feature `emulate` (without `cuda`): compiles all files as C++ against the CPU emulator
//!   `kernels/emu/emu.hpp` into a static library, with a name → kernel dispatch table;
//! * neither: nothing (no toolkit needed).
//!
//! Kernel names are read from the sources: every `__global__` function (optionally after
//! `__launch_bounds__(...)`) is a kernel.
//!
//! * `NSL_CUDA_ARCH` picks the virtual architecture (default `compute_80`: the PTX is
//!   JIT-compiled by the driver for the GPU at hand, Ampere A100 and newer such as H100/H200).
//! * `NVCC` names the compiler; otherwise `$CUDA_PATH/bin/nvcc`, `$CUDA_ROOT/bin/nvcc`,
//!   `nvcc` on `PATH`, `/usr/local/cuda/bin/nvcc`, `/usr/lib/cuda/bin/nvcc` are tried in order.
//!
//! Each `kernels/NAME.cu` becomes `$OUT_DIR/NAME.ptx`, embedded by `src/device.rs` with
//! `include_str!`. The architecture is passed on as `NSL_CUDA_PTX_ARCH` for error messages.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const DEFAULT_ARCH: &str = "compute_80";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let cuda = env::var_os("CARGO_FEATURE_CUDA").is_some();
    let emulate = env::var_os("CARGO_FEATURE_EMULATE").is_some();
    if !cuda && !emulate {
        return;
    }
    let kernels = Path::new(&env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR")).join("kernels");
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    println!("cargo:rerun-if-changed=kernels");
    let sources = kernel_sources(&kernels);
    if cuda {
        build_ptx(&kernels, &out, &sources);
    } else {
        build_emulator(&kernels, &out, &sources);
    }
}

/// `kernels/*.cu` in name order, with the kernels each defines.
fn kernel_sources(dir: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "cu" || x == "cuh" || x == "hpp"))
        .collect();
    files.sort();
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    println!("cargo:rerun-if-changed={}", dir.join("emu").join("emu.hpp").display());
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "cu"))
        .map(|p| {
            let text =
                std::fs::read_to_string(&p).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", p.display())));
            let names = kernel_names(&text);
            (p, names)
        })
        .collect()
}

/// Names of the `__global__` functions in CUDA source `text`.
fn kernel_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("__global__") {
        rest = &rest[i + "__global__".len()..];
        let mut s = rest.trim_start();
        s = s.strip_prefix("void").unwrap_or(s).trim_start();
        if let Some(after) = s.strip_prefix("__launch_bounds__") {
            let close = after.find(')').unwrap_or(0);
            s = after[close + 1..].trim_start();
        }
        let name: String = s.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        if !name.is_empty() && s[name.len()..].trim_start().starts_with('(') {
            names.push(name);
        }
    }
    names
}

fn stem(p: &Path) -> String {
    p.file_stem().expect("file stem").to_string_lossy().into_owned()
}

fn build_ptx(kernels: &Path, out: &Path, sources: &[(PathBuf, Vec<String>)]) {
    println!("cargo:rerun-if-env-changed=NSL_CUDA_ARCH");
    println!("cargo:rerun-if-env-changed=NVCC");
    println!("cargo:rerun-if-env-changed=CUDA_PATH");
    println!("cargo:rerun-if-env-changed=CUDA_ROOT");

    let arch = env::var("NSL_CUDA_ARCH").ok().filter(|a| !a.trim().is_empty()).unwrap_or_else(|| DEFAULT_ARCH.into());
    println!("cargo:rustc-env=NSL_CUDA_PTX_ARCH={arch}");

    let Some(nvcc) = find_nvcc() else {
        fail(
            "nvcc (the CUDA compiler) was not found.\n\
             The `cuda` feature compiles the kernels in nsl-cuda/kernels/*.cu with nvcc. Either\n\
             \x20 * install the CUDA toolkit (Debian/Ubuntu: `apt-get install nvidia-cuda-toolkit`, or NVIDIA's\n\
             \x20   installer; see nsl-cuda/ci-check.sh) and put nvcc on PATH or set NVCC=/path/to/nvcc, or\n\
             \x20 * build without `--features cuda` (the CPU backend needs no toolkit).",
        );
    };

    let mut table = String::from("const KERNEL_FILES: &[KernelFile] = &[\n");
    for (src, names) in sources {
        let stem = stem(src);
        let ptx = out.join(format!("{stem}.ptx"));
        let mut cmd = Command::new(&nvcc);
        cmd.arg("--ptx")
            .arg(format!("-arch={arch}"))
            .arg("-O3")
            .arg("-std=c++14")
            .arg("-I")
            .arg(kernels)
            .arg("-o")
            .arg(&ptx)
            .arg(src);
        let output = cmd.output().unwrap_or_else(|e| {
            fail(&format!(
                "could not run {} ({e}); install the CUDA toolkit or build without --features cuda",
                nvcc.display()
            ))
        });
        if !output.status.success() {
            fail(&format!(
                "nvcc failed on {} for -arch={arch} ({}):\n{}{}\n(set NSL_CUDA_ARCH to a virtual architecture this nvcc supports, e.g. compute_80)",
                src.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        table +=
            &format!("    KernelFile {{ file: \"kernels/{stem}.cu\", ptx: ptx!(\"{stem}\"), kernels: &{names:?} }},\n");
    }
    table += "];\n";
    write(&out.join("kernels.rs"), &table);
}

/// The CPU emulator: one C++ translation unit with every kernel file and a dispatch table.
#[cfg(feature = "emulate")]
fn build_emulator(kernels: &Path, out: &Path, sources: &[(PathBuf, Vec<String>)]) {
    let mut tu = String::from("// generated by nsl-cuda/build.rs\n#include \"emu/emu.hpp\"\n");
    for (src, _) in sources {
        tu += &format!("#include \"{}\"\n", src.display());
    }
    tu +=
        "\nstruct EmuKernel { const char* name; void (*invoke)(void**); };\nstatic const EmuKernel EMU_KERNELS[] = {\n";
    for name in sources.iter().flat_map(|(_, n)| n) {
        tu += &format!("    {{\"{name}\", [](void** p) {{ emu_invoke({name}, p); }}}},\n");
    }
    tu += r#"};

extern "C" int nsl_emu_launch(const char* name, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                              unsigned bz, unsigned shmem, void** params) {
    for (const EmuKernel& k : EMU_KERNELS)
        if (std::strcmp(k.name, name) == 0) return emu_run(k.name, k.invoke, gx, gy, gz, bx, by, bz, shmem, params);
    return 1;
}
"#;
    let file = out.join("emu_all.cpp");
    write(&file, &tu);
    cc::Build::new()
        .cpp(true)
        .file(&file)
        .include(kernels)
        .flag("-std=c++17")
        .flag("-ffp-contract=off")
        .warnings(false)
        .opt_level(2)
        .compile("nsl_cuda_emu");
}

#[cfg(not(feature = "emulate"))]
fn build_emulator(_: &Path, _: &Path, _: &[(PathBuf, Vec<String>)]) {
    unreachable!("build_emulator without the `emulate` feature")
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", path.display())));
}

fn find_nvcc() -> Option<PathBuf> {
    if let Some(p) = env::var_os("NVCC") {
        return Some(PathBuf::from(p));
    }
    let mut candidates: Vec<PathBuf> = ["CUDA_PATH", "CUDA_ROOT", "CUDA_TOOLKIT_ROOT_DIR"]
        .iter()
        .filter_map(env::var_os)
        .map(|root| PathBuf::from(root).join("bin").join("nvcc"))
        .collect();
    if let Some(path) = env::var_os("PATH") {
        candidates.extend(env::split_paths(&path).map(|d| d.join("nvcc")));
    }
    candidates.push("/usr/local/cuda/bin/nvcc".into());
    candidates.push("/usr/lib/cuda/bin/nvcc".into());
    candidates.into_iter().find(|p| p.is_file())
}

fn fail(msg: &str) -> ! {
    eprintln!("\nerror: nsl-cuda (feature `cuda`): {msg}\n");
    panic!("nsl-cuda (feature `cuda`): {msg}");
}
