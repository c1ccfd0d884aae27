//! choreo's integration suite: the real `choreo` binary, started on a random port with a
//! fresh temp dir per test, driven over HTTP with real components (the first-party
//! handlers and the fixtures under `tests/fixtures`, built by `choreo-test-guests`).
//!
//! It holds the guarantees of issue 4 ("What must hold"), one module per area:
//! - `harness`: temp dirs, starting and killing the server, the API client, `eventually`.
//! - `cli`: running other `choreo` commands to completion, with a deadline.
//! - `choreography`: three handlers reacting to each other's events, exactly once, in order.
//! - `hot_deploy`: swapping, breaking, removing and re-adding a component while it serves.
//! - `crash`: `kill -9` under load, then a restart on the same dirs.
//! - `hostile`: a misbehaving handler retries, dead-letters, and harms no other handler.
//! - `bad_requests`: malformed requests get 4xx problem+json answers.
//! - `openapi`: the API document lists only served operations; schemathesis finds no
//!   server error and nothing off the document.
//! - `tools`: PyPI test tools (schemathesis) installed on first use.
//! - `http`: HTTP/1.1 keep-alive and h2c on one port; the request-head bound.
//! - `connections`: idle and slow clients closed after the idle timeout; newcomers
//!   waiting at the connection limit.
//! - `auth`: bearer tokens and scopes, and the refusal to serve an open API off loopback.
//! - `cloudevents`: structured and batch mode, idempotent publishes, and malformed
//!   CloudEvents refused (issue 5).
//! - `request_reply`: `?reply=wait` answered by a handler, timed out, and bounded.
//! - `polyglot`: Python and JavaScript handlers built from source with choreo's SDKs.
//! - `observe`: an event's causation tree and `choreo trace`; the live stream (SSE) and
//!   `choreo tail`.
//! - `operate`: dead-letters (HTTP and `choreo dlq`).
//! - `metrics`: `/metrics` and `/v1/topics` after a known workload.
//! - `retail`: the retail example's five handlers in three languages, 500 orders end to end.
//! - `scaffold`: `choreo new` in each language, `choreo build`, `choreo deploy`, and what
//!   they refuse.
//! - `bench`: `choreo bench` runs every phase against its own server and reports them.
//! - `storage`: a full disk stops writes with the cause named and the node reported down,
//!   loses nothing answered 202, and a restart on a freed disk resumes.
//!
//! Nothing here sleeps to synchronise: every wait polls with a deadline
//! ([`harness::eventually`]), and the deadlines are generous because CI runs a debug build
//! on a loaded two-core machine. No test measures speed; `choreo bench` does that.

#![allow(clippy::unwrap_used)]

mod auth;
mod bad_requests;
mod bench;
mod choreography;
mod cli;
mod cloudevents;
mod connections;
mod crash;
mod harness;
mod hostile;
mod hot_deploy;
mod http;
mod metrics;
mod observe;
mod openapi;
mod operate;
mod polyglot;
mod request_reply;
mod retail;
mod scaffold;
mod storage;
mod tools;
