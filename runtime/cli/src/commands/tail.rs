//! `choreo tail PATTERN`: print events on matching topics as they are published, from
//! `GET /v1/stream` (server-sent events), until Ctrl-C.
//!
//! One line per event: seq, topic, id and the data cut to one short line; `--json`
//! prints each whole CloudEvent instead. When the connection drops (the server
//! restarts, a proxy cuts it, nothing arrives for three keep-alive periods) it reconnects
//! with `Last-Event-ID`, so no event is missed or printed twice. A first connection that
//! fails, or an answer saying the request is wrong (4xx), ends the command with an error.

use std::time::Duration;

use anyhow::Context;
use http::StatusCode;
use http_body_util::BodyExt;
use serde_json::Value;

use crate::client::{self, DEFAULT_URL};

/// Arguments of `choreo tail`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Topics to follow, e.g. `orders.>` or `orders.*.created`
    pattern: String,
    /// The choreo API
    #[arg(long, env = "CHOREO_URL", default_value = DEFAULT_URL)]
    url: String,
    /// Start at this seq (older events included) instead of at the next event
    #[arg(long, env = "CHOREO_TAIL_FROM_SEQ")]
    from_seq: Option<u64>,
    /// Print each event as its full CloudEvent JSON, one per line
    #[arg(long, env = "CHOREO_JSON")]
    json: bool,
}

/// Longest data shown on an event's line, in characters.
const DATA_CHARS: usize = 80;

/// The server sends a comment at least this often; silence for three times as long
/// means the connection is dead even if TCP has not noticed.
const SILENCE: Duration = Duration::from_secs(3 * choreo_ingress::KEEP_ALIVE.as_secs());

/// Waits between reconnection attempts: doubling from the first to the last.
const RECONNECT_FIRST: Duration = Duration::from_millis(500);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    tokio::select! {
        result = follow(&args) => result,
        interrupted = tokio::signal::ctrl_c() => {
            interrupted.context("cannot listen for Ctrl-C")
        }
    }
}

/// Connects, prints, and reconnects after the last seq printed, for ever.
async fn follow(args: &Args) -> anyhow::Result<()> {
    let base = format!(
        "{}/v1/stream?pattern={}",
        args.url.trim_end_matches('/'),
        client::encode(&args.pattern)
    );
    // The seq of the last event printed: where a reconnect resumes.
    let mut last_seq: Option<u64> = args.from_seq.map(|seq| seq.saturating_sub(1));
    let mut connected_once = false;
    let mut wait = RECONNECT_FIRST;
    loop {
        let url = match (last_seq, connected_once) {
            (Some(after), false) => format!("{base}&after={after}"),
            _ => base.clone(),
        };
        // Once connected, `last_seq` is where the stream got to.
        let mut headers = Vec::new();
        if let (Some(seq), true) = (last_seq, connected_once) {
            headers.push(("last-event-id", seq.to_string()));
        }
        let ended = match client::open_stream(&url, &headers).await {
            Ok(response) if response.status() == StatusCode::OK => {
                connected_once = true;
                wait = RECONNECT_FIRST;
                read(response.into_body(), args.json, &mut last_seq).await
            }
            Ok(response) => {
                let status = response.status();
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let answer = client::Answer { status, body };
                let refused = client::expect_success(answer).expect_err("the status is not 2xx");
                // Busy or stopping is worth waiting out; a bad request is not.
                if !connected_once || status != StatusCode::SERVICE_UNAVAILABLE {
                    return Err(refused);
                }
                format!("{refused:#}")
            }
            Err(err) if !connected_once => return Err(err),
            Err(err) => format!("{err:#}"),
        };
        eprintln!("tail: {ended}; reconnecting in {wait:?}");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// Prints the events of one connection until it ends; says why it ended.
async fn read(mut body: hyper::body::Incoming, json: bool, last_seq: &mut Option<u64>) -> String {
    let mut parser = Parser::default();
    loop {
        let frame = match tokio::time::timeout(SILENCE, body.frame()).await {
            Err(_) => return format!("nothing received for {SILENCE:?}"),
            Ok(None) => return "the server ended the stream".to_owned(),
            Ok(Some(Err(err))) => return format!("the connection failed: {err}"),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for message in parser.push(&data) {
            let Some(seq) = message.id.and_then(|id| id.parse::<u64>().ok()) else {
                continue;
            };
            if last_seq.is_some_and(|last| seq <= last) {
                continue;
            }
            *last_seq = Some(seq);
            match serde_json::from_str::<Value>(&message.data) {
                Ok(event) if !json => println!("{}", summary(seq, &event)),
                _ => println!("{}", message.data),
            }
        }
        // The server's first message names where the stream starts, before any event:
        // resuming from there loses nothing published while disconnected.
        if let Some(seq) = parser
            .last_id
            .as_deref()
            .and_then(|id| id.parse::<u64>().ok())
        {
            *last_seq = Some(last_seq.map_or(seq, |last| last.max(seq)));
        }
    }
}

/// One event on one line: seq, topic, id, and the data cut short.
fn summary(seq: u64, event: &Value) -> String {
    let text = |name: &str| event[name].as_str().unwrap_or("-").to_owned();
    let data = match (&event["data"], event["data_base64"].as_str()) {
        (Value::String(text), _) => text.clone(),
        (Value::Null, Some(encoded)) => format!("base64:{encoded}"),
        (Value::Null, None) => String::new(),
        (value, _) => value.to_string(),
    };
    let data: String = match data.char_indices().nth(DATA_CHARS) {
        Some((end, _)) => format!("{}…", &data[..end]),
        None => data,
    };
    let data = data.replace(['\n', '\r'], " ");
    format!("{seq}  {}  {}  {data}", text("topic"), text("id"))
}

/// An SSE message: its `id` and its `data` lines joined.
#[derive(Debug, Default, PartialEq)]
struct Message {
    id: Option<String>,
    data: String,
}

/// Splits a server-sent event stream into messages, whatever the chunk boundaries.
#[derive(Debug, Default)]
struct Parser {
    /// Bytes of an unfinished line.
    partial: Vec<u8>,
    current: Message,
    has_data: bool,
    /// The last `id` seen, with or without data: what a reconnect sends.
    last_id: Option<String>,
}

impl Parser {
    fn push(&mut self, bytes: &[u8]) -> Vec<Message> {
        let mut done = Vec::new();
        for &byte in bytes {
            if byte != b'\n' {
                self.partial.push(byte);
                continue;
            }
            let line = String::from_utf8_lossy(&self.partial).into_owned();
            self.partial.clear();
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                if self.has_data {
                    done.push(std::mem::take(&mut self.current));
                }
                self.current = Message::default();
                self.has_data = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" => {
                    self.current.id = Some(value.to_owned());
                    self.last_id = Some(value.to_owned());
                }
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_survive_any_chunking() {
        let stream = b"retry: 2000\nid: 6\n\n: keep-alive\n\nid: 7\ndata: {\"a\":1}\n\nid: 8\r\ndata: x\r\ndata: y\r\n\r\n";
        for split in 1..stream.len() {
            let mut parser = Parser::default();
            let mut messages = parser.push(&stream[..split]);
            messages.extend(parser.push(&stream[split..]));
            assert_eq!(
                messages,
                vec![
                    Message {
                        id: Some("7".into()),
                        data: "{\"a\":1}".into()
                    },
                    Message {
                        id: Some("8".into()),
                        data: "x\ny".into()
                    },
                ],
                "split at {split}"
            );
            assert_eq!(parser.last_id.as_deref(), Some("8"));
        }
    }

    #[test]
    fn a_summary_is_one_short_line() {
        let long = "x".repeat(200);
        let event = serde_json::json!({"topic": "a.b", "id": "e1", "data": {"text": long}});
        let line = summary(3, &event);
        assert!(line.starts_with("3  a.b  e1  {\"text\":\"xxx"), "{line}");
        assert!(line.ends_with('…') && line.chars().count() < 100, "{line}");
        let binary = serde_json::json!({"topic": "a.b", "id": "e2", "data_base64": "AAE="});
        assert_eq!(summary(4, &binary), "4  a.b  e2  base64:AAE=");
    }
}
