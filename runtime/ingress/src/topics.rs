//! `GET /v1/topics`: the topics catalog — every topic seen since this process started
//! (up to [`crate::MAX_TRACKED_TOPICS`]), with its count, rate over the last minute,
//! first and last time seen, producers (the `source`s that published it), and
//! consumers (the deployed handlers whose subscriptions match it).
//!
//! The catalog is kept in memory from a tail of the log (see `telemetry`); after a
//! restart it starts empty and fills as events are published. Consumers are worked out
//! per request from what is deployed now.

use http::StatusCode;
use serde::Serialize;

use choreo_core::{Timestamp, Topic};

use crate::AppState;
use crate::catalog::{MAX_TRACKED_TOPICS, TopicSummary};
use crate::routes::{Reply, json};

#[derive(Serialize)]
struct Listing {
    topics: Vec<TopicView>,
    /// The most topics tracked; `evicted` counts those dropped to stay within it.
    max_tracked: usize,
    evicted: u64,
}

#[derive(Serialize)]
struct TopicView {
    #[serde(flatten)]
    summary: TopicSummary,
    consumers: Vec<String>,
}

pub(crate) fn list(state: &AppState) -> Reply {
    let (summaries, evicted) = state.telemetry.topics(Timestamp::now());
    let deployed: Vec<_> = state
        .registry
        .list()
        .into_iter()
        .map(|deployment| {
            let info = deployment.handler.info();
            (info.name.to_string(), info.subscriptions.clone())
        })
        .collect();
    let topics = summaries
        .into_iter()
        .map(|summary| {
            let consumers = match Topic::new(summary.topic.clone()) {
                Ok(topic) => deployed
                    .iter()
                    .filter(|(_, patterns)| patterns.iter().any(|p| p.matches(&topic)))
                    .map(|(name, _)| name.clone())
                    .collect(),
                Err(_) => Vec::new(),
            };
            TopicView { summary, consumers }
        })
        .collect();
    json(
        StatusCode::OK,
        &Listing {
            topics,
            max_tracked: MAX_TRACKED_TOPICS,
            evicted,
        },
    )
}
