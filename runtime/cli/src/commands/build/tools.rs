//! The tools a build needs: cargo and the `wasm32-wasip2` target checked here, with the fix
//! named when one is missing; python3, node and npm, and the pinned Python and JavaScript
//! build tools installed project-locally in the choreo checkout on first use, by
//! `choreo-sdk-tools` (shared with choreo's own tests, so either installs them once for
//! both), with this command's progress shown around each install.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
pub(crate) use choreo_sdk_tools::{ToolLock, require, run};

use super::progress::Step;
use crate::project::{Sdk, WASM_TARGET};

/// How to get cargo.
const INSTALL_RUST: &str = "Rust with rustup (https://rustup.rs), then \
     `rustup target add wasm32-wasip2`";

/// Checks that cargo runs and that the toolchain cargo uses in `dir` (its
/// `rust-toolchain.toml`, or the default) has the standard library for `wasm32-wasip2`.
pub(crate) fn require_rust(dir: &Path) -> anyhow::Result<()> {
    require(
        "cargo",
        &["--version"],
        "builds Rust handlers",
        INSTALL_RUST,
    )?;
    let output = Command::new("rustc")
        .current_dir(dir)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .stdin(Stdio::null())
        .output()
        .context("cannot run rustc, which cargo installs with it")?;
    if !output.status.success() {
        bail!(
            "this Rust toolchain does not know the target {WASM_TARGET} (it needs Rust 1.82 or \
             later; choreo's SDK needs 1.95): run `rustup update`\nrustc said: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let libdir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !libdir.is_dir() {
        bail!(
            "the Rust target {WASM_TARGET} is not installed for the toolchain that builds {} \
             (its standard library would be in {}): run `rustup target add {WASM_TARGET}`",
            dir.display(),
            libdir.display()
        );
    }
    Ok(())
}

/// Takes the checkout's tool lock: installs and builds must not run twice at once on the
/// same directories (two builds, or a build and choreo's own tests).
pub(crate) fn lock(sdk: &Sdk) -> anyhow::Result<ToolLock> {
    sdk.checkout().lock()
}

/// The Python of the checkout's build venv, with the pinned componentize-py installed.
pub(crate) fn python_venv(sdk: &Sdk, lock: &ToolLock) -> anyhow::Result<PathBuf> {
    let mut step = None;
    let python = sdk
        .checkout()
        .python_venv(lock, |what| step = Some(Step::start(what.to_owned())))?;
    if let Some(step) = step {
        step.done();
    }
    Ok(python)
}

/// Checks node, and installs the JavaScript SDK's pinned tools unless they are current.
pub(crate) fn js_tools(sdk: &Sdk, lock: &ToolLock) -> anyhow::Result<()> {
    let mut step = None;
    sdk.checkout()
        .js_tools(lock, |what| step = Some(Step::start(what.to_owned())))?;
    if let Some(step) = step {
        step.done();
    }
    Ok(())
}

/// Reads all of `stream` on a thread, for a child whose other stream is read as it comes.
pub(crate) fn collect(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    })
}
