//! What one connection has in progress, from which `server` closes it once it has had
//! no request for the idle timeout, and closes it at once at a stop when it has none.
//!
//! Decision: idleness is judged here, from the requests in progress (a request counts
//! from its head's arrival until its answer's body is written, so a live stream or a
//! `reply=wait` is never idle), rather than by hyper's header timer. hyper's timer does
//! not run while it is still telling HTTP/1.1 from HTTP/2, and HTTP/2 has no idle
//! timeout at all; one rule here covers a connection that sends nothing, a head sent a
//! piece at a time, a kept-alive connection left idle, and an HTTP/2 connection with no
//! streams. The same count lets a stop close idle connections at once instead of
//! waiting out the grace period for a head that never completes.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::routes;

/// The requests in progress on one connection, and since when it has had none.
#[derive(Debug)]
pub(crate) struct InFlight {
    requests: AtomicUsize,
    opened: Instant,
    /// Milliseconds after `opened` when the last request in progress finished.
    idle_since_ms: AtomicU64,
}

impl InFlight {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(InFlight {
            requests: AtomicUsize::new(0),
            opened: Instant::now(),
            idle_since_ms: AtomicU64::new(0),
        })
    }

    /// A request's head has arrived; it is in progress until the guard is dropped with
    /// its answer's body.
    pub(crate) fn begin(self: &Arc<Self>) -> RequestGuard {
        self.requests.fetch_add(1, Ordering::AcqRel);
        RequestGuard(self.clone())
    }

    /// How long the connection has had no request in progress, or `None` while it has.
    pub(crate) fn idle_for(&self) -> Option<Duration> {
        if self.requests.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.opened.elapsed().saturating_sub(since))
    }

    /// Resolves once the connection has had no request in progress for `limit`.
    pub(crate) async fn idle_beyond(&self, limit: Duration) {
        loop {
            let wait = match self.idle_for() {
                Some(idle) if idle >= limit => return,
                Some(idle) => limit - idle,
                None => limit,
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// A request in progress; dropped with the answer's body, once it is written or the
/// connection is gone.
#[derive(Debug)]
pub(crate) struct RequestGuard(Arc<InFlight>);

impl Drop for RequestGuard {
    fn drop(&mut self) {
        let in_flight = &self.0;
        if in_flight.requests.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = u64::try_from(in_flight.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
            in_flight.idle_since_ms.store(now, Ordering::Release);
        }
    }
}

/// An answer's body that keeps its request counted as in progress until it is written.
pub(crate) struct Tracked {
    body: routes::Body,
    _request: RequestGuard,
}

impl Tracked {
    pub(crate) fn new(body: routes::Body, request: RequestGuard) -> Self {
        Tracked {
            body,
            _request: request,
        }
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
