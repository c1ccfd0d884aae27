//! The deploy folder's files: which names count, reading a component with its manifest,
//! content hashes, and atomic writes.
//!
//! A deployable unit is a stem: `<stem>.wasm` and its optional `<stem>.toml`. Hidden
//! files and the temp names of editors and copy tools are ignored, so that a file is
//! only looked at under its final name; writers that cannot rename still get a
//! half-written file refused by the compiler, and the running version stays.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::error::{Error, io_error};
use crate::manifest::MAX_MANIFEST_BYTES;

/// Largest component file accepted, in bytes. The largest guests measured (a Python
/// component) are about 18 MB; this leaves room while refusing something that is
/// clearly not a handler before it is read into memory.
pub const MAX_COMPONENT_BYTES: u64 = 256 << 20;

/// Suffixes of files that are still being written by editors and copy tools.
const TEMP_SUFFIXES: [&str; 6] = [".tmp", "~", ".part", ".swp", ".swx", ".crdownload"];

/// The stem of a deployable file name (`orders.wasm` or `orders.toml` → `orders`), or
/// `None` for a name the deployer ignores.
pub(crate) fn stem_of(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if name.starts_with('.') || name.starts_with('#') {
        return None;
    }
    if TEMP_SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
        return None;
    }
    let stem = name
        .strip_suffix(".wasm")
        .or_else(|| name.strip_suffix(".toml"))?;
    (!stem.is_empty()).then(|| stem.to_owned())
}

/// The component and manifest paths of a stem.
pub(crate) fn unit_paths(dir: &Path, stem: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{stem}.wasm")),
        dir.join(format!("{stem}.toml")),
    )
}

/// What is on disk for one stem right now.
#[derive(Debug)]
pub(crate) struct UnitFiles {
    /// The component's bytes, `None` when the file does not exist.
    pub(crate) wasm: Option<Vec<u8>>,
    /// SHA-256 of `wasm`, lower-case hex.
    pub(crate) hash: String,
    /// The manifest's text, `None` when there is none.
    pub(crate) manifest: Option<String>,
}

/// Reads a stem's files. Blocking: call it off the async threads.
pub(crate) fn read_unit(wasm_path: &Path, manifest_path: &Path) -> Result<UnitFiles, Error> {
    let Some(wasm) = read_capped(wasm_path, MAX_COMPONENT_BYTES)? else {
        return Ok(UnitFiles {
            wasm: None,
            hash: String::new(),
            manifest: None,
        });
    };
    let manifest = read_manifest(manifest_path)?;
    Ok(UnitFiles {
        hash: sha256_hex(&wasm),
        wasm: Some(wasm),
        manifest,
    })
}

/// The manifest beside a component, if there is one.
pub(crate) fn read_manifest(path: &Path) -> Result<Option<String>, Error> {
    let Some(bytes) = read_capped(path, MAX_MANIFEST_BYTES)? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| Error::Manifest {
            file: path.to_path_buf(),
            message: "is not UTF-8 text".into(),
        })
}

/// Reads a file of at most `limit` bytes; `None` when it does not exist.
fn read_capped(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, Error> {
    let size = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error("read", path)(err)),
    };
    if size > limit {
        return Err(Error::TooLarge {
            file: path.to_path_buf(),
            size,
            limit,
        });
    }
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        // Removed between the two calls: the removal's own event follows.
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_error("read", path)(err)),
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `dir/name` so that readers see either the old file or the whole
/// new one: write a hidden temp file in the same directory, fsync it, rename it over the
/// target, then fsync the directory so the rename itself survives a crash.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<PathBuf, Error> {
    // Unique per process and call, so concurrent writers never share a temp file.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let target = dir.join(name);
    let result = (|| {
        let mut file = File::create(&temp).map_err(io_error("create", &temp))?;
        file.write_all(bytes).map_err(io_error("write", &temp))?;
        file.sync_all().map_err(io_error("sync", &temp))?;
        fs::rename(&temp, &target).map_err(io_error("rename into place", &target))?;
        // Directory fsync is what makes a rename durable on Linux; where directories
        // cannot be opened (other platforms), the rename is still atomic.
        if let Ok(dir_handle) = File::open(dir) {
            dir_handle.sync_all().map_err(io_error("sync", dir))?;
        }
        Ok(target.clone())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Copies `wasm` into `deploy_dir` atomically, its manifest (`<stem>.toml` beside it)
/// first, so the watcher never loads the new component with the old manifest. An
/// existing manifest in `deploy_dir` is left as is when `wasm` has none beside it.
/// Returns the deployed path.
pub fn install(wasm: &Path, deploy_dir: &Path) -> Result<PathBuf, Error> {
    let not_deployable = |reason| Error::NotDeployable {
        file: wasm.to_path_buf(),
        reason,
    };
    let name = wasm
        .file_name()
        .and_then(|name| name.to_str())
        .ok_or_else(|| not_deployable("its name is not valid UTF-8"))?;
    if !name.ends_with(".wasm") {
        return Err(not_deployable("only `.wasm` files are deployed"));
    }
    let stem = stem_of(wasm).ok_or_else(|| {
        not_deployable("hidden and temporary names are ignored by the deploy folder watcher")
    })?;
    fs::create_dir_all(deploy_dir).map_err(io_error("create directory", deploy_dir))?;
    let (_, source_manifest) = unit_paths(wasm.parent().unwrap_or(Path::new(".")), &stem);
    if let Some(text) = read_manifest(&source_manifest)? {
        write_atomic(deploy_dir, &format!("{stem}.toml"), text.as_bytes())?;
    }
    let bytes = read_capped(wasm, MAX_COMPONENT_BYTES)?.ok_or_else(|| Error::Io {
        action: "read",
        path: wasm.to_path_buf(),
        source: io::ErrorKind::NotFound.into(),
    })?;
    write_atomic(deploy_dir, name, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_final_wasm_and_toml_names_count() {
        let stem = |name: &str| stem_of(Path::new("deploy").join(name).as_path());
        assert_eq!(stem("orders.wasm").as_deref(), Some("orders"));
        assert_eq!(stem("orders.toml").as_deref(), Some("orders"));
        assert_eq!(stem("orders.v2.wasm").as_deref(), Some("orders.v2"));
        for ignored in [
            ".orders.wasm",
            ".orders.wasm.123.0.tmp",
            "orders.wasm.tmp",
            "orders.wasm~",
            "orders.wasm.part",
            ".orders.wasm.swp",
            "#orders.wasm#",
            "orders.txt",
            "orders",
            ".wasm",
            "README.md",
        ] {
            assert_eq!(stem(ignored), None, "{ignored}");
        }
    }
}
