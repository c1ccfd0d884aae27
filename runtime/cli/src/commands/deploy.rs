//! `choreo deploy FILE.wasm`: compile and describe the component locally (the same
//! checks `choreo serve` makes), then copy it into the deploy folder atomically so a
//! running `choreo serve` picks it up.

use std::path::PathBuf;

use anyhow::Context;
use choreo_host::Host;

use crate::config::DEFAULT_DEPLOY_DIR;

/// Arguments of `choreo deploy`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The component to deploy (a `<name>.toml` manifest beside it is copied too)
    file: PathBuf,
    /// The deploy folder `choreo serve` watches
    #[arg(long, env = "CHOREO_DEPLOY_DIR", default_value = DEFAULT_DEPLOY_DIR)]
    deploy_dir: PathBuf,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    eprintln!("validating {} …", args.file.display());
    let host = Host::new().context("cannot start the WebAssembly host")?;
    let info = choreo_deploy::validate_file(&host, &args.file).await?;
    let installed = choreo_deploy::install(&args.file, &args.deploy_dir)
        .with_context(|| format!("cannot copy into {}", args.deploy_dir.display()))?;
    println!(
        "deployed handler `{}` {} to {} (subscribes {})",
        info.name,
        info.version,
        installed.display(),
        info.subscriptions
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
