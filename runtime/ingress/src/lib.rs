//! choreo's HTTP ingress (hyper): publishing over HTTP with the CloudEvents binary
//! binding, browsing and tracing the log, a live tail as server-sent events, handlers'
//! read side, the handler catalog, and health and readiness probes. Every error is
//! `application/problem+json` with a message a person can act on.
//!
//! It holds little state of its own: [`AppState`] points at the broker (publishing,
//! queue statistics), the deploy registry (what is deployed) and the dispatcher
//! (delivery counters), and counts the open live streams ([`Streams`]). It never touches
//! wasmtime types.
//!
//! Layout:
//! - `server`: [`serve`] — HTTP/1.1 and h2c on one listener, graceful stop.
//! - `routes`: the routing table, health and readiness.
//! - `publish`: `POST /v1/topics/{topic}`.
//! - `handlers`: `GET /v1/handlers`.
//! - `events`: `GET /v1/events`, and events as structured CloudEvents JSON.
//! - `trace`: `GET /v1/events/{id}`, an event with its causation tree.
//! - `stream`: `GET /v1/stream`, the log as server-sent events.
//! - `query`: `GET|POST /v1/query/{handler}/{path}`, the read side.
//! - `cloudevents`: the binary-mode binding.
//! - `problem`: problem+json errors.

mod cloudevents;
mod events;
mod handlers;
mod problem;
mod publish;
mod query;
mod routes;
mod server;
mod stream;
mod trace;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use choreo_broker::Broker;
use choreo_deploy::Registry;
use choreo_dispatch::Dispatcher;

pub use cloudevents::{DEFAULT_SOURCE, SPEC_VERSION};
pub use events::to_cloudevent;
pub use problem::Problem;
pub use server::{SHUTDOWN_GRACE, serve};
pub use stream::{KEEP_ALIVE, STREAM_PAGE, Streams};
pub use trace::{MAX_TRACE_DEPTH, MAX_TRACE_NODES, producer};

/// Largest request body accepted by default: the broker's largest event (1 MiB) plus
/// room for attributes sent in the body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Live streams (`GET /v1/stream`) open at once by default. Each holds a connection, a
/// task's worth of memory and a page of events; past the limit clients get 503.
pub const DEFAULT_MAX_STREAM_CLIENTS: usize = 256;

/// Limits of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressConfig {
    /// Largest request body, in bytes (answer 413 beyond). Default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Most live streams open at once (answer 503 beyond). Default
    /// [`DEFAULT_MAX_STREAM_CLIENTS`].
    pub max_stream_clients: usize,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_stream_clients: DEFAULT_MAX_STREAM_CLIENTS,
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
    /// The open live streams, and the signal that ends them when the server stops.
    pub streams: Streams,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
