//! choreo's integration suite: the real `choreo` binary, started on a random port with a
//! fresh temp dir per test, driven over HTTP with real components (the first-party
//! handlers and the fixtures under `tests/fixtures`, built by `choreo-test-guests`).
//!
//! It holds the guarantees of issue 4 ("What must hold"), one module per area:
//! - `harness`: temp dirs, starting and killing the server, the API client, `eventually`.
//! - `choreography`: three handlers reacting to each other's events, exactly once, in order.
//! - `hot_deploy`: swapping, breaking, removing and re-adding a component while it serves.
//! - `crash`: `kill -9` under load, then a restart on the same dirs.
//! - `hostile`: a misbehaving handler retries, dead-letters, and harms no other handler.
//! - `bad_requests`: malformed requests get 4xx problem+json answers.
//! - `operate`: dead-letters (HTTP and `choreo dlq`), `/metrics`, `/v1/topics`.
//!
//! Nothing here sleeps to synchronise: every wait polls with a deadline
//! ([`harness::eventually`]), and the deadlines are generous because CI runs a debug build
//! on a loaded two-core machine. No test measures speed; `choreo bench` does that.

#![allow(clippy::unwrap_used)]

mod bad_requests;
mod choreography;
mod crash;
mod harness;
mod hostile;
mod hot_deploy;
mod operate;
