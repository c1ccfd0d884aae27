//! The tools a build needs: checked on the machine (cargo and the `wasm32-wasip2` target,
//! python3, node, npm) with the fix named when one is missing, and the pinned Python and
//! JavaScript build tools installed project-locally in the choreo checkout on first use.
//!
//! The installs go where choreo's own tests put them (`tests/polyglot/build.rs`), with the
//! same stamps and the same lock file, so either installs them once for both:
//! - componentize-py into the venv `<checkout>/target/sdk-tools/venv`, with pip from
//!   `sdk/python/requirements-build.txt` (stamp `target/sdk-tools/venv.stamp`);
//! - componentize-js and jco into `<checkout>/sdk/js/node_modules`, with `npm ci` from the
//!   committed `sdk/js/package-lock.json` (stamp `target/sdk-tools/npm.stamp`).
//!
//! An install is redone only when its pin file no longer matches its stamp.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

use super::progress::Step;
use crate::project::{Sdk, WASM_TARGET};

/// How to get Python when `python3` is missing or has no `venv` module.
const INSTALL_PYTHON: &str = "Python 3.11 or later with its venv module (Debian/Ubuntu: \
     `apt-get install python3 python3-venv`; macOS: `brew install python`; others: \
     https://www.python.org/downloads/)";

/// How to get Node.js and npm.
const INSTALL_NODE: &str = "Node.js 20 or later with npm (https://nodejs.org/en/download; \
     Debian/Ubuntu: `apt-get install nodejs npm`; macOS: `brew install node`)";

/// How to get cargo.
const INSTALL_RUST: &str = "Rust with rustup (https://rustup.rs), then \
     `rustup target add wasm32-wasip2`";

/// Fails, naming `tool`, what it is for and how to install it, unless `tool args` runs.
pub(crate) fn require(
    tool: &str,
    args: &[&str],
    purpose: &str,
    install: &str,
) -> anyhow::Result<()> {
    match Command::new(tool).args(args).stdin(Stdio::null()).output() {
        Ok(output) if output.status.success() => Ok(()),
        Ok(output) => bail!(
            "`{tool} {}` failed ({}): {}\n`{tool}` {purpose}; install {install}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(err) => bail!("`{tool}` {purpose}, and it cannot be run ({err}); install {install}"),
    }
}

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

/// Holds the checkout's tool lock until dropped: installs and builds must not run twice at
/// once on the same directories (two builds, or a build and choreo's own tests).
#[derive(Debug)]
pub(crate) struct ToolLock(#[allow(dead_code, reason = "held for its lock")] File);

pub(crate) fn lock(sdk: &Sdk) -> anyhow::Result<ToolLock> {
    let tools = sdk.tools();
    fs::create_dir_all(&tools).with_context(|| format!("cannot create {}", tools.display()))?;
    let path = tools.join(".lock");
    let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
    file.lock()
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(ToolLock(file))
}

/// The Python of the checkout's build venv, with the pinned componentize-py installed
/// (created now unless its stamp says it is current).
pub(crate) fn python_venv(sdk: &Sdk, _lock: &ToolLock) -> anyhow::Result<PathBuf> {
    let venv = sdk.tools().join("venv");
    let bin = venv.join(if cfg!(windows) { "Scripts" } else { "bin" });
    let python = bin.join("python");
    let requirements = sdk.python().join("requirements-build.txt");
    let stamp = sdk.tools().join("venv.stamp");
    if up_to_date(&requirements, &stamp, &bin.join("componentize-py")) {
        return Ok(python);
    }
    require(
        "python3",
        &["--version"],
        "builds Python handlers (it runs componentize-py)",
        INSTALL_PYTHON,
    )?;
    let step = Step::start(format!(
        "installing componentize-py into {} (first build only)",
        venv.display()
    ));
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("cannot remove {}", venv.display()))?;
    }
    let mut create = Command::new("python3");
    create.arg("-m").arg("venv").arg(&venv);
    run(create).with_context(|| format!("cannot create a venv; install {INSTALL_PYTHON}"))?;
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        "--timeout",
        "60",
        "-r",
    ])
    .arg(&requirements);
    run(pip).context("cannot install componentize-py (is PyPI reachable?)")?;
    fs::copy(&requirements, &stamp).with_context(|| format!("cannot write {}", stamp.display()))?;
    step.done();
    Ok(python)
}

/// Checks node, and installs the JavaScript SDK's pinned tools with `npm ci` unless its
/// stamp says they are current.
pub(crate) fn js_tools(sdk: &Sdk, _lock: &ToolLock) -> anyhow::Result<()> {
    require(
        "node",
        &["--version"],
        "builds JavaScript handlers (it runs componentize-js)",
        INSTALL_NODE,
    )?;
    let lockfile = sdk.js().join("package-lock.json");
    let stamp = sdk.tools().join("npm.stamp");
    let cli = sdk
        .js()
        .join("node_modules/@bytecodealliance/componentize-js/src/cli.js");
    if up_to_date(&lockfile, &stamp, &cli) {
        return Ok(());
    }
    require(
        "npm",
        &["--version"],
        "installs componentize-js for JavaScript handlers",
        INSTALL_NODE,
    )?;
    let step = Step::start(format!(
        "installing componentize-js into {} with npm ci (first build only)",
        sdk.js().join("node_modules").display()
    ));
    let mut npm = Command::new("npm");
    npm.current_dir(sdk.js())
        .args(["ci", "--no-audit", "--no-fund", "--loglevel", "error"]);
    run(npm).context("cannot install componentize-js (is the npm registry reachable?)")?;
    fs::copy(&lockfile, &stamp).with_context(|| format!("cannot write {}", stamp.display()))?;
    step.done();
    Ok(())
}

/// Whether `stamp` holds the same bytes as `pin` and `installed` exists.
fn up_to_date(pin: &Path, stamp: &Path, installed: &Path) -> bool {
    installed.is_file() && matches!((fs::read(pin), fs::read(stamp)), (Ok(a), Ok(b)) if a == b)
}

/// Runs `command` to completion with its output captured; fails with the command line and
/// everything it printed unless it succeeds.
pub(crate) fn run(mut command: Command) -> anyhow::Result<Output> {
    let shown = format!("{command:?}");
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {shown}"))?;
    if !output.status.success() {
        bail!(
            "{shown} failed ({}):\n{}",
            output.status,
            printed(&output.stdout, &output.stderr)
        );
    }
    Ok(output)
}

/// What a child printed on stdout then stderr, as one text.
pub(crate) fn printed(stdout: &[u8], stderr: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(stdout).trim_end().to_owned();
    let err = String::from_utf8_lossy(stderr);
    if !text.is_empty() && !err.trim().is_empty() {
        text.push('\n');
    }
    text.push_str(err.trim_end());
    text
}

/// Reads all of `stream` on a thread, for a child whose other stream is read as it comes.
pub(crate) fn collect(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        bytes
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_tool_is_named_with_its_fix() {
        let err = require(
            "choreo-no-such-tool",
            &["--version"],
            "builds nothing",
            "it from nowhere",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`choreo-no-such-tool` builds nothing"),
            "{err}"
        );
        assert!(err.contains("install it from nowhere"), "{err}");
    }

    #[test]
    fn a_failed_command_shows_what_it_printed() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let err = run(command).unwrap_err().to_string();
        assert!(err.contains("failed (exit status: 3)"), "{err}");
        assert!(err.contains("out\nerr"), "{err}");
    }

    #[test]
    fn installs_are_current_only_while_the_pin_matches_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let (pin, stamp, tool) = (
            dir.path().join("pin"),
            dir.path().join("stamp"),
            dir.path().join("tool"),
        );
        fs::write(&pin, "a==1").unwrap();
        assert!(!up_to_date(&pin, &stamp, &tool));
        fs::write(&tool, "").unwrap();
        fs::write(&stamp, "a==1").unwrap();
        assert!(up_to_date(&pin, &stamp, &tool));
        fs::write(&pin, "a==2").unwrap();
        assert!(!up_to_date(&pin, &stamp, &tool));
    }
}
