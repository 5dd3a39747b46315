//! File helpers every part of nsl writes through: atomic writes, and I/O errors in words that
//! say what to do.

use std::io::Write;
use std::path::Path;

/// Write `data` to `path` through a temp file in the same folder (`<path>.tmp`), fsync, then a
/// rename: a kill at any point leaves the old file or the new one, never half of one. The
/// folder is created if needed; a failed write removes the temp file.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(data)?;
        file.sync_all()
    });
    written.and_then(|()| std::fs::rename(&tmp, path)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// An I/O error in words that say what to do about it.
pub fn io_hint(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "not found: check the path".into(),
        K::PermissionDenied => "permission denied: choose a path you can write to (e.g. under your home folder)".into(),
        K::AlreadyExists => "already exists: choose another path or remove it".into(),
        K::StorageFull => "the disk is full: free some space or write somewhere else".into(),
        K::IsADirectory => "is a folder, where a file was expected: give the file inside it".into(),
        K::NotADirectory => "part of the path is a file, where a folder was expected: choose another path".into(),
        K::ReadOnlyFilesystem => "the file system is read-only: write somewhere else".into(),
        _ => e.to_string(),
    }
}
