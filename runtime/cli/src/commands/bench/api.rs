//! One keep-alive HTTP/1.1 connection to the API, and the few calls the bench makes on
//! it: publish, read a page of events, list handlers.
//!
//! The bench opens its own connections rather than going through a pooled client so that
//! "C connections" means exactly C sockets, each with one request in flight.
//!
//! Decision: the connection writes its requests and parses the answers itself (with
//! `httparse`), in the task that sends them, like `wrk` or `redis-benchmark` do. The
//! load generator shares the machine with the server it measures: through hyper's
//! client (a connection task beside each sender, and a hand-over between them per
//! request) it took about half as much CPU as the server during single-event ingress.

use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most events one `GET /v1/events` page may hold (the API's limit).
const PAGE: usize = 1_000;
/// Pause between polls that found nothing new.
const IDLE_POLL: Duration = Duration::from_millis(1);
/// Most headers an answer may have.
const MAX_HEADERS: usize = 32;
/// Largest answer head the bench reads.
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// A keep-alive connection with at most one request in flight.
pub(crate) struct Conn {
    stream: TcpStream,
    address: String,
    /// The request being written; kept to reuse its allocation.
    request: Vec<u8>,
    /// Bytes read and not yet consumed.
    read: BytesMut,
}

/// The answer to a publish.
#[derive(Debug, Deserialize)]
pub(crate) struct Published {
    pub(crate) id: String,
    pub(crate) seq: u64,
}

/// An event as `GET /v1/events` returns it, reduced to what the bench reads.
#[derive(Debug, Deserialize)]
pub(crate) struct SeenEvent {
    pub(crate) time: String,
    pub(crate) correlationid: String,
}

#[derive(Deserialize)]
struct Page {
    events: Vec<SeenEvent>,
    next: u64,
}

impl Conn {
    /// Connects to `address` (`host:port`).
    pub(crate) async fn open(address: &str) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .with_context(|| format!("cannot connect to choreo at {address}"))?;
        stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
        Ok(Conn {
            stream,
            address: address.to_owned(),
            request: Vec::with_capacity(1024),
            read: BytesMut::with_capacity(8 * 1024),
        })
    }

    /// Sends one request and reads the whole answer.
    pub(crate) async fn send(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        use std::io::Write;
        let request = &mut self.request;
        request.clear();
        write!(
            request,
            "{method} {path} HTTP/1.1\r\nhost: {}\r\n",
            self.address
        )?;
        for (name, value) in headers {
            write!(request, "{name}: {value}\r\n")?;
        }
        if let Some(authorization) = crate::client::authorization() {
            write!(request, "authorization: {authorization}\r\n")?;
        }
        write!(request, "content-length: {}\r\n\r\n", body.len())?;
        request.extend_from_slice(&body);
        self.stream
            .write_all(request)
            .await
            .with_context(|| format!("sending {method} {path} failed"))?;
        self.answer()
            .await
            .with_context(|| format!("reading the answer to {method} {path} failed"))
    }

    /// Reads one answer: its head, then a body of its `content-length`.
    async fn answer(&mut self) -> anyhow::Result<(StatusCode, Bytes)> {
        let (status, head_len, body_len) = loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            if let httparse::Status::Complete(head_len) = response.parse(&self.read)? {
                let status = StatusCode::from_u16(response.code.unwrap_or_default())?;
                let length = response
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .context("the answer has no content-length")?;
                let body_len: usize = std::str::from_utf8(length.value)?.trim().parse()?;
                break (status, head_len, body_len);
            }
            anyhow::ensure!(
                self.read.len() < MAX_HEAD_BYTES,
                "the answer's head is over {MAX_HEAD_BYTES} bytes"
            );
            self.fill().await?;
        };
        while self.read.len() < head_len + body_len {
            self.fill().await?;
        }
        self.read.advance(head_len);
        Ok((status, self.read.split_to(body_len).freeze()))
    }

    /// Reads what the socket has into the buffer; an error if the server closed it.
    async fn fill(&mut self) -> anyhow::Result<()> {
        self.read.reserve(8 * 1024);
        let read = self.stream.read_buf(&mut self.read).await?;
        anyhow::ensure!(read > 0, "the server closed the connection");
        Ok(())
    }

    /// Publishes `data` (JSON) on `topic`, with an ordering key if given; returns once
    /// choreo has answered 202.
    pub(crate) async fn publish(
        &mut self,
        topic: &str,
        key: Option<&str>,
        data: Bytes,
    ) -> anyhow::Result<Published> {
        let mut headers = vec![
            ("content-type", "application/json"),
            ("ce-specversion", "1.0"),
        ];
        if let Some(key) = key {
            headers.push(("ce-partitionkey", key));
        }
        let path = format!("/v1/topics/{topic}");
        let (status, body) = self.send(Method::POST, &path, &headers, data).await?;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "publishing to {topic} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        serde_json::from_slice(&body).context("the publish answer is not {id, seq}")
    }

    /// Publishes `datas` (JSON each) on `topic` as one CloudEvents batch
    /// (`POST /v1/events`); returns once choreo has answered 202 for all of them.
    pub(crate) async fn publish_batch(
        &mut self,
        topic: &str,
        first: u64,
        datas: Vec<Bytes>,
    ) -> anyhow::Result<usize> {
        let mut events = Vec::with_capacity(datas.len());
        for (i, data) in datas.iter().enumerate() {
            let data: serde_json::Value =
                serde_json::from_slice(data).context("bench payloads are JSON")?;
            events.push(serde_json::json!({
                "specversion": "1.0",
                "id": format!("bench-batch-{}-{}", std::process::id(), first + i as u64),
                "source": "choreo://bench",
                "type": "bench.batch",
                "topic": topic,
                "datacontenttype": "application/json",
                "data": data,
            }));
        }
        let body = serde_json::to_vec(&events).context("a batch serialises")?;
        let headers = [("content-type", "application/cloudevents-batch+json")];
        let (status, answer) = self
            .send(Method::POST, "/v1/events", &headers, Bytes::from(body))
            .await?;
        anyhow::ensure!(
            status == StatusCode::ACCEPTED,
            "publishing a batch to {topic} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        let accepted: Vec<Published> =
            serde_json::from_slice(&answer).context("the batch answer is not [{id, seq}]")?;
        anyhow::ensure!(
            accepted.len() == events.len(),
            "a batch of {} was answered with {} acknowledgements",
            events.len(),
            accepted.len()
        );
        Ok(accepted.len())
    }

    /// One page of events matching `pattern` after `after`, and where to continue.
    async fn events_after(
        &mut self,
        pattern: &str,
        after: u64,
    ) -> anyhow::Result<(Vec<SeenEvent>, u64)> {
        let path = format!("/v1/events?pattern={pattern}&after={after}&limit={PAGE}");
        let (status, body) = self.send(Method::GET, &path, &[], Bytes::new()).await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let page: Page = serde_json::from_slice(&body).context("unexpected /v1/events answer")?;
        Ok((page.events, page.next))
    }

    /// The status of every handler by name (`running`, `stopped`, …).
    pub(crate) async fn handler_statuses(&mut self) -> anyhow::Result<Vec<(String, String)>> {
        #[derive(Deserialize)]
        struct Listing {
            handlers: Vec<Handler>,
        }
        #[derive(Deserialize)]
        struct Handler {
            name: String,
            status: String,
        }
        let (status, body) = self
            .send(Method::GET, "/v1/handlers", &[], Bytes::new())
            .await?;
        anyhow::ensure!(
            status == StatusCode::OK,
            "GET /v1/handlers answered {status}"
        );
        let listing: Listing =
            serde_json::from_slice(&body).context("unexpected /v1/handlers answer")?;
        Ok(listing
            .handlers
            .into_iter()
            .map(|h| (h.name, h.status))
            .collect())
    }
}

/// An event the tail saw, with the moment it saw it.
pub(crate) struct Observed {
    pub(crate) event: SeenEvent,
    pub(crate) at: SystemTime,
}

/// Follows the log by seq: collects events matching `pattern` after `after` until `want`
/// have arrived or `deadline` passes, counting them in `progress`.
pub(crate) async fn tail(
    address: String,
    pattern: String,
    after: u64,
    want: usize,
    deadline: Instant,
    progress: super::stats::Progress,
) -> anyhow::Result<Vec<Observed>> {
    let mut conn = Conn::open(&address).await?;
    let mut seen = Vec::with_capacity(want);
    let mut after = after;
    while seen.len() < want {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {want} events on {pattern} arrived before the deadline",
            seen.len()
        );
        let (events, next) = conn.events_after(&pattern, after).await?;
        let at = SystemTime::now();
        after = next.max(after);
        if events.is_empty() {
            tokio::time::sleep(IDLE_POLL).await;
            continue;
        }
        progress.add(events.len() as u64);
        seen.extend(events.into_iter().map(|event| Observed { event, at }));
    }
    Ok(seen)
}
