//! `cargo xtask repro` exits non-zero, naming the rows, when rows could not run.

use std::process::Command;

#[test]
fn rows_that_cannot_run_make_the_command_fail() {
    let tmp = std::env::temp_dir().join(format!("nsl-test-xtask-exit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();
    // paper scale reads CIFAR-10 from --data, which is empty here
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["repro", "--scale", "paper", "--only", "table1", "--threads", "1"])
        .arg("--data")
        .arg(tmp.join("data"))
        .arg("--out")
        .arg(tmp.join("out"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_dir_all(&tmp);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("3 rows could not run") && err.contains("table1 Baseline CNN"), "{err}");
    assert!(err.contains("data_batch_1.bin") && err.contains("fetch-data"), "the report says why: {err}");
}
