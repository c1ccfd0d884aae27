//! Per-handler resource limits and the store limiter that enforces the memory ones.
//!
//! Every limit has a named default with the reason for its size. A handler's manifest
//! may override them, within the ceilings of the engine's instance pool
//! ([`crate::PoolConfig`]), which are checked when a handler is loaded.

use std::time::Duration;

use serde::Deserialize;

/// Wall-clock time one `handle` or `query` call may take by default. Event handlers
/// are meant to be short; a stuck one must give its worker back quickly.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);

/// Default ceiling on a handler instance's linear memory. Enough for interpreted
/// guests (a Python or JavaScript runtime starts at tens of MiB) while a memory bomb
/// is stopped long before it hurts the host.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 128 << 20;

/// Default ceiling on elements across a handler instance's tables. Interpreted guests
/// use large function tables; 100k elements fit componentize-py.
pub const DEFAULT_MAX_TABLE_ELEMENTS: usize = 100_000;

/// Default ceiling on core instances inside one component instance (a component made
/// of several dynamically linked core modules, like a Python guest, needs dozens).
pub const DEFAULT_MAX_CORE_INSTANCES: usize = 64;

/// Default ceiling on the size of an event handed to `handle`, attributes included.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// Default ceiling on the size of one event a handler publishes, attributes included.
pub const DEFAULT_MAX_PUBLISH_BYTES: usize = 1 << 20;

/// Default number of events one call may publish: fan-out is normal, unbounded fan-out
/// from a single event is a bug that would flood the broker.
pub const DEFAULT_MAX_PUBLISHES: usize = 100;

/// Default ceiling on one log line (from the `log` import or guest stdout/stderr);
/// longer lines are cut so a guest cannot flood the log with one call.
pub const DEFAULT_MAX_LOG_LINE_BYTES: usize = 4 << 10;

/// Default ceiling on everything one call writes to stdout and stderr together; the
/// rest is dropped with one warning.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = 64 << 10;

/// Longest state key: keys end up in storage keys and URLs.
pub const MAX_STATE_KEY_BYTES: usize = 512;

/// Default ceiling on one state value.
pub const DEFAULT_MAX_STATE_VALUE_BYTES: usize = 1 << 20;

/// Default number of state writes one call may make; they are committed atomically with
/// the delivery, so they must fit comfortably in one storage batch.
pub const DEFAULT_MAX_STATE_WRITES: usize = 1_000;

/// Most entries one `state.scan` returns, whatever `limit` the guest asks for.
pub const MAX_SCAN_ENTRIES: u32 = 1_000;

/// The limits one handler runs under. Deserialised from the `[limits]` table of a
/// handler manifest; every field is optional there and defaults to the constant above.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Wall-clock deadline of one call (`deadline_ms` in a manifest).
    #[serde(rename = "deadline_ms", with = "millis")]
    pub deadline: Duration,
    /// Linear memory of one instance, in bytes.
    pub max_memory_bytes: usize,
    /// Table elements of one instance.
    pub max_table_elements: usize,
    /// Core instances inside one component instance.
    pub max_core_instances: usize,
    /// Size of an event handed to the handler.
    pub max_event_bytes: usize,
    /// Size of one published event.
    pub max_publish_bytes: usize,
    /// Events one call may publish.
    pub max_publishes: usize,
    /// Length of one log line.
    pub max_log_line_bytes: usize,
    /// Bytes of stdout and stderr kept per call.
    pub max_output_bytes: usize,
    /// Size of one state value.
    pub max_state_value_bytes: usize,
    /// State writes per call.
    pub max_state_writes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: DEFAULT_DEADLINE,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_table_elements: DEFAULT_MAX_TABLE_ELEMENTS,
            max_core_instances: DEFAULT_MAX_CORE_INSTANCES,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            max_publish_bytes: DEFAULT_MAX_PUBLISH_BYTES,
            max_publishes: DEFAULT_MAX_PUBLISHES,
            max_log_line_bytes: DEFAULT_MAX_LOG_LINE_BYTES,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
            max_state_value_bytes: DEFAULT_MAX_STATE_VALUE_BYTES,
            max_state_writes: DEFAULT_MAX_STATE_WRITES,
        }
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// Enforces a handler's memory, table and instance limits inside one store, and
/// remembers a refused growth so a resulting trap can be reported as "memory limit"
/// rather than as the guest's own `unreachable`.
#[derive(Debug)]
pub(crate) struct Limiter {
    max_memory_bytes: usize,
    max_table_elements: usize,
    max_core_instances: usize,
    /// The size a refused `memory.grow` asked for, if one was refused.
    pub(crate) memory_refused: Option<usize>,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Limiter {
            max_memory_bytes: limits.max_memory_bytes,
            max_table_elements: limits.max_table_elements,
            max_core_instances: limits.max_core_instances,
            memory_refused: None,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory_bytes {
            self.memory_refused = Some(desired);
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.max_table_elements)
    }

    fn instances(&self) -> usize {
        self.max_core_instances
    }

    fn tables(&self) -> usize {
        self.max_core_instances
    }

    fn memories(&self) -> usize {
        self.max_core_instances
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_tables_override_only_what_they_name() {
        let limits: Limits = toml_like(r#"{"deadline_ms": 250, "max_publishes": 3}"#);
        assert_eq!(limits.deadline, Duration::from_millis(250));
        assert_eq!(limits.max_publishes, 3);
        assert_eq!(limits.max_memory_bytes, DEFAULT_MAX_MEMORY_BYTES);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = serde_json::from_str::<Limits>(r#"{"max_memroy_bytes": 1}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `max_memroy_bytes`"),
            "{err}"
        );
    }

    fn toml_like(json: &str) -> Limits {
        serde_json::from_str(json).unwrap()
    }
}
