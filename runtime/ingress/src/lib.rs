//! choreo's HTTP ingress (hyper): publishing over HTTP with the CloudEvents binary
//! binding, browsing the log, handlers' read side, the handler and topic catalogs,
//! dead-letters, Prometheus metrics, and health and readiness probes. Every error is
//! `application/problem+json` with a message a person can act on.
//!
//! [`AppState`] points at the broker (publishing, queue statistics), the deploy
//! registry (what is deployed) and the dispatcher (delivery counters). The only state
//! of its own is [`Telemetry`]: counts of published events and HTTP requests, and the
//! topics catalog, fed by [`track_log`]. It never touches wasmtime types.
//!
//! Layout:
//! - `server`: [`serve`] — HTTP/1.1 and h2c on one listener, graceful stop.
//! - `routes`: the routing table, health and readiness.
//! - `publish`: `POST /v1/topics/{topic}`.
//! - `handlers`: `GET /v1/handlers`.
//! - `topics`: `GET /v1/topics`, the topics catalog.
//! - `dlq`: `/v1/dlq`, dead-letters: list, inspect, replay, discard.
//! - `metrics`: `GET /metrics`, Prometheus text.
//! - `telemetry`: [`Telemetry`], what the ingress counts, and [`track_log`], the log tail
//!   that feeds it.
//! - `catalog`: the bounded in-memory topics catalog.
//! - `events`: `GET /v1/events`, and events as structured CloudEvents JSON.
//! - `query`: `GET|POST /v1/query/{handler}/{path}`, the read side.
//! - `cloudevents`: the binary-mode binding.
//! - `problem`: problem+json errors.

mod catalog;
mod cloudevents;
mod dlq;
mod events;
mod handlers;
mod metrics;
mod problem;
mod publish;
mod query;
mod routes;
mod server;
mod telemetry;
mod topics;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use choreo_broker::Broker;
use choreo_deploy::Registry;
use choreo_dispatch::Dispatcher;

pub use catalog::{MAX_PRODUCERS, MAX_TRACKED_TOPICS, RATE_WINDOW_SECS};
pub use cloudevents::{DEFAULT_SOURCE, SPEC_VERSION};
pub use events::to_cloudevent;
pub use problem::Problem;
pub use server::{SHUTDOWN_GRACE, serve};
pub use telemetry::{MAX_TOPIC_LABELS, OTHER_LABEL, Telemetry, track_log};

/// Largest request body accepted by default: the broker's largest event (1 MiB) plus
/// room for attributes sent in the body.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1 << 20;

/// Limits of the HTTP API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressConfig {
    /// Largest request body, in bytes (answer 413 beyond). Default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
}

impl Default for IngressConfig {
    fn default() -> Self {
        IngressConfig {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
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
    /// What the ingress counts; feed it with [`track_log`].
    pub telemetry: Arc<Telemetry>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
