//! choreo's HTTP ingress (hyper): publishing over HTTP with the CloudEvents binding (binary,
//! structured and batch modes) and request-reply, browsing and tracing the log, a live
//! tail as server-sent events, handlers' read side, the handler and topic catalogs,
//! dead-letters, Prometheus metrics, bearer-token access, and health and readiness
//! probes. Every error is `application/problem+json` with a message a person can act on.
//!
//! It holds little state of its own: [`AppState`] points at the broker (publishing,
//! queue statistics), the deploy registry (what is deployed) and the dispatcher
//! (delivery counters); its own are the requests waiting for replies, the open live
//! streams ([`Streams`]) and [`Telemetry`] (counts of published events and HTTP requests,
//! and the topics catalog, fed by [`track_log`]). It never touches wasmtime types.
//!
//! Layout:
//! - `server`: [`serve`] — HTTP/1.1 and h2c on one listener, the connection limit and
//!   idle timeout, graceful stop.
//! - `connection`: what a connection has in progress, which decides when it is idle.
//! - `body`: reading a request body within the size limit and the idle timeout.
//! - `routes`: the routing table, health and readiness.
//! - `auth`: bearer tokens and their scopes.
//! - `publish`: `POST /v1/topics/{topic}` and `POST /v1/events`.
//! - `reply`: request-reply (`?reply=wait`), the hub that hands replies to waiters.
//! - `handlers`: `GET /v1/handlers`.
//! - `info`: `GET /v1/info`, version, durability, access and limits.
//! - `events`: `GET /v1/events`.
//! - `trace`: `GET /v1/events/{id}`, an event with its causation tree.
//! - `stream`: `GET /v1/stream`, the log as server-sent events.
//! - `topics`: `GET /v1/topics`, the topics catalog.
//! - `dlq`: `/v1/dlq`, dead-letters: list, inspect, replay, discard.
//! - `metrics`: `GET /metrics`, Prometheus text.
//! - `process`: the process's own figures for it (file descriptors, memory, CPU).
//! - `telemetry`: [`Telemetry`], what the ingress counts, and [`track_log`], the log tail
//!   that feeds it.
//! - `catalog`: the bounded in-memory topics catalog.
//!
//! Parsing CloudEvents (binary, structured and batch modes) and writing them is the
//! `choreo-cloudevents` crate's job; this crate maps its refusals to problem+json.
//! - `query`: `GET|POST /v1/query/{handler}/{path}`, the read side.
//! - `problem`: problem+json errors.

mod auth;
mod body;
mod catalog;
mod connection;
mod dlq;
mod events;
mod handlers;
mod info;
mod metrics;
mod problem;
mod process;
mod publish;
mod query;
mod reply;
mod routes;
mod server;
mod stream;
mod telemetry;
mod topics;
mod trace;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use choreo_broker::Broker;
use choreo_deploy::Registry;
use choreo_dispatch::Dispatcher;

use reply::ReplyHub;

pub use auth::{Auth, Caller, MIN_SECRET_BYTES, Need, Scope, TokenSpec};
pub use catalog::{MAX_PRODUCERS, MAX_TRACKED_TOPICS, RATE_WINDOW_SECS};
pub use choreo_cloudevents::{
    DEFAULT_SOURCE, SPEC_VERSION, StructuredEvent, percent_encode_header,
};
pub use problem::Problem;
pub use reply::{DEFAULT_MAX_REPLY_WAITERS, DEFAULT_REPLY_TIMEOUT, MAX_REPLY_TIMEOUT};
pub use server::{SHUTDOWN_GRACE, serve};
pub use stream::{KEEP_ALIVE, STREAM_PAGE, Streams};
pub use telemetry::{MAX_TOPIC_LABELS, OTHER_LABEL, Telemetry, track_log};
pub use trace::{MAX_TRACE_DEPTH, MAX_TRACE_NODES, producer};

/// Largest request body accepted by default: the broker's largest event (1 MiB) plus
/// room for attributes sent in the body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Most events in one batch-mode request by default: as many as the broker appends in
/// one step ([`choreo_broker::MAX_BATCH_EVENTS`]), which is also the most allowed.
pub const DEFAULT_MAX_BATCH_EVENTS: usize = choreo_broker::MAX_BATCH_EVENTS;
/// Live streams (`GET /v1/stream`) open at once by default. Each holds a connection, a
/// task's worth of memory and a page of events; past the limit clients get 503.
pub const DEFAULT_MAX_STREAM_CLIENTS: usize = 256;

/// HTTP connections open at once by default. Each holds a file descriptor, so `choreo
/// serve` also keeps this below its open-files limit.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// The most `max_connections` may be: far beyond what one process serves well.
pub const MAX_MAX_CONNECTIONS: usize = 1_000_000;
/// How long a connection may keep the server waiting by default. Longer than the 60 s
/// idle timeout of common load balancers, so that they, not choreo, close an idle
/// keep-alive connection: the other order can fail a request sent just as it closes.
pub const DEFAULT_IDLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(75);

/// Limits of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressConfig {
    /// Largest request body, in bytes (answer 413 beyond). Default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Most events in one batch (answer 413 beyond), at most
    /// [`choreo_broker::MAX_BATCH_EVENTS`]. Default [`DEFAULT_MAX_BATCH_EVENTS`].
    pub max_batch_events: usize,
    /// Most requests waiting for a reply at once (answer 503 beyond). Default
    /// [`DEFAULT_MAX_REPLY_WAITERS`].
    pub max_reply_waiters: usize,
    /// Largest request head (request line and headers), in bytes: HTTP/1.1 answers 431
    /// beyond it, HTTP/2 refuses the stream. Default [`DEFAULT_MAX_HEADER_BYTES`].
    pub max_header_bytes: usize,
    /// Longest `timeout` a `reply=wait` may ask for (400 beyond), at most
    /// [`MAX_REPLY_TIMEOUT`]; also caps the default wait. Default [`MAX_REPLY_TIMEOUT`].
    pub max_reply_timeout: std::time::Duration,
    /// Most live streams open at once (answer 503 beyond). Default
    /// [`DEFAULT_MAX_STREAM_CLIENTS`].
    pub max_stream_clients: usize,
    /// Most HTTP connections open at once; more wait in the listen backlog until one
    /// closes. Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// How long a connection may go with no request in progress (from its opening, or
    /// from its last answer) before it is closed, and how long a request's body may
    /// stop arriving before it is answered 408. Default [`DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: std::time::Duration,
}

/// Largest request head accepted by default: far beyond any real client's, far below
/// what could pressure memory across many connections.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 << 10;

/// The smallest head limit accepted: hyper needs room for a request line and a few
/// headers (its HTTP/1 read buffer has a floor of 8 KiB).
pub const MIN_MAX_HEADER_BYTES: usize = 8 << 10;

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_batch_events: DEFAULT_MAX_BATCH_EVENTS,
            max_reply_waiters: DEFAULT_MAX_REPLY_WAITERS,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_reply_timeout: MAX_REPLY_TIMEOUT,
            max_stream_clients: DEFAULT_MAX_STREAM_CLIENTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// What the API serves from.
pub struct AppState {
    /// The event broker.
    pub broker: Arc<dyn Broker>,
    /// What is deployed.
    pub registry: Registry,
    /// Delivery counters.
    pub dispatcher: Arc<Dispatcher>,
    /// Set once the components present at startup are loaded; `/readyz` answers 503 before.
    pub ready: AtomicBool,
    /// Limits.
    pub config: IngressConfig,
    /// Who may do what.
    pub auth: Auth,
    /// Requests waiting for replies.
    pub(crate) replies: ReplyHub,
    /// The open live streams, and the signal that ends them when the server stops.
    pub streams: Streams,
    /// What the ingress counts; feed it with [`track_log`].
    pub telemetry: Arc<Telemetry>,
    /// One permit per connection that may open ([`IngressConfig::max_connections`]).
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// The state of an API that is not ready yet (see [`AppState::ready`]).
    pub fn new(
        broker: Arc<dyn Broker>,
        registry: Registry,
        dispatcher: Arc<Dispatcher>,
        config: IngressConfig,
        auth: Auth,
        telemetry: Arc<Telemetry>,
    ) -> Self {
        AppState {
            replies: ReplyHub::new(broker.clone(), config.max_reply_waiters),
            connections: Arc::new(tokio::sync::Semaphore::new(config.max_connections)),
            broker,
            registry,
            dispatcher,
            ready: AtomicBool::new(false),
            config,
            auth,
            streams: Streams::default(),
            telemetry,
        }
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}
