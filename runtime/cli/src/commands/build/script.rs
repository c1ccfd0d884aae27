//! Building a Python or JavaScript handler: the SDK's own build script (`sdk/python/build.py`
//! with componentize-py from the checkout's venv, `sdk/js/build.mjs` with componentize-js
//! from `sdk/js/node_modules`), after installing those tools when they are missing.

use std::path::Path;
use std::process::Command;

use anyhow::bail;

use super::progress::Step;
use super::tools;
use crate::project::{Project, Sdk};

/// Builds the Python handler in `project` into `out`.
pub(crate) fn python(project: &Project, sdk: &Sdk, out: &Path) -> anyhow::Result<()> {
    let entry = entry(project)?;
    let lock = tools::lock(sdk)?;
    let mut command = Command::new(tools::python_venv(sdk, &lock)?);
    command
        .arg(sdk.python().join("build.py"))
        .arg(entry)
        .arg("-o")
        .arg(out);
    run(command, "componentize-py")
}

/// Builds the JavaScript handler in `project` into `out`.
pub(crate) fn js(project: &Project, sdk: &Sdk, out: &Path) -> anyhow::Result<()> {
    let entry = entry(project)?;
    let lock = tools::lock(sdk)?;
    tools::js_tools(sdk, &lock)?;
    let mut command = Command::new("node");
    command
        .arg(sdk.js().join("build.mjs"))
        .arg(entry)
        .arg("-o")
        .arg(out);
    run(command, "componentize-js")
}

/// The project's entry module, which must exist.
fn entry(project: &Project) -> anyhow::Result<&Path> {
    match project.entry.as_deref() {
        Some(entry) if entry.is_file() => Ok(entry),
        Some(entry) => bail!(
            "{} does not exist; the project file names it as the handler's entry",
            entry.display()
        ),
        None => bail!("a {} project names its entry", project.language),
    }
}

fn run(command: Command, tool: &str) -> anyhow::Result<()> {
    let step = Step::start(format!("building with {tool}"));
    tools::run(command)?;
    step.done();
    Ok(())
}
