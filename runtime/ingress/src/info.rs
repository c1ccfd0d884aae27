//! `GET /v1/info`: what this choreo is and how it is set up — version, the durability
//! its acknowledgements have, whether tokens are required, and the API's limits — so a
//! client or an operator can tell without reading its config.

use http::StatusCode;
use serde_json::json;

use choreo_broker::Durability;

use crate::AppState;
use crate::routes::{Reply, json};

pub(crate) fn show(state: &AppState) -> Reply {
    let durability = match state.broker.durability() {
        Durability::Strict => "strict",
        Durability::Buffered => "buffered",
    };
    let limits = &state.config;
    json(
        StatusCode::OK,
        &json!({
            "name": "choreo",
            "version": env!("CARGO_PKG_VERSION"),
            "durability": durability,
            "auth": if state.auth.is_open() { "open" } else { "tokens" },
            "limits": {
                "max_body_bytes": limits.max_body_bytes,
                "max_batch_events": limits.max_batch_events,
                "max_header_bytes": limits.max_header_bytes,
                "max_reply_waiters": limits.max_reply_waiters,
                "max_reply_timeout_ms": limits.max_reply_timeout.as_millis() as u64,
                "max_stream_clients": limits.max_stream_clients,
                "max_connections": limits.max_connections,
                "idle_timeout_ms": limits.idle_timeout.as_millis() as u64,
            },
        }),
    )
}
