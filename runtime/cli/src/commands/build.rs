//! `choreo build [DIR] [-o OUT]`: builds the handler project in DIR (the directory holding
//! `choreo.project.toml`, see [`crate::project`]) into a component, with the tool of its
//! language, then checks it the way `choreo deploy` does (compiled, linked against
//! choreo's world, `describe` run, the manifest validated), so what it prints is what
//! `choreo deploy` will take.
//!
//! The component goes to `OUT` (default `DIR/<name>.wasm`, beside the deploy manifest
//! `DIR/<name>.toml`). With another `OUT`, the manifest is copied beside it as
//! `<stem>.toml`, since `choreo deploy OUT` deploys the manifest it finds there. The tool
//! writes into a temp directory beside `OUT`, and the result is renamed over `OUT`: an
//! interrupted build never leaves a truncated component.
//!
//! Layout of `build/`: `rust` (cargo), `script` (the Python and JavaScript SDKs' build
//! scripts), `tools` (checking and installing what the builds run), `progress` (the
//! spinner and step lines on stderr).

mod progress;
mod rust;
mod script;
mod tools;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use choreo_host::Host;

use crate::project::{Language, Project, Sdk};
use progress::Step;

/// Arguments of `choreo build`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The handler project: a directory holding `choreo.project.toml` (`choreo new`
    /// creates one)
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Where to write the component, a `.wasm` file [default: DIR/NAME.wasm]
    #[arg(short, long, env = "CHOREO_BUILD_OUT")]
    out: Option<PathBuf>,
    /// The choreo checkout (or its `sdk/` folder) whose SDK builds a Python or JavaScript
    /// handler [default: the project file's `sdk`, else the checkout this choreo was built
    /// from]. A Rust project names it in its Cargo.toml instead.
    #[arg(long, env = "CHOREO_SDK_DIR")]
    sdk: Option<PathBuf>,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let project = Project::load(&args.dir)?;
    let out = match args.out {
        Some(out) => std::path::absolute(&out)
            .with_context(|| format!("cannot resolve {}", out.display()))?,
        None => std::path::absolute(project.default_output())
            .context("cannot resolve the project directory")?,
    };
    let (out_dir, file_name) = match (out.parent(), out.file_name()) {
        (Some(dir), Some(name)) if out.extension().is_some_and(|e| e == "wasm") => {
            (dir.to_path_buf(), name.to_owned())
        }
        _ => bail!(
            "{} does not end in .wasm: choreo deploy and the deploy folder only take .wasm files",
            out.display()
        ),
    };
    let sdk = match project.language {
        Language::Rust => None,
        language => Some(Sdk::locate(
            args.sdk.as_deref().or(project.sdk.as_deref()),
            language,
        )?),
    };
    eprintln!(
        "building the {} handler `{}` in {}",
        project.language,
        project.name,
        project.dir.display()
    );

    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("cannot create {}", out_dir.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".choreo-build-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("cannot create a temp directory in {}", out_dir.display()))?;
    let built = staging.path().join(&file_name);
    {
        let (project, built) = (project.clone(), built.clone());
        // The tools run as child processes, waited for here: keep them off the async runtime.
        tokio::task::spawn_blocking(move || match (project.language, sdk) {
            (Language::Rust, _) => rust::build(&project, &built),
            (Language::Python, Some(sdk)) => script::python(&project, &sdk, &built),
            (Language::Js, Some(sdk)) => script::js(&project, &sdk, &built),
            (language, None) => bail!("a {language} project needs a choreo checkout"),
        })
        .await
        .expect("a build reports errors instead of panicking")?;
    }
    if !built.is_file() {
        bail!("the build succeeded but wrote no {}", built.display());
    }
    std::fs::rename(&built, &out)
        .with_context(|| format!("cannot move the component to {}", out.display()))?;
    copy_manifest(&project, &out)?;

    let step = Step::start("checking the component as choreo deploy does");
    let host = Host::new().context("cannot start the WebAssembly host")?;
    let info = choreo_deploy::validate_file(&host, &out)
        .await
        .with_context(|| format!("{} was built, but choreo would refuse it", out.display()))?;
    step.done();
    if info.name != project.name {
        eprintln!(
            "note: the component calls itself `{}` in describe, and the project file `{}`; \
             choreo knows it as `{}`",
            info.name, project.name, info.name
        );
    }
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "built handler `{}` {} ({}, subscribes {}): {}",
        info.name,
        info.version,
        human_size(size),
        join(&info.subscriptions),
        out.display()
    );
    println!("deploy it with: choreo deploy {}", out.display());
    Ok(())
}

/// Copies the project's deploy manifest beside `out` as `<stem>.toml`, unless it is there
/// already (the default output) or the project has none.
fn copy_manifest(project: &Project, out: &Path) -> anyhow::Result<()> {
    let manifest = project.manifest();
    if !manifest.is_file() {
        return Ok(());
    }
    let beside = out.with_extension("toml");
    let same = match (manifest.canonicalize(), beside.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same {
        std::fs::copy(&manifest, &beside).with_context(|| {
            format!("cannot copy {} to {}", manifest.display(), beside.display())
        })?;
    }
    Ok(())
}

fn join(items: &[impl ToString]) -> String {
    if items.is_empty() {
        return "nothing".to_owned();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `bytes` in the largest unit that keeps it at one or more: `52.1 KB`, `18.3 MB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 3] = ["KB", "MB", "GB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for next in UNITS {
        if value < 1000.0 {
            break;
        }
        value /= 1000.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_their_unit() {
        assert_eq!(human_size(999), "999 B");
        assert_eq!(human_size(52_100), "52.1 KB");
        assert_eq!(human_size(18_300_000), "18.3 MB");
        assert_eq!(human_size(2_000_000_000), "2.0 GB");
    }
}
