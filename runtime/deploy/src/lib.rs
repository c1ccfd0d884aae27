//! choreo's hot deploy: watches the deploy folder, turns `.wasm` files (with an optional
//! `<stem>.toml` manifest beside each) into loaded handlers, and owns the registry of
//! what is deployed.
//!
//! A handler's identity is the name its `describe` declares, not its file name, so a
//! new version under any file name replaces the old one and keeps its queue. Swaps are
//! atomic: the [`Registry`] hands out `Arc<Deployment>`s, and a caller that took the old
//! one finishes on it. A file that cannot be deployed (still being written, not a
//! component, wrong world, broken manifest, a name another file owns) becomes a
//! [`Problem`] and the running version stays. The deployer does not touch the broker:
//! it reports each [`Change`] and the dispatch loop applies it (subscribe, start or stop
//! workers; a removed handler's queue is kept there).
//!
//! State kept: the registry (deployed handlers and problems), the content last tried per
//! file, the files waiting for a name another file owns, and compiled artifacts on
//! disk under the cache folder.
//!
//! Layout:
//! - `deployer`: [`Deployer`], [`DeployConfig`], applying one file, [`validate_file`].
//! - `watch`: [`Deployer::watch`], the notify loop and its per-file debounce.
//! - `registry`: [`Registry`], [`Deployment`], [`Change`], [`Problem`].
//! - `manifest`: [`Manifest`], parsed strictly and validated, with its limits.
//! - `cache`: compiled artifacts by engine fingerprint and content hash.
//! - `files`: which file names count, reading, hashing, atomic writes, [`install`].
//! - `error`: [`Error`].

mod cache;
mod deployer;
mod error;
mod files;
mod manifest;
mod registry;
mod watch;

pub use cache::SPARE_ARTIFACTS;
pub use deployer::{DEFAULT_DEBOUNCE, DeployConfig, Deployer, validate_file};
pub use error::Error;
pub use files::{MAX_COMPONENT_BYTES, install};
pub use manifest::{
    DEFAULT_CONCURRENCY, MAX_ATTEMPTS, MAX_BACKOFF, MAX_CONFIG_ENTRIES, MAX_CONFIG_VALUE_BYTES,
    MAX_MANIFEST_BYTES, Manifest,
};
pub use registry::{Change, DeployCounts, Deployment, Problem, Registry};
