//! The pinned build tools of choreo's Python and JavaScript SDKs, installed into a choreo
//! checkout on first use and shared by everything that builds guests there: `choreo build`
//! and the build script of choreo's own polyglot tests.
//!
//! - componentize-py goes into the venv `<checkout>/target/sdk-tools/venv`, with pip from
//!   `sdk/python/requirements-build.txt`, the one place its version is pinned;
//! - componentize-js and jco go into `<checkout>/sdk/js/node_modules`, with `npm ci` from
//!   the committed `sdk/js/package-lock.json`.
//!
//! Each install is redone only when its pin file no longer matches the copy of it kept as
//! a stamp beside the tools, and a file lock (`target/sdk-tools/.lock`, [`Checkout::lock`])
//! makes concurrent users (two builds, a build and the tests) take turns. A tool missing
//! from the machine (python3 with venv, node, npm) is named along with how to install it.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, bail};

/// How to get Python when `python3` is missing or has no `venv` module.
pub const INSTALL_PYTHON: &str = "Python 3.11 or later with its venv module (Debian/Ubuntu: \
     `apt-get install python3 python3-venv`; macOS: `brew install python`; others: \
     https://www.python.org/downloads/)";

/// How to get Node.js and npm.
pub const INSTALL_NODE: &str = "Node.js 20 or later with npm (https://nodejs.org/en/download; \
     Debian/Ubuntu: `apt-get install nodejs npm`; macOS: `brew install node`)";

/// A choreo checkout: where the SDKs are and where their tools go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    root: PathBuf,
}

impl Checkout {
    /// The checkout whose root (the folder holding `wit/` and `sdk/`) is `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Checkout { root: root.into() }
    }

    /// The checkout's root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `sdk/python`.
    pub fn python_sdk(&self) -> PathBuf {
        self.root.join("sdk").join("python")
    }

    /// `sdk/js`.
    pub fn js_sdk(&self) -> PathBuf {
        self.root.join("sdk").join("js")
    }

    /// `target/sdk-tools`: the venv, the stamps and the lock; outside every cargo target
    /// dir's profiles, so one install serves all of them.
    pub fn tools_dir(&self) -> PathBuf {
        self.root.join("target").join("sdk-tools")
    }

    fn venv(&self) -> PathBuf {
        self.tools_dir().join("venv")
    }

    fn venv_bin(&self) -> PathBuf {
        self.venv()
            .join(if cfg!(windows) { "Scripts" } else { "bin" })
    }

    /// The Python of the build venv (it exists once [`Checkout::python_venv`] has run).
    pub fn venv_python(&self) -> PathBuf {
        self.venv_bin().join("python")
    }

    /// Takes the checkout's tool lock, waiting for whoever holds it.
    pub fn lock(&self) -> anyhow::Result<ToolLock> {
        let tools = self.tools_dir();
        fs::create_dir_all(&tools).with_context(|| format!("cannot create {}", tools.display()))?;
        let path = tools.join(".lock");
        let file =
            File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        file.lock()
            .with_context(|| format!("cannot lock {}", path.display()))?;
        Ok(ToolLock(file))
    }

    /// The build venv's Python, with the pinned componentize-py installed now unless its
    /// stamp says it is current. `installing` is called with what is about to be installed
    /// before a (slow) install starts, so the caller can show progress.
    pub fn python_venv(
        &self,
        _lock: &ToolLock,
        installing: impl FnOnce(&str),
    ) -> anyhow::Result<PathBuf> {
        let python = self.venv_python();
        let requirements = self.python_sdk().join("requirements-build.txt");
        let stamp = self.tools_dir().join("venv.stamp");
        if up_to_date(
            &requirements,
            &stamp,
            &self.venv_bin().join("componentize-py"),
        ) {
            return Ok(python);
        }
        require(
            "python3",
            &["--version"],
            "builds Python handlers (it runs componentize-py)",
            INSTALL_PYTHON,
        )?;
        let venv = self.venv();
        installing(&format!(
            "installing componentize-py into {} (first build only)",
            venv.display()
        ));
        if venv.exists() {
            fs::remove_dir_all(&venv)
                .with_context(|| format!("cannot remove {}", venv.display()))?;
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
        fs::copy(&requirements, &stamp)
            .with_context(|| format!("cannot write {}", stamp.display()))?;
        Ok(python)
    }

    /// Checks node, and installs the JavaScript SDK's pinned tools with `npm ci` unless
    /// its stamp says they are current. `installing` as for [`Checkout::python_venv`].
    pub fn js_tools(&self, _lock: &ToolLock, installing: impl FnOnce(&str)) -> anyhow::Result<()> {
        require(
            "node",
            &["--version"],
            "builds JavaScript handlers (it runs componentize-js)",
            INSTALL_NODE,
        )?;
        let js = self.js_sdk();
        let lockfile = js.join("package-lock.json");
        let stamp = self.tools_dir().join("npm.stamp");
        let cli = js.join("node_modules/@bytecodealliance/componentize-js/src/cli.js");
        if up_to_date(&lockfile, &stamp, &cli) {
            return Ok(());
        }
        require(
            "npm",
            &["--version"],
            "installs componentize-js for JavaScript handlers",
            INSTALL_NODE,
        )?;
        installing(&format!(
            "installing componentize-js into {} with npm ci (first build only)",
            js.join("node_modules").display()
        ));
        let mut npm = Command::new("npm");
        npm.current_dir(&js)
            .args(["ci", "--no-audit", "--no-fund", "--loglevel", "error"]);
        run(npm).context("cannot install componentize-js (is the npm registry reachable?)")?;
        fs::copy(&lockfile, &stamp).with_context(|| format!("cannot write {}", stamp.display()))?;
        Ok(())
    }
}

/// Holds the checkout's tool lock until dropped ([`Checkout::lock`]).
#[derive(Debug)]
pub struct ToolLock(#[allow(dead_code, reason = "held for its lock")] File);

/// Whether `stamp` holds the same bytes as `pin` and `installed` exists.
fn up_to_date(pin: &Path, stamp: &Path, installed: &Path) -> bool {
    installed.is_file() && matches!((fs::read(pin), fs::read(stamp)), (Ok(a), Ok(b)) if a == b)
}

/// Fails, naming `tool`, what it is for (`purpose`) and how to install it, unless
/// `tool args` runs.
pub fn require(tool: &str, args: &[&str], purpose: &str, install: &str) -> anyhow::Result<()> {
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

/// Runs `command` to completion with its output captured; fails with the command line and
/// everything it printed unless it succeeds.
pub fn run(mut command: Command) -> anyhow::Result<Output> {
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
pub fn printed(stdout: &[u8], stderr: &[u8]) -> String {
    let mut text = String::from_utf8_lossy(stdout).trim_end().to_owned();
    let err = String::from_utf8_lossy(stderr);
    if !text.is_empty() && !err.trim().is_empty() {
        text.push('\n');
    }
    text.push_str(err.trim_end());
    text
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

    #[test]
    fn the_tools_live_in_the_checkout() {
        let checkout = Checkout::new("/src/choreo");
        assert_eq!(
            checkout.tools_dir(),
            Path::new("/src/choreo/target/sdk-tools")
        );
        assert_eq!(checkout.js_sdk(), Path::new("/src/choreo/sdk/js"));
        assert!(
            checkout
                .venv_python()
                .starts_with("/src/choreo/target/sdk-tools/venv")
        );
    }
}
