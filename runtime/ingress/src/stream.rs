//! `GET /v1/stream?pattern=P`: the log as server-sent events, live.
//!
//! Each event matching the pattern is one SSE message: `id:` is its seq, `data:` its
//! structured CloudEvent JSON on one line. No `event:` field is sent, so a browser's
//! `EventSource.onmessage` sees every message. A client resumes with the standard
//! `Last-Event-ID` header (or `?after=SEQ`): the stream starts just after that seq, so a
//! reconnect has no gap and no duplicate. Without either it starts at the next event.
//! The first message carries no data, only `retry:` and an `id:` naming the seq before
//! the start, so even a client that got no event yet resumes where it started.
//!
//! Memory stays bounded however slow the client: the body is pulled by hyper as the
//! connection drains, and each pull reads at most one page ([`STREAM_PAGE`]) of the log
//! from where the stream is. An idle stream sleeps on the broker's durable-seq watch and
//! sends a comment line every [`KEEP_ALIVE`] so that proxies keep it open. [`Streams`]
//! counts open streams against the configured limit and ends them all when the server
//! begins to stop, so a graceful shutdown is not held up by clients that never leave.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::watch;
use tokio::time::Instant;

use choreo_broker::{Broker, EventQuery};
use choreo_core::{Pattern, RecordedEvent};

use crate::AppState;
use crate::problem::Problem;
use crate::routes::{Body, query_params};
use choreo_cloudevents::StructuredEvent;

/// Most events read from the log at a time for one stream: what a slow client can make
/// the server hold for it.
pub const STREAM_PAGE: usize = 64;

/// How long a stream stays silent before it sends a `: keep-alive` comment. Common proxy
/// idle timeouts are 30 to 60 seconds.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How long a browser's `EventSource` waits before reconnecting, sent as `retry:`.
const RECONNECT_HINT: Duration = Duration::from_secs(2);

/// The pattern when the request names none: every topic except choreo's own.
const ALL_TOPICS: &str = ">";

/// The live streams: how many are open, and the signal that ends them at shutdown.
#[derive(Debug)]
pub struct Streams {
    open: Arc<AtomicUsize>,
    closing: watch::Sender<bool>,
}

impl Default for Streams {
    fn default() -> Self {
        Streams {
            open: Arc::new(AtomicUsize::new(0)),
            closing: watch::Sender::new(false),
        }
    }
}

impl Streams {
    /// Ends every open stream and refuses new ones: the server is stopping.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// How many streams are open.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// A place for one more stream, unless `max` are open.
    fn admit(&self, max: usize) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            })
            .ok()?;
        Some(Slot(self.open.clone()))
    }
}

/// One open stream's place in the count; freed when the stream's body is dropped (the
/// stream ended or the client went away).
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) fn open(state: &AppState, request: &Request<Incoming>) -> Response<Body> {
    match start(state, request) {
        Ok(tail) => {
            let chunks = futures_util::stream::unfold(tail, |mut tail| async move {
                let chunk = tail.next_chunk().await?;
                Some((Ok::<_, Infallible>(Frame::data(chunk)), tail))
            });
            let mut response = Response::new(BodyExt::boxed_unsync(StreamBody::new(chunks)));
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/event-stream"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // nginx buffers responses unless told not to.
            headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
            response
        }
        Err(problem) => problem.into_response().map(BodyExt::boxed_unsync),
    }
}

fn start(state: &AppState, request: &Request<Incoming>) -> Result<Tail, Problem> {
    let params = query_params(request.uri().query());
    let pattern = params.get("pattern").map_or(ALL_TOPICS, String::as_str);
    let pattern = Pattern::new(pattern)
        .map_err(|err| Problem::bad_request("invalid-pattern", err.to_string()))?;
    let resume = match request.headers().get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    Problem::bad_request(
                        "invalid-last-event-id",
                        "`Last-Event-ID` must be the seq of an event this stream sent (a number)",
                    )
                })?,
        ),
        None => None,
    };
    let after = match params.get("after") {
        Some(text) => Some(text.parse::<u64>().map_err(|_| {
            Problem::bad_request(
                "invalid-parameter",
                "`after` must be a sequence number; the stream starts just after it",
            )
        })?),
        None => None,
    };
    if *state.streams.closing.borrow() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "choreo is shutting down; reconnect with Last-Event-ID once it is back",
        ));
    }
    let max = state.config.max_stream_clients;
    let slot = state.streams.admit(max).ok_or_else(|| {
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-streams",
            format!(
                "{max} live streams are already open, the server's limit (max_stream_clients); close one or raise the limit"
            ),
        )
    })?;
    let log = state.broker.watch_log();
    // A reconnecting client's Last-Event-ID is further along than the `after` it first used.
    let next_seq = match resume.or(after) {
        Some(seq) => seq.saturating_add(1),
        None => log.borrow().saturating_add(1),
    };
    tracing::debug!(%pattern, seq = next_seq, "stream opened");
    Ok(Tail {
        broker: state.broker.clone(),
        pattern,
        next_seq,
        log,
        closing: state.streams.closing.subscribe(),
        pending: VecDeque::new(),
        greeted: false,
        keep_alive_at: Instant::now() + KEEP_ALIVE,
        _slot: slot,
    })
}

/// One stream's position in the log and the page it is sending.
struct Tail {
    broker: Arc<dyn Broker>,
    pattern: Pattern,
    /// The first seq not yet read.
    next_seq: u64,
    log: watch::Receiver<u64>,
    closing: watch::Receiver<bool>,
    /// Read but not yet sent; at most [`STREAM_PAGE`].
    pending: VecDeque<RecordedEvent>,
    greeted: bool,
    keep_alive_at: Instant,
    _slot: Slot,
}

impl Tail {
    /// The next piece of the body, or `None` when the stream ends.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        if !self.greeted {
            self.greeted = true;
            // An `id` with no data dispatches nothing but becomes the client's last
            // event id: a reconnect before any event resumes from here, not from "next".
            return Some(Bytes::from(format!(
                "retry: {}\nid: {}\n\n",
                RECONNECT_HINT.as_millis(),
                self.next_seq.saturating_sub(1)
            )));
        }
        loop {
            if *self.closing.borrow() {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                self.keep_alive_at = Instant::now() + KEEP_ALIVE;
                return Some(message(&event));
            }
            if Instant::now() >= self.keep_alive_at {
                self.keep_alive_at = Instant::now() + KEEP_ALIVE;
                return Some(Bytes::from_static(b": keep-alive\n\n"));
            }
            let durable = *self.log.borrow_and_update();
            if self.next_seq <= durable {
                let query = EventQuery {
                    from_seq: self.next_seq,
                    pattern: Some(self.pattern.clone()),
                    limit: STREAM_PAGE,
                };
                match self.broker.read_events(query).await {
                    Ok(page) => {
                        self.next_seq = page.next_seq.max(self.next_seq);
                        self.pending.extend(page.events);
                    }
                    Err(err) => {
                        // The client reconnects with Last-Event-ID and misses nothing.
                        tracing::warn!(error = %err, seq = self.next_seq, "a stream could not read the log; ending it");
                        return None;
                    }
                }
                continue;
            }
            tokio::select! {
                changed = self.log.changed() => if changed.is_err() {
                    return None;
                },
                changed = self.closing.changed() => if changed.is_err() {
                    return None;
                },
                () = tokio::time::sleep_until(self.keep_alive_at) => {}
            }
        }
    }
}

/// One event as an SSE message. Serialised JSON holds no raw newline, so it is one
/// `data:` line.
fn message(recorded: &RecordedEvent) -> Bytes {
    let json =
        serde_json::to_string(&StructuredEvent::new(recorded)).expect("an event always serialises");
    Bytes::from(format!("id: {}\ndata: {json}\n\n", recorded.seq))
}

#[cfg(test)]
mod tests {
    use choreo_broker::{Config, SledBroker};

    use super::*;

    #[test]
    fn slots_are_counted_and_given_back() {
        let streams = Streams::default();
        let first = streams.admit(2).unwrap();
        let _second = streams.admit(2).unwrap();
        assert!(streams.admit(2).is_none(), "the limit holds");
        assert_eq!(streams.open(), 2);
        drop(first);
        assert_eq!(streams.open(), 1);
        assert!(streams.admit(2).is_some());
    }

    #[test]
    fn a_message_is_one_data_line_with_the_data_as_published() {
        let mut event = choreo_core::Event::new(
            choreo_core::Topic::new("a.b").unwrap(),
            "test://sse",
            b"{\n  \"n\": 12345678901234567890123,\n  \"s\": \"x\\ny\"\n}\n".to_vec(),
        );
        event.datacontenttype = Some("application/json".to_owned());
        let message = message(&RecordedEvent { seq: 3, event });
        let text = std::str::from_utf8(&message).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "id, data and the blank line: {text:?}");
        assert_eq!(lines[0], "id: 3");
        assert!(
            lines[1].starts_with("data: {")
                && lines[1].contains(r#""data":{"n":12345678901234567890123,"s":"x\ny"}"#),
            "{text:?}"
        );
    }

    /// A stream over a fresh broker, following `pattern` from the start of the log.
    fn tail(broker: Arc<SledBroker>, streams: &Streams, pattern: &str) -> Tail {
        Tail {
            log: broker.watch_log(),
            broker,
            pattern: Pattern::new(pattern).unwrap(),
            next_seq: 1,
            closing: streams.closing.subscribe(),
            pending: VecDeque::new(),
            greeted: false,
            keep_alive_at: Instant::now() + KEEP_ALIVE,
            _slot: streams.admit(1).unwrap(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_stream_sends_a_keep_alive_and_an_event_resets_its_clock() {
        let dir = tempfile::tempdir().unwrap();
        let broker = Arc::new(SledBroker::open(Config::new(dir.path())).unwrap());
        let streams = Streams::default();
        let mut tail = tail(broker.clone(), &streams, "a.>");
        let greeting = tail.next_chunk().await.unwrap();
        assert!(greeting.starts_with(b"retry: "), "{greeting:?}");

        // Nothing matches: the next chunk is the keep-alive, once KEEP_ALIVE has passed.
        let started = Instant::now();
        let chunk = tail.next_chunk().await.unwrap();
        assert_eq!(&chunk[..], b": keep-alive\n\n");
        assert!(started.elapsed() >= KEEP_ALIVE, "{:?}", started.elapsed());

        // An event is sent at once, and the next keep-alive is a full KEEP_ALIVE later.
        tokio::time::advance(KEEP_ALIVE / 2).await;
        let event = choreo_core::Event::new(
            choreo_core::Topic::new("a.b").unwrap(),
            "test://sse",
            b"1".to_vec(),
        );
        broker.publish(vec![event]).await.unwrap();
        let chunk = tail.next_chunk().await.unwrap();
        assert!(chunk.starts_with(b"id: 1\n"), "{chunk:?}");
        let sent = Instant::now();
        let chunk = tail.next_chunk().await.unwrap();
        assert_eq!(&chunk[..], b": keep-alive\n\n");
        assert!(sent.elapsed() >= KEEP_ALIVE, "{:?}", sent.elapsed());

        // Closing the streams ends this one.
        streams.close();
        assert!(tail.next_chunk().await.is_none());
    }

    #[test]
    fn a_message_is_one_data_line_with_the_seq_as_id() {
        let event = choreo_core::Event::new(
            choreo_core::Topic::new("a.b").unwrap(),
            "test://unit",
            b"{\"text\":\"two\\nlines\"}".to_vec(),
        );
        let text = message(&RecordedEvent { seq: 42, event });
        let text = std::str::from_utf8(&text).unwrap();
        let lines: Vec<&str> = text.trim_end().lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0], "id: 42");
        assert!(lines[1].starts_with("data: {"), "{text}");
        assert!(text.ends_with("\n\n"));
    }
}
