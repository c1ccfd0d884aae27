//! The compiled-artifact cache: `<cache_dir>/<engine fingerprint>/<sha256>.cwasm`.
//!
//! Compiling a large guest takes seconds; loading its precompiled artifact takes tens of
//! milliseconds, so a restart or a manifest-only change does not recompile. Artifacts
//! are keyed by the SHA-256 of the `.wasm` (same bytes, same machine code) under the
//! host's artifact fingerprint (another wasmtime version or engine configuration gets
//! its own directory rather than a failed load). They are written atomically, so a
//! crash leaves either no artifact or a whole one. An artifact that fails to load is
//! deleted and the component recompiled: the cache is never a reason a deploy fails.
//!
//! The cache is bounded ([`prune`]): it keeps the artifacts of what is deployed, and of
//! the [`SPARE_ARTIFACTS`] most recently used others (so removing a component and adding
//! it back, or rolling back a version, stays fast); other engines' directories go.
//!
//! Blocking throughout: call it from `spawn_blocking`.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime};

use choreo_host::{Component, Host};

use crate::error::Error;
use crate::files::write_atomic;

/// A compiled component, and whether it came from the cache.
pub(crate) struct Compiled {
    pub(crate) component: Component,
    pub(crate) from_cache: bool,
}

/// Loads the artifact for `hash` from the cache, or compiles `wasm` and caches it.
pub(crate) fn compile_cached(
    host: &Host,
    cache_dir: &Path,
    file: &Path,
    wasm: &[u8],
    hash: &str,
) -> Result<Compiled, Error> {
    let source_name = file.display().to_string();
    let dir = cache_dir.join(host.artifact_fingerprint());
    let name = format!("{hash}.cwasm");
    let artifact = dir.join(&name);
    match fs::read(&artifact) {
        Ok(bytes) => {
            // SAFETY: `load_precompiled` trusts the bytes as machine code. They come from
            // this deployer's own cache directory, which only it writes (through
            // `Host::precompile` and an atomic rename, so never a partial file), under a
            // directory named by this host's artifact fingerprint, so they were produced
            // by an engine with the same version and settings. wasmtime also checks its
            // own compatibility header and refuses a foreign or truncated artifact; such
            // a refusal is handled below by deleting the file and recompiling.
            match unsafe { host.load_precompiled(&source_name, &bytes) } {
                Ok(component) => {
                    // Recency for `prune`; failing to record it only makes eviction less apt.
                    let _ = fs::File::open(&artifact)
                        .and_then(|file| file.set_modified(SystemTime::now()));
                    return Ok(Compiled {
                        component,
                        from_cache: true,
                    });
                }
                Err(err) => {
                    tracing::warn!(
                        file = %file.display(),
                        artifact = %artifact.display(),
                        error = %err,
                        "cached artifact does not load; deleting it and recompiling"
                    );
                    if let Err(err) = fs::remove_file(&artifact) {
                        tracing::warn!(artifact = %artifact.display(), error = %err, "cannot delete the cached artifact");
                    }
                }
            }
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => {
            tracing::warn!(artifact = %artifact.display(), error = %err, "cannot read the cached artifact; recompiling");
        }
    }

    let component = host
        .compile(&source_name, wasm)
        .map_err(|reason| Error::Component {
            file: file.to_path_buf(),
            reason,
        })?;
    // A cache that cannot be written costs the next load a compile, nothing more.
    let stored = host
        .precompile(&source_name, &component)
        .map_err(|reason| reason.to_string())
        .and_then(|bytes| {
            fs::create_dir_all(&dir).map_err(|err| err.to_string())?;
            write_atomic(&dir, &name, &bytes).map_err(|err| err.chain())
        });
    if let Err(error) = stored {
        tracing::warn!(file = %file.display(), artifact = %artifact.display(), error = %error, "cannot cache the compiled artifact");
    }
    Ok(Compiled {
        component,
        from_cache: false,
    })
}

/// Artifacts kept beyond those of deployed components, most recently used first.
pub const SPARE_ARTIFACTS: usize = 16;

/// Temp files older than this are left over from a crash mid-write.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Bounds the cache: under this host's fingerprint, keeps the artifacts named in `keep`
/// (content hashes of deployed components) and the `spare` most recently used others;
/// deletes everything else, and the directories of other fingerprints. Returns how many
/// entries it deleted. Failures are logged, never returned: pruning is housekeeping.
pub(crate) fn prune(host: &Host, cache_dir: &Path, keep: &HashSet<String>, spare: usize) -> usize {
    let fingerprint = host.artifact_fingerprint();
    let mut deleted = 0;
    let Ok(entries) = fs::read_dir(cache_dir) else {
        return 0;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if entry.file_name().to_string_lossy() == fingerprint.as_str() {
            continue;
        }
        // Another wasmtime version or engine configuration: never loadable again here.
        let removed = if path.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match removed {
            Ok(()) => deleted += 1,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot prune the artifact cache")
            }
        }
    }
    let dir = cache_dir.join(&fingerprint);
    let Ok(entries) = fs::read_dir(&dir) else {
        return deleted;
    };
    let now = SystemTime::now();
    let mut unused: Vec<(SystemTime, std::path::PathBuf)> = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if name.starts_with('.') {
            let stale = now.duration_since(modified).unwrap_or_default() > STALE_TEMP;
            if stale && fs::remove_file(&path).is_ok() {
                deleted += 1;
            }
            continue;
        }
        let Some(hash) = name.strip_suffix(".cwasm") else {
            continue;
        };
        if !keep.contains(hash) {
            unused.push((modified, path));
        }
    }
    unused.sort_by_key(|(used, _)| std::cmp::Reverse(*used));
    for (_, path) in unused.into_iter().skip(spare) {
        match fs::remove_file(&path) {
            Ok(()) => deleted += 1,
            Err(err) => {
                tracing::warn!(path = %path.display(), error = %err, "cannot prune the artifact cache")
            }
        }
    }
    deleted
}
