//! Accepting connections: HTTP/1.1 with keep-alive and HTTP/2 over cleartext (h2c) on
//! one port, at most `max_connections` at once, each closed when it keeps the server
//! waiting past `idle_timeout`, and a graceful stop that lets requests in progress
//! finish.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::AppState;
use crate::connection::{InFlight, Tracked};
use crate::routes;

/// How long a stop waits for requests in progress before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How long a connection closed for idleness may take to say goodbye (an HTTP/2
/// GOAWAY) before it is cut.
const IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Reaching the connection limit is logged at most this often.
const LIMIT_WARNING_INTERVAL: Duration = Duration::from_secs(60);

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting, ends
/// live streams, and waits (up to [`SHUTDOWN_GRACE`]) for requests in progress. Takes an
/// already-bound listener so callers (and tests) can bind port 0 and read the real
/// address.
///
/// Decision: connections are bounded in number and in how long they may keep the server
/// waiting, because each holds a file descriptor. Without bounds, clients that connect
/// and send nothing (or a head a byte at a time) use up the process's descriptors, and
/// then not only new connections fail: so do the broker's next log segment and every
/// deploy. At [`IngressConfig::max_connections`](crate::IngressConfig) the server stops
/// accepting until one closes; the kernel's listen backlog holds the newcomers.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let head_limit = state.config.max_header_bytes;
    let idle_timeout = state.config.idle_timeout;
    // Idle connections are closed by the connection's own task (see `connection`).
    builder.http1().max_buf_size(head_limit);
    builder
        .http2()
        .max_header_list_size(u32::try_from(head_limit).unwrap_or(u32::MAX));
    tokio::pin!(shutdown);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut limit = Limit::new(&state);
    loop {
        let permit = tokio::select! {
            permit = limit.place() => permit,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let in_flight = InFlight::new();
        let service = {
            let (state, in_flight) = (state.clone(), in_flight.clone());
            service_fn(move |request| {
                let request_guard = in_flight.begin();
                let state = state.clone();
                async move {
                    let reply = routes::route(&state, request).await;
                    Ok::<_, Infallible>(reply.map(|body| Tracked::new(body, request_guard)))
                }
            })
        };
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            let ended = tokio::select! {
                ended = connection.as_mut() => ended,
                () = in_flight.idle_beyond(idle_timeout) => {
                    tracing::debug!(%peer, "closing a connection idle for the idle timeout");
                    connection.as_mut().graceful_shutdown();
                    // A head that never completes would hold a graceful close for ever.
                    match tokio::time::timeout(IDLE_CLOSE_GRACE, connection.as_mut()).await {
                        Ok(ended) => ended,
                        Err(_) => return,
                    }
                }
                () = stopping(stop) => {
                    if in_flight.idle_for().is_some() {
                        return;
                    }
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
            };
            if let Err(err) = ended {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    // Live streams never finish by themselves: end them, so their connections can close.
    state.streams.close();
    let _ = stop_tx.send(true);
    // Every connection holds a place until it ends: all places back means all ended.
    let all = u32::try_from(state.config.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(SHUTDOWN_GRACE, state.connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after the shutdown grace period were cut");
    }
}

/// Resolves once `stop` says the server is stopping.
async fn stopping(mut stop: watch::Receiver<bool>) {
    // The sender lives until `serve` returns, after every connection has ended or been cut.
    let _ = stop.wait_for(|stopping| *stopping).await;
}

/// The connection limit, as the accept loop meets it.
struct Limit {
    places: Arc<Semaphore>,
    max: usize,
    warned_at: Option<Instant>,
}

impl Limit {
    fn new(state: &AppState) -> Self {
        Limit {
            places: state.connections.clone(),
            max: state.config.max_connections,
            warned_at: None,
        }
    }

    /// A place for the next connection, waiting for one to close when there is none
    /// (and saying so, at most every [`LIMIT_WARNING_INTERVAL`]).
    async fn place(&mut self) -> OwnedSemaphorePermit {
        if let Ok(permit) = self.places.clone().try_acquire_owned() {
            return permit;
        }
        if self
            .warned_at
            .is_none_or(|at| at.elapsed() >= LIMIT_WARNING_INTERVAL)
        {
            self.warned_at = Some(Instant::now());
            tracing::warn!(
                max_connections = self.max,
                "the connection limit is reached: new connections wait until one closes"
            );
        }
        self.places
            .clone()
            .acquire_owned()
            .await
            .expect("the connection semaphore is never closed")
    }
}
