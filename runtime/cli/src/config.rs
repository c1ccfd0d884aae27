//! `choreo serve`'s settings. Each has a flag, a `CHOREO_*` variable and a config-file
//! key with the same name (`--data-dir`, `CHOREO_DATA_DIR`, `data_dir`); a flag beats
//! the variable (clap reads both), which beats the file, which beats the default.
//! Unknown keys in the file are errors.
//!
//! Bearer tokens are the exception: a list, they live only in the file, as
//! `[[tokens]]` tables with `name`, `secret` (or `secret_env`, the variable holding it)
//! and `scopes` (`read`, `admin`, `publish:<pattern>`). Without tokens choreo only
//! listens on a loopback address.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use choreo_broker::Durability;
use choreo_ingress::{Scope, TokenSpec};
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
    /// Most events in one CloudEvents batch request, 1 to 1024 [default: 1024]
    #[arg(long, env = "CHOREO_MAX_BATCH_EVENTS")]
    pub(crate) max_batch_events: Option<usize>,
    /// Most publishes waiting for a reply (`?reply=wait`) at once [default: 1024]
    #[arg(long, env = "CHOREO_MAX_REPLY_WAITERS")]
    pub(crate) max_reply_waiters: Option<usize>,
    /// Largest HTTP request head (request line and headers), in bytes [default: 65536]
    #[arg(long, env = "CHOREO_MAX_HEADER_BYTES")]
    pub(crate) max_header_bytes: Option<usize>,
    /// Longest wait a `?reply=wait` publish may ask for, in milliseconds, at most 300000 [default: 300000]
    #[arg(long, env = "CHOREO_MAX_REPLY_TIMEOUT_MS")]
    pub(crate) max_reply_timeout_ms: Option<u64>,
    /// Most live streams (`GET /v1/stream`, `choreo tail`) open at once [default: 256]
    #[arg(long, env = "CHOREO_MAX_STREAM_CLIENTS")]
    pub(crate) max_stream_clients: Option<usize>,
    /// Most HTTP connections open at once; more wait until one closes [default: 10000,
    /// or less to stay within the open-files limit]
    #[arg(long, env = "CHOREO_MAX_CONNECTIONS")]
    pub(crate) max_connections: Option<usize>,
    /// How long a client may keep the server waiting for a request head (an idle
    /// connection included) or the next piece of a body, in milliseconds [default: 75000]
    #[arg(long, env = "CHOREO_IDLE_TIMEOUT_MS")]
    pub(crate) idle_timeout_ms: Option<u64>,
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
    max_batch_events: Option<usize>,
    max_reply_waiters: Option<usize>,
    max_header_bytes: Option<usize>,
    max_reply_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    idle_timeout_ms: Option<u64>,
    #[serde(default)]
    tokens: Vec<FileToken>,
}

/// One `[[tokens]]` table of the config file.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToken {
    name: String,
    secret: Option<String>,
    secret_env: Option<String>,
    scopes: Vec<String>,
}

impl std::fmt::Debug for FileToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileToken")
            .field("name", &self.name)
            .field("secret_env", &self.secret_env)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl FileToken {
    fn resolve(self) -> anyhow::Result<TokenSpec> {
        let name = self.name;
        let secret = match (self.secret, self.secret_env) {
            (Some(secret), None) => secret,
            (None, Some(var)) => std::env::var(&var).with_context(|| {
                format!("token `{name}`: its secret_env variable `{var}` is not set")
            })?,
            _ => anyhow::bail!("token `{name}` needs exactly one of `secret` and `secret_env`"),
        };
        let scopes = self
            .scopes
            .iter()
            .map(|scope| scope.parse::<Scope>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("token `{name}`: {e}"))?;
        Ok(TokenSpec {
            name,
            secret,
            scopes,
        })
    }
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
    /// Bearer tokens; empty means an open API, allowed on loopback only.
    pub(crate) tokens: Vec<TokenSpec>,
    pub(crate) max_batch_events: usize,
    pub(crate) max_reply_waiters: usize,
    pub(crate) max_header_bytes: usize,
    pub(crate) max_reply_timeout: Duration,
    pub(crate) max_stream_clients: usize,
    /// As set; `None` leaves it to `choreo serve`, which knows the open-files limit.
    pub(crate) max_connections: Option<usize>,
    pub(crate) idle_timeout: Duration,
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
        let tokens = file
            .tokens
            .into_iter()
            .map(FileToken::resolve)
            .collect::<anyhow::Result<Vec<_>>>()?;
        let listen = flags
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"));
        if tokens.is_empty() && !listen.ip().is_loopback() {
            anyhow::bail!(
                "refusing to listen on {listen} without tokens: anyone who can reach it could \
                 publish and replay events. Add [[tokens]] to the config file (--config), or \
                 listen on a loopback address such as 127.0.0.1"
            );
        }
        let max_batch_events = flags
            .max_batch_events
            .or(file.max_batch_events)
            .unwrap_or(choreo_ingress::DEFAULT_MAX_BATCH_EVENTS);
        let broker_max = choreo_broker::MAX_BATCH_EVENTS;
        if !(1..=broker_max).contains(&max_batch_events) {
            anyhow::bail!(
                "max_batch_events is {max_batch_events}; it must be 1 to {broker_max}, the most events the broker appends at once"
            );
        }
        let max_reply_waiters = flags
            .max_reply_waiters
            .or(file.max_reply_waiters)
            .unwrap_or(choreo_ingress::DEFAULT_MAX_REPLY_WAITERS);
        if max_reply_waiters == 0 {
            anyhow::bail!("max_reply_waiters must be at least 1");
        }
        let max_reply_timeout = flags
            .max_reply_timeout_ms
            .or(file.max_reply_timeout_ms)
            .map_or(choreo_ingress::MAX_REPLY_TIMEOUT, Duration::from_millis);
        if max_reply_timeout.is_zero() || max_reply_timeout > choreo_ingress::MAX_REPLY_TIMEOUT {
            anyhow::bail!(
                "max_reply_timeout_ms is {}; it must be 1 to {}",
                max_reply_timeout.as_millis(),
                choreo_ingress::MAX_REPLY_TIMEOUT.as_millis()
            );
        }
        let max_header_bytes = flags
            .max_header_bytes
            .or(file.max_header_bytes)
            .unwrap_or(choreo_ingress::DEFAULT_MAX_HEADER_BYTES);
        if max_header_bytes < choreo_ingress::MIN_MAX_HEADER_BYTES {
            anyhow::bail!(
                "max_header_bytes is {max_header_bytes}; it must be at least {}",
                choreo_ingress::MIN_MAX_HEADER_BYTES
            );
        }
        let max_connections = flags.max_connections.or(file.max_connections);
        if let Some(asked) = max_connections
            && !(1..=choreo_ingress::MAX_MAX_CONNECTIONS).contains(&asked)
        {
            anyhow::bail!(
                "max_connections is {asked}; it must be 1 to {}",
                choreo_ingress::MAX_MAX_CONNECTIONS
            );
        }
        let idle_timeout = flags
            .idle_timeout_ms
            .or(file.idle_timeout_ms)
            .map_or(choreo_ingress::DEFAULT_IDLE_TIMEOUT, Duration::from_millis);
        if idle_timeout.is_zero() {
            anyhow::bail!("idle_timeout_ms must be at least 1");
        }
        Ok(ServeConfig {
            tokens,
            listen,
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
            max_batch_events,
            max_reply_waiters,
            max_header_bytes,
            max_reply_timeout,
            max_stream_clients: flags
                .max_stream_clients
                .or(file.max_stream_clients)
                .unwrap_or(choreo_ingress::DEFAULT_MAX_STREAM_CLIENTS),
            max_connections,
            idle_timeout,
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
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("choreo.toml");
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

    #[test]
    fn tokens_come_from_the_file_with_their_secrets_checked() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("choreo.toml");
        let resolve = |text: &str| {
            std::fs::write(&file, text).unwrap();
            ServeConfig::resolve(ServeFlags {
                config: Some(file.clone()),
                ..ServeFlags::default()
            })
        };
        let config = resolve(
            "listen = \"0.0.0.0:7070\"\n[[tokens]]\nname = \"ops\"\nsecret = \"0123456789abcdef\"\nscopes = [\"admin\", \"publish:a.*\"]\n",
        )
        .unwrap();
        assert_eq!(config.tokens.len(), 1);
        assert_eq!(config.tokens[0].scopes.len(), 2);
        let both = resolve(
            "[[tokens]]\nname = \"ops\"\nsecret = \"0123456789abcdef\"\nsecret_env = \"X\"\nscopes = [\"admin\"]\n",
        )
        .unwrap_err();
        assert!(format!("{both:#}").contains("exactly one of"), "{both:#}");
        let unset = resolve(
            "[[tokens]]\nname = \"ops\"\nsecret_env = \"CHOREO_TEST_UNSET_TOKEN_VARIABLE\"\nscopes = [\"admin\"]\n",
        )
        .unwrap_err();
        assert!(format!("{unset:#}").contains("is not set"), "{unset:#}");
        let scope = resolve(
            "[[tokens]]\nname = \"ops\"\nsecret = \"0123456789abcdef\"\nscopes = [\"write\"]\n",
        )
        .unwrap_err();
        assert!(
            format!("{scope:#}").contains("unknown scope `write`"),
            "{scope:#}"
        );
        let open = resolve("listen = \"0.0.0.0:7070\"\n").unwrap_err();
        assert!(
            format!("{open:#}").contains("refusing to listen"),
            "{open:#}"
        );
    }

    #[test]
    fn ingress_limits_come_from_flags_or_file_within_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("choreo.toml");
        std::fs::write(&file, "max_batch_events = 10\nmax_reply_waiters = 3\n").unwrap();
        let flags = ServeFlags {
            config: Some(file.clone()),
            max_reply_waiters: Some(5),
            ..ServeFlags::default()
        };
        let config = ServeConfig::resolve(flags).unwrap();
        assert_eq!(config.max_batch_events, 10);
        assert_eq!(config.max_reply_waiters, 5);
        let defaults = ServeConfig::resolve(ServeFlags::default()).unwrap();
        assert_eq!(
            defaults.max_batch_events,
            choreo_ingress::DEFAULT_MAX_BATCH_EVENTS
        );
        std::fs::write(&file, "max_batch_events = 5000\n").unwrap();
        let err = ServeConfig::resolve(ServeFlags {
            config: Some(file),
            ..ServeFlags::default()
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("max_batch_events"), "{err:#}");
    }

    #[test]
    fn connection_bounds_come_from_flags_or_file_and_refuse_zero() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("choreo.toml");
        std::fs::write(
            &file,
            "max_connections = 500
idle_timeout_ms = 2000
",
        )
        .unwrap();
        let config = ServeConfig::resolve(ServeFlags {
            config: Some(file.clone()),
            idle_timeout_ms: Some(1500),
            ..ServeFlags::default()
        })
        .unwrap();
        assert_eq!(config.max_connections, Some(500));
        assert_eq!(config.idle_timeout, Duration::from_millis(1500));
        let defaults = ServeConfig::resolve(ServeFlags::default()).unwrap();
        assert_eq!(defaults.max_connections, None);
        assert_eq!(defaults.idle_timeout, choreo_ingress::DEFAULT_IDLE_TIMEOUT);
        for (line, named) in [
            ("max_connections = 0\n", "max_connections"),
            ("max_connections = 1000000000\n", "max_connections"),
            ("idle_timeout_ms = 0\n", "idle_timeout_ms"),
        ] {
            std::fs::write(&file, line).unwrap();
            let err = ServeConfig::resolve(ServeFlags {
                config: Some(file.clone()),
                ..ServeFlags::default()
            })
            .unwrap_err();
            assert!(format!("{err:#}").contains(named), "{err:#}");
        }
    }
}
