//! Request-reply: `?reply=wait[&timeout=…]` on a publish waits for the first event on the
//! request's reply topic, `$reply.<id>`, and answers with it.
//!
//! One [`ReplyHub`] per server tails the log for every waiter: a single task reads the
//! events matching `$reply.>` as the log grows (woken by [`Broker::watch_log`]) and hands
//! each to the waiters registered for its topic. It runs only while someone waits, and
//! it starts from the newest durable seq at the moment it is started. A waiter registers
//! *before* its event is published, so the tail's position is never past the request,
//! let alone its reply: a fast reply cannot be missed. A waiter unregisters itself when
//! dropped: on an answer, a timeout, or a client that hung up (hyper drops the request's
//! future). The number of waiters is bounded by [`crate::IngressConfig::max_reply_waiters`].
//!
//! State: the waiters by reply topic, and whether the tail task runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use tokio::sync::oneshot;

use choreo_broker::{Broker, EventQuery, MAX_READ_ROWS, Published};
use choreo_core::{Pattern, RecordedEvent, Topic};

use crate::problem::Problem;
use crate::routes::Reply;
use choreo_cloudevents::{StructuredEvent, percent_encode_header};

/// How long a publish waits for its reply when the request names no `timeout`.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest `timeout` a request may ask for: a waiting request holds a connection
/// and a waiter slot, and proxies in front of choreo rarely keep a request open longer.
pub const MAX_REPLY_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Requests that may wait for a reply at once by default: each holds a connection and a
/// slot in the hub's map.
pub const DEFAULT_MAX_REPLY_WAITERS: usize = 1024;

/// How long the tail waits before reading the log again after a storage error.
const TAIL_RETRY: Duration = Duration::from_millis(500);

/// The reply topics' pattern.
const REPLIES: &str = "$reply.>";

/// Hands replies to the requests waiting for them.
#[derive(Debug)]
pub(crate) struct ReplyHub {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    broker: Arc<dyn Broker>,
    max_waiters: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Waiters by reply topic; each has a key so that it can remove itself.
    waiters: HashMap<Topic, Vec<(u64, oneshot::Sender<RecordedEvent>)>>,
    count: usize,
    next_key: u64,
    tailing: bool,
}

/// The hub is full: [`crate::IngressConfig::max_reply_waiters`] requests already wait.
#[derive(Debug)]
pub(crate) struct HubFull {
    pub(crate) max: usize,
}

/// One request's place in the hub. Unregisters when dropped.
#[derive(Debug)]
pub(crate) struct Waiter {
    shared: Arc<Shared>,
    topic: Topic,
    key: u64,
    answer: oneshot::Receiver<RecordedEvent>,
    /// The newest durable seq when it registered: replies after it reach the waiter
    /// through the tail.
    registered_at: u64,
}

impl ReplyHub {
    pub(crate) fn new(broker: Arc<dyn Broker>, max_waiters: usize) -> Self {
        ReplyHub {
            shared: Arc::new(Shared {
                broker,
                max_waiters,
                inner: Mutex::default(),
            }),
        }
    }

    /// Registers a wait for the first event on `topic`, starting the tail if it is not
    /// running. Call it before publishing the request.
    pub(crate) fn register(&self, topic: Topic) -> Result<Waiter, HubFull> {
        let shared = &self.shared;
        let mut inner = shared.lock();
        if inner.count >= shared.max_waiters {
            return Err(HubFull {
                max: shared.max_waiters,
            });
        }
        let registered_at = *shared.broker.watch_log().borrow();
        if !inner.tailing {
            inner.tailing = true;
            tokio::spawn(tail(shared.clone(), registered_at + 1));
        }
        let (sender, answer) = oneshot::channel();
        let key = inner.next_key;
        inner.next_key += 1;
        inner.count += 1;
        inner
            .waiters
            .entry(topic.clone())
            .or_default()
            .push((key, sender));
        Ok(Waiter {
            shared: shared.clone(),
            topic,
            key,
            answer,
            registered_at,
        })
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned map is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Hands `reply` to everyone waiting on its topic.
    fn deliver(&self, reply: &RecordedEvent) {
        let mut inner = self.lock();
        if let Some(waiters) = inner.waiters.remove(&reply.event.topic) {
            inner.count -= waiters.len();
            for (_, sender) in waiters {
                let _ = sender.send(reply.clone());
            }
        }
    }

    /// Stops the tail when nobody waits; says whether it stopped.
    fn stop_if_idle(&self) -> bool {
        let mut inner = self.lock();
        if inner.count == 0 {
            inner.tailing = false;
        }
        !inner.tailing
    }

    /// The broker closed: every waiter learns it (its answer channel closes).
    fn close(&self) {
        let mut inner = self.lock();
        inner.waiters.clear();
        inner.count = 0;
        inner.tailing = false;
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        let Some(waiters) = inner.waiters.get_mut(&self.topic) else {
            return;
        };
        let before = waiters.len();
        waiters.retain(|(key, _)| *key != self.key);
        let removed = before - waiters.len();
        if waiters.is_empty() {
            inner.waiters.remove(&self.topic);
        }
        inner.count -= removed;
    }
}

/// The tail: reads reply topics from `next` on as the log grows, while anyone waits.
async fn tail(shared: Arc<Shared>, mut next: u64) {
    let pattern = Pattern::new(REPLIES).expect("the reply pattern is valid");
    let mut log = shared.broker.watch_log();
    loop {
        let head = *log.borrow_and_update();
        while next <= head {
            let query = EventQuery {
                from_seq: next,
                pattern: Some(pattern.clone()),
                limit: MAX_READ_ROWS,
            };
            match shared.broker.read_events(query).await {
                Ok(page) => {
                    for reply in &page.events {
                        shared.deliver(reply);
                    }
                    if page.next_seq <= next {
                        break;
                    }
                    next = page.next_seq;
                }
                Err(choreo_broker::Error::Closed) => return shared.close(),
                Err(err) => {
                    tracing::warn!(error = %err, seq = next, "reading replies from the log failed; retrying");
                    tokio::time::sleep(TAIL_RETRY).await;
                }
            }
        }
        if shared.stop_if_idle() {
            return;
        }
        if log.changed().await.is_err() {
            return shared.close();
        }
    }
}

/// Waits up to `timeout` for the reply to the published request and answers with it.
pub(crate) async fn await_reply(
    broker: &dyn Broker,
    mut waiter: Waiter,
    published: &Published,
    timeout: Duration,
) -> Reply {
    let deadline = tokio::time::Instant::now() + timeout;
    if published.duplicate {
        // The first copy may have been answered before this request registered.
        match tokio::time::timeout_at(deadline, earlier_reply(broker, &waiter, published.seq)).await
        {
            Ok(Ok(Some(reply))) => return reply_response(&reply),
            Ok(Ok(None)) => {}
            Ok(Err(err)) => return crate::publish::broker_problem(err),
            Err(_) => return timed_out(&waiter.topic, published, timeout),
        }
    }
    match tokio::time::timeout_at(deadline, &mut waiter.answer).await {
        Ok(Ok(reply)) => reply_response(&reply),
        Ok(Err(_)) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            format!(
                "choreo is shutting down; event {} stays published (seq {}) but its reply cannot be awaited here",
                published.id, published.seq
            ),
        )
        .into_response(),
        Err(_) => timed_out(&waiter.topic, published, timeout),
    }
}

/// A reply already in the log between the request (`after`) and the waiter's
/// registration.
async fn earlier_reply(
    broker: &dyn Broker,
    waiter: &Waiter,
    after: u64,
) -> choreo_broker::Result<Option<RecordedEvent>> {
    let pattern = Pattern::new(waiter.topic.as_str()).expect("a topic is a valid pattern");
    let mut next = after + 1;
    while next <= waiter.registered_at {
        let page = broker
            .read_events(EventQuery {
                from_seq: next,
                pattern: Some(pattern.clone()),
                limit: 1,
            })
            .await?;
        if let Some(reply) = page.events.into_iter().next() {
            return Ok(Some(reply));
        }
        if page.next_seq <= next {
            break;
        }
        next = page.next_seq;
    }
    Ok(None)
}

fn timed_out(topic: &Topic, published: &Published, timeout: Duration) -> Reply {
    Problem::new(
        StatusCode::GATEWAY_TIMEOUT,
        "reply-timeout",
        format!(
            "no reply on `{topic}` within {timeout:?}; event {} stays published (seq {}), \
             and a later reply is still recorded on `{topic}`",
            published.id, published.seq
        ),
    )
    .into_response()
}

/// The reply as an HTTP response in CloudEvents binary mode: 200, its data as the body,
/// its `datacontenttype` as `content-type`, every other attribute as a `ce-*` header.
pub(crate) fn reply_response(reply: &RecordedEvent) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from(reply.event.data.clone())));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    if let Some(content_type) = &reply.event.datacontenttype
        && let Ok(value) = HeaderValue::from_str(content_type)
    {
        headers.insert(header::CONTENT_TYPE, value);
    }
    for (name, text) in StructuredEvent::new(reply).attributes() {
        if name == "datacontenttype" {
            continue;
        }
        let name = HeaderName::from_bytes(format!("ce-{name}").as_bytes());
        let value = HeaderValue::from_str(&percent_encode_header(&text));
        if let (Ok(name), Ok(value)) = (name, value) {
            headers.insert(name, value);
        }
    }
    response
}

/// Parses a `timeout` parameter: a whole number with a unit, `ms`, `s` or `m` (`500ms`,
/// `10s`, `2m`), from 1 ms to `max` (at most [`MAX_REPLY_TIMEOUT`]). Three units do not
/// earn a dependency.
pub(crate) fn parse_timeout(text: &str, max: Duration) -> Result<Duration, String> {
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = text.split_at(digits);
    let invalid = || {
        format!("`timeout` is `{text}`; give a whole number with a unit: `500ms`, `10s` or `2m`")
    };
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let timeout = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        _ => return Err(invalid()),
    };
    if timeout.is_zero() || timeout > max {
        return Err(format!(
            "`timeout` is `{text}`; it must be more than 0 and at most {}ms",
            max.as_millis()
        ));
    }
    Ok(timeout)
}

#[cfg(test)]
mod tests {
    use choreo_broker::{Config, SledBroker};
    use choreo_core::{Event, EventId};
    use http_body_util::BodyExt;

    use super::*;

    fn broker() -> (tempfile::TempDir, Arc<dyn Broker>) {
        let dir = tempfile::tempdir().unwrap();
        let broker = SledBroker::open(Config::new(dir.path().join("broker"))).unwrap();
        (dir, Arc::new(broker))
    }

    fn request() -> (Event, Topic) {
        let event = Event::new(Topic::new("rpc.ask").unwrap(), "test://unit", b"q".to_vec());
        let reply_to = Topic::reply_to(&event.id).unwrap();
        (event, reply_to)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reply_reaches_the_waiter_registered_before_the_request() {
        let (_dir, broker) = broker();
        let hub = ReplyHub::new(broker.clone(), 4);
        let (mut event, reply_to) = request();
        event.reply_to = Some(reply_to.clone());
        let waiter = hub.register(reply_to.clone()).unwrap();
        let published = broker.publish(vec![event]).await.unwrap().remove(0);
        let other = Topic::reply_to(&EventId::generate()).unwrap();
        let mut answer = Event::new(reply_to, "test://handler", b"answer".to_vec());
        answer.datacontenttype = Some("text/plain".to_owned());
        broker
            .publish(vec![
                Event::new(other, "test://handler", b"not yours".to_vec()),
                answer,
            ])
            .await
            .unwrap();
        let response = await_reply(broker.as_ref(), waiter, &published, MAX_REPLY_TIMEOUT).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[header::CONTENT_TYPE], "text/plain");
        assert_eq!(response.headers()["ce-source"], "test://handler");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"answer");
        assert_eq!(hub.shared.lock().count, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_reply_in_time_is_a_504_naming_the_event() {
        let (_dir, broker) = broker();
        let hub = ReplyHub::new(broker.clone(), 4);
        let (event, reply_to) = request();
        let id = event.id.clone();
        let waiter = hub.register(reply_to).unwrap();
        let published = broker.publish(vec![event]).await.unwrap().remove(0);
        let response = await_reply(
            broker.as_ref(),
            waiter,
            &published,
            Duration::from_millis(50),
        )
        .await;
        assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(String::from_utf8_lossy(&body).contains(id.as_str()));
        assert_eq!(hub.shared.lock().count, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_are_bounded_and_a_dropped_one_frees_its_slot() {
        let (_dir, broker) = broker();
        let hub = ReplyHub::new(broker, 1);
        let first = hub.register(request().1).unwrap();
        assert_eq!(hub.register(request().1).unwrap_err().max, 1);
        drop(first);
        assert!(hub.register(request().1).is_ok());
    }

    #[test]
    fn timeouts_take_a_unit() {
        assert_eq!(
            parse_timeout("500ms", MAX_REPLY_TIMEOUT),
            Ok(Duration::from_millis(500))
        );
        assert_eq!(
            parse_timeout("10s", MAX_REPLY_TIMEOUT),
            Ok(Duration::from_secs(10))
        );
        assert_eq!(
            parse_timeout("2m", MAX_REPLY_TIMEOUT),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            parse_timeout("5m", MAX_REPLY_TIMEOUT),
            Ok(MAX_REPLY_TIMEOUT)
        );
        for bad in [
            "",
            "10",
            "s",
            "1.5s",
            "-1s",
            "10 s",
            "1h",
            "0s",
            "6m",
            "99999999999999999999s",
        ] {
            assert!(parse_timeout(bad, MAX_REPLY_TIMEOUT).is_err(), "{bad}");
        }
    }
}
