//! Handler manifests: the optional `<stem>.toml` beside a `<stem>.wasm`.
//!
//! The TOML an author writes is parsed into strict raw structs (unknown keys are
//! errors), then validated into a read-only [`Manifest`]; code that runs handlers never
//! sees the TOML. Every error names the file and the key, and the table it sits in.
//!
//! ```toml
//! concurrency = 4                  # 1..=MAX_CONCURRENCY, default 1 (strict order)
//! start = "earliest"               # "next" (default) | "earliest" | RFC 3339 time
//! deliveries_per_instance = 1000   # 1 (default): a fresh instance per delivery
//!
//! [limits]                         # choreo_host::Limits; every key optional
//! deadline_ms = 2000
//!
//! [retry]                          # defaults: choreo_broker::RetryPolicy::default()
//! max_attempts = 3
//! initial_backoff_ms = 500
//! max_backoff_ms = 30000
//! jitter = 0.1
//!
//! [config]                         # string → string, read by the guest's `config` import
//! region = "eu"
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use choreo_broker::{MAX_CONCURRENCY, RetryPolicy, StartPosition};
use choreo_core::Timestamp;
use choreo_host::{Limits, MAX_DELIVERIES_PER_INSTANCE};
use serde::Deserialize;

use crate::Error;

/// Deliveries in flight by default: one, so a handler sees its events in publish order
/// unless its manifest asks for more (then order holds per key).
pub const DEFAULT_CONCURRENCY: usize = 1;

/// Most attempts a manifest may ask for: past this, a failing event occupies its key's
/// place in the queue for hours instead of reaching the dead-letter topic.
pub const MAX_ATTEMPTS: u32 = 100;

/// Longest backoff a manifest may ask for: a retry scheduled further out looks to an
/// operator like a lost event.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);

/// Most `[config]` entries: they are copied into every call's context.
pub const MAX_CONFIG_ENTRIES: usize = 256;

/// Longest `[config]` key or value, in bytes; config is for settings, not data.
pub const MAX_CONFIG_VALUE_BYTES: usize = 64 << 10;

/// Largest manifest file, in bytes: a manifest is a few lines; anything bigger is a
/// mistake (or not a manifest) and is refused before it is parsed.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// A handler's validated deployment settings. [`Manifest::default`] applies when there is
/// no manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Deliveries in flight at once. Default [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
    /// Where a new handler's queue starts. Default [`StartPosition::Next`].
    pub start: StartPosition,
    /// How failed deliveries are retried. Default [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// Limits of every call. Default [`Limits::default`].
    pub limits: Limits,
    /// Values the guest reads through its `config` import. Default empty.
    pub config: BTreeMap<String, String>,
    /// Deliveries one instance serves in turn before it is replaced. Default 1, a fresh
    /// instance per delivery; see `choreo_host::HandlerSettings::deliveries_per_instance`.
    pub deliveries_per_instance: u32,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            concurrency: DEFAULT_CONCURRENCY,
            start: StartPosition::Next,
            retry: RetryPolicy::default(),
            limits: Limits::default(),
            config: BTreeMap::new(),
            deliveries_per_instance: 1,
        }
    }
}

/// The manifest as written; every key optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    concurrency: Option<i64>,
    start: Option<String>,
    deliveries_per_instance: Option<i64>,
    limits: Option<Limits>,
    retry: Option<RawRetry>,
    config: Option<BTreeMap<String, String>>,
}

/// The `[retry]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: Option<i64>,
    initial_backoff_ms: Option<u64>,
    max_backoff_ms: Option<u64>,
    jitter: Option<f64>,
}

impl Manifest {
    /// Parses and validates a manifest's text; `path_for_errors` names it in errors.
    pub fn parse(path_for_errors: &Path, text: &str) -> Result<Self, Error> {
        let fail = |message: String| Error::Manifest {
            file: path_for_errors.to_path_buf(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|err| fail(describe(text, &err)))?;
        let mut manifest = Manifest::default();
        if let Some(concurrency) = raw.concurrency {
            manifest.concurrency = usize::try_from(concurrency)
                .ok()
                .filter(|c| (1..=MAX_CONCURRENCY).contains(c))
                .ok_or_else(|| {
                    fail(format!(
                        "`concurrency` must be 1 to {MAX_CONCURRENCY}, found {concurrency}"
                    ))
                })?;
        }
        if let Some(start) = raw.start {
            manifest.start = parse_start(&start).ok_or_else(|| {
                fail(format!(
                    "`start` must be \"next\", \"earliest\" or an RFC 3339 time such as \
                     \"2026-01-31T12:00:00Z\", found {start:?}"
                ))
            })?;
        }
        if let Some(count) = raw.deliveries_per_instance {
            manifest.deliveries_per_instance = u32::try_from(count)
                .ok()
                .filter(|c| (1..=MAX_DELIVERIES_PER_INSTANCE).contains(c))
                .ok_or_else(|| {
                    fail(format!(
                        "`deliveries_per_instance` must be 1 to \
                         {MAX_DELIVERIES_PER_INSTANCE}, found {count}"
                    ))
                })?;
        }
        if let Some(limits) = raw.limits {
            if limits.deadline.is_zero() {
                return Err(fail("`limits.deadline_ms` must be at least 1".into()));
            }
            manifest.limits = limits;
        }
        if let Some(retry) = raw.retry {
            manifest.retry = retry_policy(retry).map_err(fail)?;
        }
        if let Some(config) = raw.config {
            check_config(&config).map_err(fail)?;
            manifest.config = config;
        }
        Ok(manifest)
    }
}

fn parse_start(text: &str) -> Option<StartPosition> {
    match text {
        "next" => Some(StartPosition::Next),
        "earliest" => Some(StartPosition::Earliest),
        time => time.parse::<Timestamp>().ok().map(StartPosition::Time),
    }
}

fn retry_policy(raw: RawRetry) -> Result<RetryPolicy, String> {
    let mut retry = RetryPolicy::default();
    if let Some(attempts) = raw.max_attempts {
        retry.max_attempts = u32::try_from(attempts)
            .ok()
            .filter(|a| (1..=MAX_ATTEMPTS).contains(a))
            .ok_or_else(|| {
                format!("`retry.max_attempts` must be 1 to {MAX_ATTEMPTS}, found {attempts}")
            })?;
    }
    let max_ms = MAX_BACKOFF.as_millis();
    for (key, value, slot) in [
        (
            "initial_backoff_ms",
            raw.initial_backoff_ms,
            &mut retry.initial_backoff,
        ),
        ("max_backoff_ms", raw.max_backoff_ms, &mut retry.max_backoff),
    ] {
        if let Some(ms) = value {
            if u128::from(ms) > max_ms {
                return Err(format!(
                    "`retry.{key}` must be at most {max_ms} (one day), found {ms}"
                ));
            }
            *slot = Duration::from_millis(ms);
        }
    }
    if retry.initial_backoff > retry.max_backoff {
        return Err(format!(
            "`retry.initial_backoff_ms` ({}) must not exceed `retry.max_backoff_ms` ({})",
            retry.initial_backoff.as_millis(),
            retry.max_backoff.as_millis()
        ));
    }
    if let Some(jitter) = raw.jitter {
        if !(0.0..=1.0).contains(&jitter) {
            return Err(format!(
                "`retry.jitter` must be between 0 and 1, found {jitter}"
            ));
        }
        retry.jitter = jitter;
    }
    Ok(retry)
}

fn check_config(config: &BTreeMap<String, String>) -> Result<(), String> {
    if config.len() > MAX_CONFIG_ENTRIES {
        return Err(format!(
            "`[config]` has {} entries; the limit is {MAX_CONFIG_ENTRIES}",
            config.len()
        ));
    }
    for (key, value) in config {
        if key.len() > MAX_CONFIG_VALUE_BYTES || value.len() > MAX_CONFIG_VALUE_BYTES {
            return Err(format!(
                "`config.{key}` is longer than {MAX_CONFIG_VALUE_BYTES} bytes"
            ));
        }
    }
    Ok(())
}

/// A TOML error in one line: the message (with serde's "field" said as "key"), then the
/// line and the table the problem is in.
fn describe(text: &str, err: &toml::de::Error) -> String {
    let message = err
        .message()
        .trim_end()
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key");
    let Some(span) = err.span() else {
        return message;
    };
    let line_index = text[..span.start.min(text.len())]
        .bytes()
        .filter(|b| *b == b'\n')
        .count();
    let is_header = |line: &str| line.starts_with('[') && line.ends_with(']');
    let lines: Vec<&str> = text.lines().map(str::trim).take(line_index + 1).collect();
    // An error on a header line is about the table's own name, a top-level key.
    let table = match lines.get(line_index) {
        Some(line) if is_header(line) => None,
        _ => lines.iter().rev().copied().find(|line| is_header(line)),
    };
    match table {
        Some(table) => format!("{message} (line {}, in {table})", line_index + 1),
        None => format!("{message} (line {})", line_index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(Path::new("deploy/orders.toml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_manifest_is_the_default() {
        let manifest = parse("").unwrap();
        assert_eq!(manifest, Manifest::default());
        assert_eq!(manifest.concurrency, 1);
        assert_eq!(manifest.start, StartPosition::Next);
        assert_eq!(manifest.retry, RetryPolicy::default());
    }

    #[test]
    fn every_key_is_read() {
        let manifest = parse(
            r#"
            concurrency = 4
            start = "2026-01-31T12:00:00Z"
            deliveries_per_instance = 500

            [limits]
            deadline_ms = 250
            max_publishes = 3

            [retry]
            max_attempts = 3
            initial_backoff_ms = 100
            max_backoff_ms = 2000
            jitter = 0.5

            [config]
            region = "eu"
            "#,
        )
        .unwrap();
        assert_eq!(manifest.concurrency, 4);
        assert_eq!(manifest.deliveries_per_instance, 500);
        assert_eq!(
            manifest.start,
            StartPosition::Time("2026-01-31T12:00:00Z".parse().unwrap())
        );
        assert_eq!(manifest.limits.deadline, Duration::from_millis(250));
        assert_eq!(manifest.limits.max_publishes, 3);
        assert_eq!(
            manifest.limits.max_memory_bytes,
            Limits::default().max_memory_bytes
        );
        assert_eq!(
            manifest.retry,
            RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_millis(2000),
                jitter: 0.5,
            }
        );
        assert_eq!(manifest.config["region"], "eu");
        assert_eq!(
            parse("start = \"earliest\"").unwrap().start,
            StartPosition::Earliest
        );
        assert_eq!(
            parse("start = \"next\"").unwrap().start,
            StartPosition::Next
        );
    }

    #[test]
    fn unknown_keys_name_the_file_the_key_and_the_table() {
        let err = parse("concurency = 2").unwrap_err();
        assert!(
            err.starts_with("deploy/orders.toml: unknown key `concurency`"),
            "{err}"
        );
        assert!(err.contains("(line 1)"), "{err}");
        let err = parse("[limits]\ndeadline_ms = 5\nmax_memroy_bytes = 1\n").unwrap_err();
        assert!(err.contains("unknown key `max_memroy_bytes`"), "{err}");
        assert!(err.contains("line 3, in [limits]"), "{err}");
        let err = parse("[retry]\nattempts = 1\n").unwrap_err();
        assert!(err.contains("unknown key `attempts`"), "{err}");
        let err = parse("[sandbox]\n").unwrap_err();
        assert!(err.contains("unknown key `sandbox`"), "{err}");
        assert!(err.ends_with("(line 1)"), "{err}");
    }

    #[test]
    fn bad_start_times_are_refused() {
        for start in ["yesterday", "2026-13-01T00:00:00Z", "2026-01-01"] {
            let err = parse(&format!("start = {start:?}")).unwrap_err();
            assert!(err.contains("`start` must be"), "{start}: {err}");
            assert!(err.contains(start), "{err}");
        }
        let err = parse("start = 5").unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
    }

    #[test]
    fn concurrency_must_be_in_range() {
        for bad in ["0", "-1", "100000"] {
            let err = parse(&format!("concurrency = {bad}")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "`concurrency` must be 1 to {MAX_CONCURRENCY}, found {bad}"
                )),
                "{err}"
            );
        }
        assert!(parse("concurrency = \"2\"").is_err());
    }

    #[test]
    fn deliveries_per_instance_must_be_in_range() {
        assert_eq!(parse("").unwrap().deliveries_per_instance, 1);
        for bad in ["0", "-3", "100001"] {
            let err = parse(&format!("deliveries_per_instance = {bad}")).unwrap_err();
            assert!(
                err.contains(&format!(
                    "`deliveries_per_instance` must be 1 to {MAX_DELIVERIES_PER_INSTANCE}, \
                     found {bad}"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn retry_values_are_checked() {
        let cases = [
            ("max_attempts = 0", "`retry.max_attempts` must be 1"),
            ("jitter = 1.5", "`retry.jitter` must be between 0 and 1"),
            (
                "initial_backoff_ms = 10\nmax_backoff_ms = 5",
                "must not exceed",
            ),
            ("max_backoff_ms = 100000000000", "must be at most"),
        ];
        for (text, expected) in cases {
            let err = parse(&format!("[retry]\n{text}\n")).unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = parse("[limits]\ndeadline_ms = 0\n").unwrap_err();
        assert!(err.contains("deadline_ms"), "{err}");
    }

    #[test]
    fn config_values_are_strings() {
        let err = parse("[config]\nport = 80\n").unwrap_err();
        assert!(err.contains("invalid type"), "{err}");
        assert!(err.contains("in [config]"), "{err}");
    }
}
