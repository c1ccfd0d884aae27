//! `GET /v1/events/{id}`: one event, as a structured CloudEvent, with its causation tree:
//! every retained event whose handling it caused, recursively, each with the handler
//! that produced it.
//!
//! The tree is read breadth-first through the broker's causation index, one lookup per
//! node, and bounded by [`MAX_TRACE_DEPTH`] and [`MAX_TRACE_NODES`]: a fan-out of
//! millions answers with the first nodes and `"truncated": true` instead of exhausting
//! memory. Each event appears once, so even forged ids that cause each other in a circle
//! end the walk.

use std::collections::{HashSet, VecDeque};

use http::StatusCode;
use serde::Serialize;

use choreo_broker::Broker;
use choreo_core::{Event, EventId, RecordedEvent};
use choreo_host::HANDLER_SOURCE_PREFIX;

use crate::AppState;
use crate::problem::Problem;
use crate::publish::broker_problem;
use crate::routes::{Reply, json as json_reply};
use choreo_cloudevents::StructuredEvent;
use choreo_cloudevents::percent_decode;

/// Deepest level of the tree below the event asked for. Choreographies are chains of a
/// few steps; a deeper one is most likely a loop of handlers feeding each other.
pub const MAX_TRACE_DEPTH: usize = 32;

/// Most events in one tree, the event asked for included: the answer is built in memory.
pub const MAX_TRACE_NODES: usize = 1_000;

/// The handler whose handling produced `event`, if a handler did. The host stamps a
/// handler's publishes with the source `choreo://handler/<name>`; a dead-letter is
/// produced on behalf of the handler that gave up, which its `dlqhandler` extension
/// names (its source is the failed event's own).
pub fn producer(event: &Event) -> Option<&str> {
    if event.topic.as_str().starts_with("$dlq.")
        && let Some(handler) = event.extensions.get("dlqhandler")
    {
        return Some(handler.as_str());
    }
    event.source.strip_prefix(HANDLER_SOURCE_PREFIX)
}

pub(crate) async fn show(state: &AppState, raw_id: &str) -> Reply {
    let id = match percent_decode(raw_id).and_then(|id| EventId::new(id).map_err(|e| e.to_string()))
    {
        Ok(id) => id,
        Err(reason) => return Problem::bad_request("invalid-event-id", reason).into_response(),
    };
    let root = match state.broker.event_by_id(&id).await {
        Ok(Some(root)) => root,
        Ok(None) => {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "event-not-found",
                format!(
                    "no retained event has id `{id}`: it was never published, is not durable yet, or retention has trimmed it"
                ),
            )
            .into_response();
        }
        Err(err) => return broker_problem(err),
    };
    match Tree::walk(&*state.broker, root).await {
        Ok(tree) => json_reply(StatusCode::OK, &tree.view()),
        Err(err) => broker_problem(err),
    }
}

/// The nodes of a causation tree, in the order they were found (parents first).
struct Tree {
    nodes: Vec<Node>,
    truncated: bool,
}

struct Node {
    recorded: RecordedEvent,
    children: Vec<usize>,
}

impl Tree {
    async fn walk(broker: &dyn Broker, root: RecordedEvent) -> choreo_broker::Result<Tree> {
        let mut seen = HashSet::from([root.seq]);
        let mut tree = Tree {
            nodes: vec![Node {
                recorded: root,
                children: Vec::new(),
            }],
            truncated: false,
        };
        let mut queue = VecDeque::from([(0, 0)]);
        while let Some((index, depth)) = queue.pop_front() {
            let room = MAX_TRACE_NODES - tree.nodes.len();
            // One more than fits tells a cut tree from one that just fits.
            let want = if depth == MAX_TRACE_DEPTH {
                1
            } else {
                room + 1
            };
            let id = tree.nodes[index].recorded.event.id.clone();
            let children = broker.caused_by(&id, want).await?;
            for child in children {
                if !seen.insert(child.seq) {
                    continue;
                }
                if depth == MAX_TRACE_DEPTH || tree.nodes.len() == MAX_TRACE_NODES {
                    tree.truncated = true;
                    break;
                }
                let child_index = tree.nodes.len();
                tree.nodes.push(Node {
                    recorded: child,
                    children: Vec::new(),
                });
                tree.nodes[index].children.push(child_index);
                queue.push_back((child_index, depth + 1));
            }
        }
        Ok(tree)
    }

    fn view(&self) -> TraceView<'_> {
        TraceView {
            root: self.node_view(0),
            nodes: self.nodes.len(),
            truncated: self.truncated,
        }
    }

    /// Recursion is bounded by [`MAX_TRACE_DEPTH`].
    fn node_view(&self, index: usize) -> NodeView<'_> {
        let node = &self.nodes[index];
        NodeView {
            children: node
                .children
                .iter()
                .map(|&child| self.node_view(child))
                .collect(),
            event: StructuredEvent::new(&node.recorded),
            handler: producer(&node.recorded.event),
            seq: node.recorded.seq,
        }
    }
}

/// The answer: the root event's node, with the size of the tree and whether it was cut.
#[derive(Serialize)]
struct TraceView<'a> {
    #[serde(flatten)]
    root: NodeView<'a>,
    nodes: usize,
    truncated: bool,
}

/// One event of the tree: who produced it, and the events it caused.
#[derive(Serialize)]
struct NodeView<'a> {
    children: Vec<NodeView<'a>>,
    event: StructuredEvent<'a>,
    handler: Option<&'a str>,
    seq: u64,
}

#[cfg(test)]
mod tests {
    use choreo_broker::{Config, SledBroker};
    use choreo_core::{HandlerName, Topic};

    use super::*;

    fn event(cause: Option<&Event>) -> Event {
        let mut event = Event::new(Topic::new("orders.step").unwrap(), "test://trace", vec![]);
        event.causation_id = cause.map(|cause| cause.id.clone());
        event
    }

    async fn walk_from(broker: &SledBroker, root: &Event) -> Tree {
        let root = broker.event_by_id(&root.id).await.unwrap().unwrap();
        Tree::walk(broker, root).await.unwrap()
    }

    #[tokio::test]
    async fn a_fan_out_past_the_node_limit_is_cut_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let broker = SledBroker::open(Config::new(dir.path())).unwrap();
        let root = event(None);
        broker.publish(vec![root.clone()]).await.unwrap();
        for _ in 0..3 {
            let batch = (0..400).map(|_| event(Some(&root))).collect();
            broker.publish(batch).await.unwrap();
        }
        let tree = walk_from(&broker, &root).await;
        assert_eq!(tree.nodes.len(), MAX_TRACE_NODES);
        assert!(tree.truncated);
        let view = serde_json::to_value(tree.view()).unwrap();
        assert_eq!(view["nodes"], MAX_TRACE_NODES);
    }

    #[tokio::test]
    async fn a_chain_is_cut_below_the_depth_limit_and_one_that_fits_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let broker = SledBroker::open(Config::new(dir.path())).unwrap();
        // chain[i + 1] is caused by chain[i]: depth i below chain[0].
        let mut chain = vec![event(None)];
        for _ in 0..MAX_TRACE_DEPTH + 5 {
            let next = event(chain.last());
            chain.push(next);
        }
        broker.publish(chain.clone()).await.unwrap();

        let deep = walk_from(&broker, &chain[0]).await;
        assert_eq!(deep.nodes.len(), MAX_TRACE_DEPTH + 1);
        assert!(deep.truncated);

        // From chain[5], the chain below is exactly MAX_TRACE_DEPTH deep: all of it fits.
        let fits = walk_from(&broker, &chain[5]).await;
        assert_eq!(fits.nodes.len(), MAX_TRACE_DEPTH + 1);
        assert!(!fits.truncated);
    }

    #[test]
    fn the_producer_is_the_handler_in_the_source_or_the_one_that_gave_up() {
        let topic = Topic::new("orders.validated").unwrap();
        let published = Event::new(topic.clone(), "choreo://handler/validator", vec![]);
        assert_eq!(producer(&published), Some("validator"));
        let external = Event::new(topic, "choreo://ingress", vec![]);
        assert_eq!(producer(&external), None);
        let auditor = HandlerName::new("auditor").unwrap();
        let mut dead = published.clone();
        dead.topic = Topic::dead_letter(&auditor);
        dead.extensions
            .insert("dlqhandler".into(), "auditor".into());
        assert_eq!(producer(&dead), Some("auditor"));
    }
}
