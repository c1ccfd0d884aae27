//! The [`Deployer`]: turns the files of one stem into a deployment, a removal, or a
//! problem, and keeps the registry and the ownership of names consistent.
//!
//! One stem is applied at a time (a mutex serialises `scan`, `watch` and the conflict
//! retries), so two files can never race for the same name. For each stem it keeps the
//! content last tried (hash of the `.wasm`, text of the manifest): an event that does
//! not change the content does nothing, a failed attempt is retried only when the
//! content changes, and a manifest change alone reloads the component (from the cache).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use choreo_core::{HandlerName, Timestamp};
use choreo_host::{HandlerInfo, HandlerSettings, Host};
use tokio::sync::Mutex;

use crate::Manifest;
use crate::cache::{SPARE_ARTIFACTS, compile_cached, prune};
use crate::error::{Error, io_error};
use crate::files::{UnitFiles, read_manifest, read_unit, stem_of, unit_paths};
use crate::registry::{Change, Deployment, Registry};

/// How long a file must stay quiet before it is loaded: copy tools and editors write in
/// bursts, and loading between two writes would only produce a spurious problem.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(150);

/// Where the deployer looks and what it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployConfig {
    /// The folder watched for `*.wasm` and `*.toml` (not recursive). Created if missing.
    pub deploy_dir: PathBuf,
    /// Where compiled artifacts are cached. Created if missing; this process must be its
    /// only writer (see `cache`).
    pub cache_dir: PathBuf,
    /// Quiet time per file before it is loaded. Default [`DEFAULT_DEBOUNCE`].
    pub debounce: Duration,
}

impl DeployConfig {
    /// A config with the default debounce.
    pub fn new(deploy_dir: impl Into<PathBuf>, cache_dir: impl Into<PathBuf>) -> Self {
        DeployConfig {
            deploy_dir: deploy_dir.into(),
            cache_dir: cache_dir.into(),
            debounce: DEFAULT_DEBOUNCE,
        }
    }
}

/// Watches the deploy folder and owns the registry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Deployer {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) host: Host,
    pub(crate) config: DeployConfig,
    registry: Registry,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// What was last tried per `.wasm` path, successful or not.
    attempted: HashMap<PathBuf, Attempt>,
    /// Stems that loaded but declare a name another file owns, by that name.
    conflicts: BTreeMap<String, HandlerName>,
}

#[derive(Debug, PartialEq, Eq)]
struct Attempt {
    hash: String,
    manifest: Option<String>,
}

impl Deployer {
    /// A deployer for `config`; creates the deploy and cache folders.
    pub fn new(host: Host, config: DeployConfig) -> Result<Self, Error> {
        for dir in [&config.deploy_dir, &config.cache_dir] {
            std::fs::create_dir_all(dir).map_err(io_error("create directory", dir))?;
        }
        Ok(Deployer {
            inner: Arc::new(Inner {
                host,
                config,
                registry: Registry::default(),
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// The registry this deployer writes; clones share it.
    pub fn registry(&self) -> Registry {
        self.inner.registry.clone()
    }

    /// Loads every component in the folder now, in file-name order (so when two files
    /// declare the same name, the first by name wins), and returns the changes to apply.
    /// Call it before reporting ready; failures are recorded as problems.
    pub async fn scan(&self) -> Vec<Change> {
        let mut changes = Vec::new();
        for stem in self.stems_on_disk().await {
            changes.extend(self.apply(&stem).await);
        }
        self.prune_cache().await;
        changes
    }

    /// Bounds the artifact cache to what is deployed plus a few spares (see `cache`).
    pub(crate) async fn prune_cache(&self) {
        let keep: std::collections::HashSet<String> = self
            .inner
            .registry
            .list()
            .iter()
            .map(|deployment| deployment.content_hash.clone())
            .collect();
        let host = self.inner.host.clone();
        let cache_dir = self.inner.config.cache_dir.clone();
        let deleted =
            tokio::task::spawn_blocking(move || prune(&host, &cache_dir, &keep, SPARE_ARTIFACTS))
                .await
                .unwrap_or(0);
        if deleted > 0 {
            tracing::debug!(deleted, "pruned the artifact cache");
        }
    }

    /// The stems of the deployable files in the folder, sorted.
    pub(crate) async fn stems_on_disk(&self) -> Vec<String> {
        let dir = self.inner.config.deploy_dir.clone();
        let listed = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let mut stems = Vec::new();
            for entry in std::fs::read_dir(&dir)? {
                if let Some(stem) = stem_of(&entry?.path()) {
                    stems.push(stem);
                }
            }
            Ok(stems)
        })
        .await
        .expect("listing a directory does not panic");
        let mut stems = listed.unwrap_or_else(|err| {
            tracing::error!(dir = %self.inner.config.deploy_dir.display(), error = %err, "cannot list the deploy folder");
            Vec::new()
        });
        stems.sort();
        stems.dedup();
        stems
    }

    /// Every stem the deployer knows of: on disk, deployed, or tried. After the watcher
    /// lost events, checking all of them finds both new and removed files.
    pub(crate) async fn known_stems(&self) -> Vec<String> {
        let mut stems = self.stems_on_disk().await;
        let state = self.inner.state.lock().await;
        stems.extend(state.attempted.keys().filter_map(|path| stem_of(path)));
        stems.extend(
            self.inner
                .registry
                .list()
                .iter()
                .filter_map(|deployment| stem_of(&deployment.file)),
        );
        stems.sort();
        stems.dedup();
        stems
    }

    /// Brings the registry in line with what is on disk for `stem`, then retries the
    /// files that were waiting for a name this freed. Returns the changes, in order.
    pub(crate) async fn apply(&self, stem: &str) -> Vec<Change> {
        let mut state = self.inner.state.lock().await;
        let mut changes = Vec::new();
        let mut queue = VecDeque::from([(stem.to_owned(), false)]);
        while let Some((stem, force)) = queue.pop_front() {
            let freed = self.apply_one(&mut state, &stem, force, &mut changes).await;
            if let Some(freed) = freed {
                let waiting = state
                    .conflicts
                    .iter()
                    .filter(|(_, name)| **name == freed)
                    .map(|(stem, _)| (stem.clone(), true));
                queue.extend(waiting);
            }
        }
        changes
    }

    /// Applies one stem; returns a handler name this freed (removed or renamed away).
    async fn apply_one(
        &self,
        state: &mut State,
        stem: &str,
        force: bool,
        changes: &mut Vec<Change>,
    ) -> Option<HandlerName> {
        let registry = &self.inner.registry;
        let (wasm_path, manifest_path) = unit_paths(&self.inner.config.deploy_dir, stem);
        let started = Instant::now();
        let read = {
            let (wasm_path, manifest_path) = (wasm_path.clone(), manifest_path.clone());
            tokio::task::spawn_blocking(move || read_unit(&wasm_path, &manifest_path))
                .await
                .expect("reading files does not panic")
        };
        let files = match read {
            Ok(UnitFiles { wasm: None, .. }) => {
                return self.remove(state, stem, &wasm_path, &manifest_path, changes);
            }
            Ok(files) => files,
            Err(err) => {
                self.problem(&wasm_path, None, &err);
                return None;
            }
        };
        let attempt = Attempt {
            hash: files.hash.clone(),
            manifest: files.manifest.clone(),
        };
        if !force && state.attempted.get(&wasm_path) == Some(&attempt) {
            return None;
        }
        state.attempted.insert(wasm_path.clone(), attempt);

        let deployment = match self.load(&wasm_path, &manifest_path, files, started).await {
            Ok(deployment) => deployment,
            Err(err) => {
                let running = registry.by_file(&wasm_path);
                self.problem(&wasm_path, running.as_deref().map(Deployment::name), &err);
                return None;
            }
        };
        let name = deployment.name().clone();
        if let Some(owner) = registry.get(&name).filter(|d| d.file != wasm_path) {
            let err = Error::Conflict {
                file: wasm_path.clone(),
                handler: name.clone(),
                owner: owner.file.clone(),
            };
            self.problem(&wasm_path, Some(&name), &err);
            state.conflicts.insert(stem.to_owned(), name);
            return None;
        }
        state.conflicts.remove(stem);

        // The file used to provide another handler: that one is gone now.
        let mut freed = None;
        if let Some(previous) = registry.by_file(&wasm_path).filter(|d| *d.name() != name) {
            let previous = previous.name().clone();
            registry.remove(&previous);
            tracing::info!(handler = %previous, file = %wasm_path.display(), "handler removed: its file now declares another handler");
            changes.push(Change::Removed(previous.clone()));
            freed = Some(previous);
        }
        tracing::info!(
            handler = %name,
            version = %deployment.handler.info().version,
            file = %wasm_path.display(),
            hash = %deployment.content_hash,
            from_cache = deployment.from_cache,
            load_ms = deployment.load_time.as_millis() as u64,
            "handler deployed"
        );
        let deployment = Arc::new(deployment);
        registry.insert(deployment.clone(), &[&wasm_path, &manifest_path]);
        changes.push(Change::Deployed(deployment));
        freed
    }

    fn remove(
        &self,
        state: &mut State,
        stem: &str,
        wasm_path: &Path,
        manifest_path: &Path,
        changes: &mut Vec<Change>,
    ) -> Option<HandlerName> {
        let registry = &self.inner.registry;
        state.attempted.remove(wasm_path);
        state.conflicts.remove(stem);
        registry.clear_problems(&[wasm_path, manifest_path]);
        let deployment = registry.by_file(wasm_path)?;
        let name = deployment.name().clone();
        registry.remove(&name);
        tracing::info!(handler = %name, file = %wasm_path.display(), "handler removed: its file was deleted");
        changes.push(Change::Removed(name.clone()));
        Some(name)
    }

    /// Parses the manifest, compiles (or loads from the cache) off the async threads,
    /// and loads the handler (which runs `describe`).
    async fn load(
        &self,
        wasm_path: &Path,
        manifest_path: &Path,
        files: UnitFiles,
        started: Instant,
    ) -> Result<Deployment, Error> {
        let manifest = match &files.manifest {
            Some(text) => Manifest::parse(manifest_path, text)?,
            None => Manifest::default(),
        };
        let wasm = files.wasm.expect("apply_one handles a missing file");
        let compiled = {
            let host = self.inner.host.clone();
            let cache_dir = self.inner.config.cache_dir.clone();
            let (file, hash) = (wasm_path.to_path_buf(), files.hash.clone());
            tokio::task::spawn_blocking(move || {
                compile_cached(&host, &cache_dir, &file, &wasm, &hash)
            })
            .await
            .expect("compiling reports errors instead of panicking")?
        };
        let settings = HandlerSettings {
            limits: manifest.limits.clone(),
            config: manifest.config.clone(),
            deliveries_per_instance: manifest.deliveries_per_instance,
        };
        let handler = self
            .inner
            .host
            .load(
                &wasm_path.display().to_string(),
                &compiled.component,
                settings,
            )
            .await
            .map_err(|reason| Error::Component {
                file: wasm_path.to_path_buf(),
                reason,
            })?;
        Ok(Deployment {
            handler,
            manifest,
            file: wasm_path.to_path_buf(),
            content_hash: files.hash,
            deployed_at: Timestamp::now(),
            load_time: started.elapsed(),
            from_cache: compiled.from_cache,
        })
    }

    /// Records `err` as the problem of its file and logs it. The running version, if
    /// any, stays.
    fn problem(&self, wasm_path: &Path, handler: Option<&HandlerName>, err: &Error) {
        let message = err.chain();
        let handler = handler.map(ToString::to_string).unwrap_or_default();
        let kept = if handler.is_empty() {
            "nothing deployed from it"
        } else {
            "the running version stays"
        };
        tracing::warn!(handler = %handler, file = %wasm_path.display(), error = %message, "cannot deploy: {kept}");
        self.inner
            .registry
            .set_problem(err.file().to_path_buf(), message);
    }
}

/// For `choreo deploy`: compiles `wasm`, checks it against the world and runs its
/// `describe` (with the manifest beside it, if any, which is validated too), without
/// touching any deploy folder or cache. Returns what the handler says about itself.
pub async fn validate_file(host: &Host, wasm: &Path) -> Result<HandlerInfo, Error> {
    let (bytes, manifest) = {
        let wasm = wasm.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<_, Error> {
            let mut manifest = Manifest::default();
            if let Some(stem) = stem_of(&wasm) {
                let dir = wasm.parent().unwrap_or(Path::new("."));
                let (_, manifest_path) = unit_paths(dir, &stem);
                if let Some(text) = read_manifest(&manifest_path)? {
                    manifest = Manifest::parse(&manifest_path, &text)?;
                }
            }
            let bytes = std::fs::read(&wasm).map_err(io_error("read", &wasm))?;
            Ok((bytes, manifest))
        })
        .await
        .expect("reading files does not panic")?
    };
    let source_name = wasm.display().to_string();
    let component = {
        let host = host.clone();
        let source_name = source_name.clone();
        tokio::task::spawn_blocking(move || host.compile(&source_name, &bytes))
            .await
            .expect("compiling reports errors instead of panicking")
    };
    let as_error = |reason| Error::Component {
        file: wasm.to_path_buf(),
        reason,
    };
    let component = component.map_err(as_error)?;
    let settings = HandlerSettings {
        limits: manifest.limits,
        config: manifest.config,
        deliveries_per_instance: manifest.deliveries_per_instance,
    };
    let handler = host
        .load(&source_name, &component, settings)
        .await
        .map_err(as_error)?;
    Ok(handler.info().clone())
}
