//! The registry of what is deployed, and the problems of the files that are not.
//!
//! Readers (the dispatch loop, the ingress) hold a cheap [`Registry`] clone and take an
//! `Arc<Deployment>` out of it; a redeploy replaces the entry, never the deployment
//! itself, so a caller that took the old one finishes its work on it. Only the
//! deployer writes. The lock is held for map operations only, never across a compile
//! or a call.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use choreo_broker::Subscription;
use choreo_core::{HandlerName, Timestamp};
use choreo_host::LoadedHandler;

use crate::Manifest;

/// One deployed version of a handler.
#[derive(Debug)]
pub struct Deployment {
    /// The loaded component, ready to call.
    pub handler: LoadedHandler,
    /// Its validated manifest (the default when there is none).
    pub manifest: Manifest,
    /// The `.wasm` file it came from.
    pub file: PathBuf,
    /// SHA-256 of the `.wasm` file, lower-case hex.
    pub content_hash: String,
    /// When this version was swapped in.
    pub deployed_at: Timestamp,
    /// From reading the file to a loaded handler (compile or cache load, and `describe`).
    pub load_time: Duration,
    /// Whether the compiled artifact came from the cache.
    pub from_cache: bool,
}

impl Deployment {
    /// The handler's identity, as declared by its `describe`.
    pub fn name(&self) -> &HandlerName {
        &self.handler.info().name
    }

    /// The broker subscription this deployment asks for: its declared subscriptions with
    /// the manifest's start position, retry policy and concurrency.
    pub fn subscription(&self) -> Subscription {
        Subscription {
            handler: self.name().clone(),
            patterns: self.handler.info().subscriptions.clone(),
            start: self.manifest.start,
            retry: self.manifest.retry,
            concurrency: self.manifest.concurrency,
        }
    }
}

/// What changed in the registry, for the dispatch loop to apply.
#[derive(Debug, Clone)]
pub enum Change {
    /// A handler was deployed, or replaced by a new version (same name).
    Deployed(Arc<Deployment>),
    /// A handler's file was removed: stop delivering to it (its queue stays).
    Removed(HandlerName),
}

/// A file that could not be deployed, as it stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file at fault (the `.wasm`, or its manifest).
    pub file: PathBuf,
    /// What is wrong, with causes, in words its author can act on.
    pub message: String,
    /// When it was found.
    pub at: Timestamp,
}

/// The deployed handlers and current problems. Cheap to clone; safe to share.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    inner: Arc<RwLock<Entries>>,
}

#[derive(Debug, Default)]
struct Entries {
    deployed: BTreeMap<HandlerName, Arc<Deployment>>,
    problems: HashMap<PathBuf, Problem>,
    counts: DeployCounts,
}

/// Deploy attempts since this process started, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeployCounts {
    /// Versions swapped in (first deploys and redeploys).
    pub succeeded: u64,
    /// Files that could not be deployed, counted once per attempt (a file changed
    /// three times while broken counts three).
    pub failed: u64,
}

impl Registry {
    /// The running version of `name`.
    pub fn get(&self, name: &HandlerName) -> Option<Arc<Deployment>> {
        self.read().deployed.get(name).cloned()
    }

    /// Every deployed handler, sorted by name.
    pub fn list(&self) -> Vec<Arc<Deployment>> {
        self.read().deployed.values().cloned().collect()
    }

    /// The current problem of each file that has one, newest first.
    pub fn problems(&self) -> Vec<Problem> {
        let mut problems: Vec<Problem> = self.read().problems.values().cloned().collect();
        problems.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.file.cmp(&b.file)));
        problems
    }

    /// Deploy attempts since this process started.
    pub fn counts(&self) -> DeployCounts {
        self.read().counts
    }

    /// The deployment that came from `file`, if any.
    pub(crate) fn by_file(&self, file: &Path) -> Option<Arc<Deployment>> {
        self.read()
            .deployed
            .values()
            .find(|deployment| deployment.file == file)
            .cloned()
    }

    /// Swaps in `deployment` and clears the problems of its files.
    pub(crate) fn insert(&self, deployment: Arc<Deployment>, files: &[&Path]) {
        let mut entries = self.write();
        for file in files {
            entries.problems.remove(*file);
        }
        entries.counts.succeeded += 1;
        entries
            .deployed
            .insert(deployment.name().clone(), deployment);
    }

    pub(crate) fn remove(&self, name: &HandlerName) -> Option<Arc<Deployment>> {
        self.write().deployed.remove(name)
    }

    pub(crate) fn set_problem(&self, file: PathBuf, message: String) {
        let problem = Problem {
            file: file.clone(),
            message,
            at: Timestamp::now(),
        };
        let mut entries = self.write();
        entries.counts.failed += 1;
        entries.problems.insert(file, problem);
    }

    pub(crate) fn clear_problems(&self, files: &[&Path]) {
        let mut entries = self.write();
        for file in files {
            entries.problems.remove(*file);
        }
    }

    // A panic never happens while the lock is held (only map operations run under it),
    // so a poisoned lock still guards consistent data.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Entries> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Entries> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }
}
