//! Broker configuration and limits.
//!
//! [`Config`] lists every tunable with its default; the `MAX_*` constants are hard
//! limits that protect the broker itself (memory held by one request, the length of one
//! group commit) and are not configurable.

use std::path::PathBuf;
use std::time::Duration;

use crate::Clock;

/// Most events one publish call (or one outcome's publishes) may carry. A batch is one
/// atomic step in one group commit; this keeps a single caller from making a group, and
/// so every other caller's latency, arbitrarily long.
pub const MAX_BATCH_EVENTS: usize = 1024;

/// Most bytes (by [`choreo_core::Event::size`]) one publish call may carry, for the same
/// reason as [`MAX_BATCH_EVENTS`]: bounded memory per request and bounded group length.
pub const MAX_BATCH_BYTES: usize = 16 * 1024 * 1024;

/// Most deliveries one lease call may return: one call reads every leased event from the
/// store while the caller waits.
pub const MAX_LEASE_BATCH: usize = 1024;

/// Most deliveries a handler may have in flight at once.
pub const MAX_CONCURRENCY: usize = 4096;

/// Longest state key. Keys are stored inside the broker's own keys and scanned by prefix.
pub const MAX_STATE_KEY_BYTES: usize = 1024;

/// Largest state value: the same bound as an event, since both travel through one commit.
pub const MAX_STATE_VALUE_BYTES: usize = 1024 * 1024;

/// Most rows one read (`read_events`, `state_scan`, `dead_letters`) returns; callers page.
pub const MAX_READ_ROWS: usize = 1000;

/// Most log entries one read inspects while filtering by pattern, so a rare pattern over
/// a long log returns a partial page (with a cursor) instead of scanning it all at once.
pub const MAX_READ_SCAN: usize = 10_000;

/// Longest failure reason kept with a retry or a dead-letter. Reasons come from guests;
/// longer ones are truncated rather than refused, so a failure can always be recorded.
pub const MAX_REASON_BYTES: usize = 4096;

/// Most requests the writer folds into one group commit: bounds the time one group takes,
/// so the first request in it does not wait behind an unbounded number of others.
pub const MAX_GROUP_REQUESTS: usize = 4096;

/// Most log entries one retention sweep inspects: bounds the extra time it adds to the
/// group commit it runs in. The next sweep continues the work.
pub const MAX_RETENTION_SCAN: usize = 10_000;

/// When an acknowledged write is on stable storage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Durability {
    /// Every acknowledgement follows a write of the log that reaches the disk (direct
    /// and synchronous, or followed by an fdatasync): an acknowledged event survives
    /// power loss. Concurrent callers share one such write (group commit).
    #[default]
    Strict,
    /// Acknowledged once written to the operating system (survives a process crash);
    /// synced to disk in the background within [`Config::sync_interval`].
    Buffered,
}

impl Durability {
    /// The name used in configuration and reported by `/v1/info`.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Strict => "strict",
            Durability::Buffered => "buffered",
        }
    }
}

/// How long the log keeps events no queue holds any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Events appended longer ago are removed. Default: 7 days.
    pub max_age: Option<Duration>,
    /// Oldest events are removed while the log holds more bytes. Default: 1 GiB.
    pub max_bytes: Option<u64>,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_age: Some(Duration::from_secs(7 * 24 * 3600)),
            max_bytes: Some(1024 * 1024 * 1024),
        }
    }
}

/// Everything [`crate::SledBroker::open`] needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of the store. Required.
    pub path: PathBuf,
    /// Default: [`Durability::Strict`].
    pub durability: Durability,
    /// In buffered mode, the longest time an acknowledged write stays unsynced.
    /// Default: 1 s (Redis's `appendfsync everysec`).
    pub sync_interval: Duration,
    /// Bytes of writes (keys and values) applied between checkpoints. Until its
    /// checkpoint, a write is held in memory in front of sled and in the write-ahead
    /// log; the checkpoint writes it into sled, makes sled durable and retires that part
    /// of the log (up to two segments are kept for reuse, the rest deleted). Larger
    /// means fewer checkpoints, more memory (up to about twice this, while one
    /// checkpoint runs) and a longer replay after a crash. Default: 32 MiB.
    pub checkpoint_bytes: u64,
    /// Entries per file of the id index (`ids/`), 16 bytes each. Larger means fewer
    /// files for a lookup by id to search, and more of the log to index again after a
    /// crash. Default: 65,536.
    pub index_run_entries: usize,
    /// Bytes of sled's page cache. sled's own default (1 GiB) is too much for a runtime
    /// that also hosts Wasm instances, so it is bounded here. Default: 64 MiB.
    pub cache_bytes: u64,
    /// A second publish with the same `source` and `id` within this window returns the
    /// first event's seq and stores nothing. Default: 2 min (JetStream's default).
    ///
    /// The window is held in memory, about 40 bytes per event published within it with
    /// an id of its publisher's (at 30,000 such publishes/s for 2 min, ≈ 150 MB); shorten
    /// it for sustained higher rates. Events whose ids choreo generated are not kept.
    pub dedup_window: Duration,
    /// Default: see [`Retention`].
    pub retention: Retention,
    /// How often retention runs (piggy-backed on a group commit). Default: 10 s.
    pub retention_interval: Duration,
    /// Largest event accepted, by [`choreo_core::Event::size`]. Default: 1 MiB
    /// (NATS's default max payload, so events move to JetStream unchanged).
    pub max_event_bytes: usize,
    /// Where the broker reads the time. Default: [`Clock::system`].
    pub clock: Option<Clock>,
}

impl Config {
    /// The defaults, with the store at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Config {
            path: path.into(),
            durability: Durability::Strict,
            sync_interval: Duration::from_secs(1),
            checkpoint_bytes: 32 * 1024 * 1024,
            index_run_entries: 1 << 16,
            cache_bytes: 64 * 1024 * 1024,
            dedup_window: Duration::from_secs(120),
            retention: Retention::default(),
            retention_interval: Duration::from_secs(10),
            max_event_bytes: 1024 * 1024,
            clock: None,
        }
    }
}
