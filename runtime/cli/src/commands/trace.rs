//! `choreo trace ID`: an event and everything its handling caused, drawn as a tree.
//!
//! One line per event: topic, id, the handler that produced it (or, for an event from
//! outside, its source), and its time. Children are drawn under their cause with `├─`
//! and `└─`, like `tree`, in the order the log holds them.

use http::Method;
use serde::Deserialize;

use crate::client::{self, DEFAULT_URL};

/// Arguments of `choreo trace`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The event id, as `choreo publish` printed it
    id: String,
    /// The choreo API
    #[arg(long, env = "CHOREO_URL", default_value = DEFAULT_URL)]
    url: String,
    /// Print the raw JSON instead of a tree
    #[arg(long, env = "CHOREO_JSON")]
    json: bool,
}

/// A node of `GET /v1/events/{id}`.
#[derive(Debug, Deserialize)]
struct Node {
    seq: u64,
    handler: Option<String>,
    event: Event,
    children: Vec<Node>,
}

/// The attributes a line shows.
#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    topic: String,
    source: String,
    time: String,
}

/// The whole answer: the root node, and whether the server cut the tree.
#[derive(Debug, Deserialize)]
struct Trace {
    #[serde(flatten)]
    root: Node,
    truncated: bool,
    nodes: usize,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/events/{}",
        args.url.trim_end_matches('/'),
        client::encode(&args.id)
    );
    let body = client::expect_success(client::send(Method::GET, &url, &[], Vec::new()).await?)?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(());
    }
    let trace: Trace = serde_json::from_slice(&body)?;
    let mut out = String::new();
    draw(&trace.root, "", None, &mut out);
    print!("{out}");
    if trace.truncated {
        println!(
            "… cut at {} events: the tree goes on (the server bounds its depth and size)",
            trace.nodes
        );
    }
    Ok(())
}

/// Appends `node` and its subtree to `out`. `prefix` is the rails of the levels above;
/// `last` is `None` for the root, else whether `node` is its parent's last child.
fn draw(node: &Node, prefix: &str, last: Option<bool>, out: &mut String) {
    let (branch, rail) = match last {
        None => ("", ""),
        Some(false) => ("├─ ", "│  "),
        Some(true) => ("└─ ", "   "),
    };
    out.push_str(&format!("{prefix}{branch}{}\n", line(node)));
    let inner = format!("{prefix}{rail}");
    for (i, child) in node.children.iter().enumerate() {
        draw(child, &inner, Some(i + 1 == node.children.len()), out);
    }
}

fn line(node: &Node) -> String {
    let by = match &node.handler {
        Some(handler) => format!("by {handler}"),
        None => format!("from {}", node.event.source),
    };
    format!(
        "{}  {}  {by}  {}  (seq {})",
        node.event.topic, node.event.id, node.event.time, node.seq
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(topic: &str, handler: Option<&str>, children: Vec<Node>) -> Node {
        Node {
            seq: 1,
            handler: handler.map(str::to_owned),
            event: Event {
                id: format!("id-{topic}"),
                topic: topic.to_owned(),
                source: "choreo://ingress".to_owned(),
                time: "2026-11-26T10:00:00Z".to_owned(),
            },
            children,
        }
    }

    #[test]
    fn draws_rails_like_tree() {
        let root = node(
            "orders.created",
            None,
            vec![
                node(
                    "orders.validated",
                    Some("validator"),
                    vec![node("orders.fulfilled", Some("fulfiller"), vec![])],
                ),
                node("audit.logged", Some("auditor"), vec![]),
            ],
        );
        let mut out = String::new();
        draw(&root, "", None, &mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].starts_with("orders.created  id-orders.created  from choreo://ingress"),
            "{out}"
        );
        assert!(
            lines[1].starts_with("├─ orders.validated  id-orders.validated  by validator"),
            "{out}"
        );
        assert!(lines[2].starts_with("│  └─ orders.fulfilled"), "{out}");
        assert!(lines[3].starts_with("└─ audit.logged"), "{out}");
        assert_eq!(lines.len(), 4);
    }
}
