//! `choreo serve`'s settings. Each has a flag, a `CHOREO_*` variable and a config-file
//! key with the same name (`--data-dir`, `CHOREO_DATA_DIR`, `data_dir`); a flag beats
//! the variable (clap reads both), which beats the file, which beats the default.
//! Unknown keys in the file are errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use choreo_broker::Durability;
use serde::Deserialize;

/// Where the API listens by default: loopback only.
pub(crate) const DEFAULT_LISTEN: &str = "127.0.0.1:7070";
/// Where the broker, the artifact cache and other state live by default.
pub(crate) const DEFAULT_DATA_DIR: &str = ".choreo/data";
/// The folder watched for components by default.
pub(crate) const DEFAULT_DEPLOY_DIR: &str = "deploy";
/// How long a stop waits for in-flight deliveries by default.
pub(crate) const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The log filter when none is given.
pub(crate) const DEFAULT_LOG: &str = "info";

/// Settings as the command line (and its environment twins) gave them.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct ServeFlags {
    /// Address and port of the HTTP API (port 0 picks a free one) [default: 127.0.0.1:7070]
    #[arg(long, env = "CHOREO_LISTEN")]
    pub(crate) listen: Option<SocketAddr>,
    /// Directory for the broker's store and the compiled-component cache [default: .choreo/data]
    #[arg(long, env = "CHOREO_DATA_DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Folder watched for `*.wasm` components and their `<name>.toml` manifests [default: deploy]
    #[arg(long, env = "CHOREO_DEPLOY_DIR")]
    pub(crate) deploy_dir: Option<PathBuf>,
    /// A TOML file with any of these settings (keys like `data_dir`)
    #[arg(long, env = "CHOREO_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// `strict` (fdatasync before every acknowledgement) or `buffered` (synced within 1 s) [default: strict]
    #[arg(long, env = "CHOREO_DURABILITY")]
    pub(crate) durability: Option<String>,
    /// Log filter, e.g. `info` or `choreo=debug` [default: info]
    #[arg(long, env = "CHOREO_LOG")]
    pub(crate) log: Option<String>,
    /// Log format: `text` or `json` [default: text]
    #[arg(long, env = "CHOREO_LOG_FORMAT")]
    pub(crate) log_format: Option<String>,
    /// How long a stop waits for in-flight deliveries, in milliseconds [default: 10000]
    #[arg(long, env = "CHOREO_SHUTDOWN_GRACE_MS")]
    pub(crate) shutdown_grace_ms: Option<u64>,
    /// Largest HTTP request body, in bytes [default: 1048576]
    #[arg(long, env = "CHOREO_MAX_BODY_BYTES")]
    pub(crate) max_body_bytes: Option<usize>,
    /// Most live streams (`GET /v1/stream`, `choreo tail`) open at once [default: 256]
    #[arg(long, env = "CHOREO_MAX_STREAM_CLIENTS")]
    pub(crate) max_stream_clients: Option<usize>,
}

/// The config file: the same settings, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    deploy_dir: Option<PathBuf>,
    durability: Option<String>,
    log: Option<String>,
    log_format: Option<String>,
    shutdown_grace_ms: Option<u64>,
    max_body_bytes: Option<usize>,
    max_stream_clients: Option<usize>,
}

/// How logs are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// The resolved settings of `choreo serve`.
#[derive(Debug, Clone)]
pub(crate) struct ServeConfig {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) deploy_dir: PathBuf,
    pub(crate) durability: Durability,
    pub(crate) log: String,
    pub(crate) log_format: LogFormat,
    pub(crate) shutdown_grace: Duration,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_stream_clients: usize,
}

impl ServeConfig {
    /// Merges flags, the config file they name, and defaults.
    pub(crate) fn resolve(flags: ServeFlags) -> anyhow::Result<Self> {
        let file = match &flags.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let durability = match flags.durability.or(file.durability).as_deref() {
            None | Some("strict") => Durability::Strict,
            Some("buffered") => Durability::Buffered,
            Some(other) => anyhow::bail!("durability `{other}` is not `strict` or `buffered`"),
        };
        let log_format = match flags.log_format.or(file.log_format).as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => anyhow::bail!("log format `{other}` is not `text` or `json`"),
        };
        Ok(ServeConfig {
            listen: flags
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses")),
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
            deploy_dir: flags
                .deploy_dir
                .or(file.deploy_dir)
                .unwrap_or_else(|| DEFAULT_DEPLOY_DIR.into()),
            durability,
            log: flags
                .log
                .or(file.log)
                .unwrap_or_else(|| DEFAULT_LOG.to_owned()),
            log_format,
            shutdown_grace: flags
                .shutdown_grace_ms
                .or(file.shutdown_grace_ms)
                .map_or(DEFAULT_SHUTDOWN_GRACE, Duration::from_millis),
            max_body_bytes: flags
                .max_body_bytes
                .or(file.max_body_bytes)
                .unwrap_or(choreo_ingress::DEFAULT_MAX_BODY_BYTES),
            max_stream_clients: flags
                .max_stream_clients
                .or(file.max_stream_clients)
                .unwrap_or(choreo_ingress::DEFAULT_MAX_STREAM_CLIENTS),
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_beat_the_file_which_beats_defaults() {
        let dir = std::env::temp_dir().join(format!("choreo-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("choreo.toml");
        std::fs::write(
            &file,
            "data_dir = \"/from/file\"\ndeploy_dir = \"/file/deploy\"\ndurability = \"buffered\"\n",
        )
        .unwrap();
        let flags = ServeFlags {
            config: Some(file.clone()),
            data_dir: Some("/from/flag".into()),
            ..ServeFlags::default()
        };
        let config = ServeConfig::resolve(flags).unwrap();
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.deploy_dir, PathBuf::from("/file/deploy"));
        assert_eq!(config.durability, Durability::Buffered);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        std::fs::write(&file, "data_dri = \"typo\"\n").unwrap();
        let err = ServeConfig::resolve(ServeFlags {
            config: Some(file),
            ..ServeFlags::default()
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("unknown field `data_dri`"),
            "{err:#}"
        );
    }
}
