//! `GET /v1/handlers`: every handler choreo knows — deployed ones with their version,
//! subscriptions and publish patterns, and ones whose component was removed but whose
//! queue is kept — with queue depth, delivery counters and last error; plus the deploy
//! problems (files that failed to load).
//!
//! `DELETE /v1/handlers/{handler}`: retires a handler whose component was removed, deleting
//! what choreo kept for it (subscription, queue, dead-letters, state). Until then its
//! queue keeps taking every matching event, and holds those events in the log past
//! retention, so that a redeploy resumes where it stopped.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Serialize;

use choreo_core::{HandlerName, Timestamp};
use choreo_dispatch::DeleteError;

use crate::AppState;
use crate::problem::Problem;
use crate::publish::broker_problem;
use crate::routes::{Reply, json};

#[derive(Serialize)]
struct Listing {
    handlers: Vec<HandlerView>,
    problems: Vec<ProblemView>,
}

#[derive(Serialize)]
struct HandlerView {
    name: String,
    /// `running`, `loading` (deployed, its worker not started yet), `paused` (deployed,
    /// delivery paused) or `stopped` (no component; queue kept).
    status: &'static str,
    version: Option<String>,
    description: Option<String>,
    subscriptions: Vec<String>,
    publishes: Vec<String>,
    file: Option<String>,
    content_hash: Option<String>,
    deployed_at: Option<Timestamp>,
    queue_depth: usize,
    in_flight: usize,
    dead_letters: usize,
    acked: u64,
    retried: u64,
    dead_lettered: u64,
    traps: BTreeMap<&'static str, u64>,
    last_error: Option<String>,
    last_error_at: Option<Timestamp>,
}

#[derive(Serialize)]
struct ProblemView {
    file: String,
    message: String,
    at: Timestamp,
}

pub(crate) async fn list(state: &AppState) -> Reply {
    let stats = match state.broker.handlers().await {
        Ok(stats) => stats,
        Err(err) => return broker_problem(err),
    };
    let mut views: BTreeMap<String, HandlerView> = BTreeMap::new();
    for stat in stats {
        let counters = state.dispatcher.counters(&stat.handler).unwrap_or_default();
        let (last_error, last_error_at) = match counters.last_error {
            Some(last) => (Some(last.message), Some(last.at)),
            None => (stat.last_error.clone(), None),
        };
        views.insert(
            stat.handler.to_string(),
            HandlerView {
                name: stat.handler.to_string(),
                status: if stat.paused { "stopped" } else { "running" },
                version: None,
                description: None,
                subscriptions: stat.patterns.iter().map(ToString::to_string).collect(),
                publishes: Vec::new(),
                file: None,
                content_hash: None,
                deployed_at: None,
                queue_depth: stat.queue_depth,
                in_flight: stat.in_flight,
                dead_letters: stat.dead_letters,
                acked: counters.acked,
                retried: counters.retried,
                dead_lettered: counters.dead_lettered,
                traps: counters.traps,
                last_error,
                last_error_at,
            },
        );
    }
    for deployment in state.registry.list() {
        let name = deployment.name();
        let Some(view) = views.get_mut(name.as_str()) else {
            continue;
        };
        // The version deliveries run on comes from the dispatcher: the registry holds a
        // new version slightly before the dispatcher swaps it in.
        let running = state.dispatcher.current(name).await;
        let info = running.as_ref().unwrap_or(&deployment.handler).info();
        view.version = Some(info.version.clone());
        view.description = Some(info.description.clone());
        view.publishes = info.publishes.iter().map(ToString::to_string).collect();
        view.file = Some(deployment.file.display().to_string());
        view.content_hash = Some(deployment.content_hash.clone());
        view.deployed_at = Some(deployment.deployed_at);
        if running.is_none() && view.status == "running" {
            view.status = "loading";
        }
        if view.status == "stopped" {
            view.status = "paused";
        }
    }
    let problems = state
        .registry
        .problems()
        .into_iter()
        .map(|p| ProblemView {
            file: p.file.display().to_string(),
            message: p.message,
            at: p.at,
        })
        .collect();
    json(
        StatusCode::OK,
        &Listing {
            handlers: views.into_values().collect(),
            problems,
        },
    )
}

/// What `DELETE /v1/handlers/{handler}` deleted.
#[derive(Serialize)]
struct Deleted {
    name: String,
    /// Events that were waiting in its queue.
    queued: usize,
    dead_letters: usize,
}

pub(crate) async fn delete(state: &AppState, name: &str) -> Reply {
    let name = match HandlerName::new(name) {
        Ok(name) => name,
        Err(err) => {
            return Problem::bad_request("invalid-handler-name", err.to_string()).into_response();
        }
    };
    if let Some(deployment) = state.registry.get(&name) {
        return Problem::new(
            StatusCode::CONFLICT,
            "handler-deployed",
            format!(
                "handler `{name}` is deployed from {}: remove that file from the deploy \
                 folder first (its queue is kept), then delete the handler",
                deployment.file.display()
            ),
        )
        .into_response();
    }
    let stats = match state.dispatcher.delete(&name).await {
        Ok(Some(stats)) => stats,
        Ok(None) => {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "unknown-handler",
                format!("choreo keeps nothing for a handler named `{name}`"),
            )
            .into_response();
        }
        // Deployed between the registry's answer and now.
        Err(DeleteError::Running { .. }) => {
            return Problem::new(
                StatusCode::CONFLICT,
                "handler-deployed",
                format!(
                    "handler `{name}` is being delivered to: remove its component from the \
                     deploy folder first, then delete the handler"
                ),
            )
            .into_response();
        }
        Err(DeleteError::Broker(err)) => return broker_problem(err),
    };
    tracing::info!(handler = %name, queued = stats.queue_depth, dead_letters = stats.dead_letters, "handler deleted");
    json(
        StatusCode::OK,
        &Deleted {
            name: name.to_string(),
            queued: stats.queue_depth,
            dead_letters: stats.dead_letters,
        },
    )
}
