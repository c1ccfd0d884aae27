//! Building a Rust handler: `cargo build --release --target wasm32-wasip2` in the project
//! (rustc links the component directly), reading cargo's JSON messages to show progress
//! and to find the `.wasm` the crate's `cdylib` became, wherever the target dir is
//! (`CARGO_TARGET_DIR` is honoured).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::progress::Step;
use super::tools;
use crate::project::{Project, WASM_TARGET};

/// The parts of a cargo JSON message this reads.
#[derive(Debug, Deserialize)]
struct Message {
    reason: String,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    filenames: Vec<PathBuf>,
}

#[derive(Debug, Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

/// Builds the crate in `project` and copies its component to `out`.
pub(crate) fn build(project: &Project, out: &Path) -> anyhow::Result<()> {
    let manifest = project.dir.join("Cargo.toml");
    if !manifest.is_file() {
        bail!(
            "{} has no Cargo.toml: cargo builds a rust handler from it",
            project.dir.display()
        );
    }
    tools::require_rust(&project.dir)?;
    let step = Step::start(format!("building with cargo (release, {WASM_TARGET})"));
    let detail = step.detail();
    let mut command = Command::new("cargo");
    command
        .current_dir(&project.dir)
        .args(["build", "--release", "--target", WASM_TARGET])
        // Diagnostics rendered as usual (to stderr), everything else as JSON on stdout.
        .arg("--message-format=json-render-diagnostics")
        .arg("--manifest-path")
        .arg(&manifest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let shown = format!("{command:?}");
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {shown}"))?;
    let stderr = tools::collect(child.stderr.take().expect("stderr is piped"));
    let stdout = child.stdout.take().expect("stdout is piped");
    let mut compiled = 0usize;
    let mut component = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.with_context(|| format!("cannot read the output of {shown}"))?;
        let Ok(message) = serde_json::from_str::<Message>(&line) else {
            continue;
        };
        if message.reason != "compiler-artifact" {
            continue;
        }
        let Some(target) = message.target else {
            continue;
        };
        compiled += 1;
        detail.set(format!("{compiled} crates, last {}", target.name));
        if target.kind.iter().any(|k| k == "cdylib")
            && let Some(wasm) = message
                .filenames
                .into_iter()
                .find(|f| f.extension().is_some_and(|e| e == "wasm"))
        {
            component = Some(wasm);
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("cannot wait for {shown}"))?;
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        bail!(
            "{shown} failed ({status}):\n{}",
            String::from_utf8_lossy(&stderr).trim_end()
        );
    }
    let component = component.with_context(|| {
        format!(
            "cargo built no .wasm library: {} must keep `crate-type = [\"cdylib\"]` in [lib]",
            manifest.display()
        )
    })?;
    std::fs::copy(&component, out)
        .with_context(|| format!("cannot copy {} to {}", component.display(), out.display()))?;
    step.done();
    Ok(())
}
