//! Reading a whole request body: within the size limit, and with each next piece
//! arriving within the idle timeout, so that a client sending its body a byte now and
//! then cannot hold a connection (and a file descriptor) for ever.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::problem::Problem;

/// Why a body could not be read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Longer than the limit, which it names.
    TooLarge(usize),
    /// Nothing more arrived within the idle timeout, which it names.
    Stalled(Duration),
    /// The connection failed while the body was read.
    Failed(hyper::Error),
}

/// Reads `body` whole: at most `max` bytes, each piece arriving within `idle` of the
/// last. A body that comes in one piece, as most do, is not copied.
///
/// A body declared longer than `max` is still read up to `max` before it is refused, not
/// refused from its `content-length` at once: a client that is still sending gets its
/// 413 answer instead of a broken pipe.
pub(crate) async fn read_whole(
    mut body: Incoming,
    max: usize,
    idle: Duration,
) -> Result<Bytes, BodyError> {
    let mut first: Option<Bytes> = None;
    let mut joined = BytesMut::new();
    let mut len = 0;
    loop {
        // Most pieces are already there: only a wait needs a timer.
        let next = match body.frame().now_or_never() {
            Some(next) => next,
            None => tokio::time::timeout(idle, body.frame())
                .await
                .map_err(|_| BodyError::Stalled(idle))?,
        };
        let Some(frame) = next else { break };
        let Ok(data) = frame.map_err(BodyError::Failed)?.into_data() else {
            // Trailers carry nothing the API reads.
            continue;
        };
        len += data.len();
        if len > max {
            return Err(BodyError::TooLarge(max));
        }
        match first.take() {
            None if joined.is_empty() => first = Some(data),
            held => {
                if let Some(held) = held {
                    joined.extend_from_slice(&held);
                }
                joined.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| joined.freeze()))
}

impl From<BodyError> for Problem {
    fn from(err: BodyError) -> Self {
        match err {
            BodyError::TooLarge(max) => Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the body is larger than the limit of {max} bytes (max_body_bytes)"),
            ),
            BodyError::Stalled(idle) => Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body-timeout",
                format!(
                    "the body stopped arriving: nothing came for {} ms (idle_timeout_ms)",
                    idle.as_millis()
                ),
            ),
            BodyError::Failed(err) => {
                Problem::bad_request("bad-body", format!("reading the body failed: {err}"))
            }
        }
    }
}
