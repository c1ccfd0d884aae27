//! Accepting connections: HTTP/1.1 with keep-alive and HTTP/2 over cleartext (h2c) on
//! one port, at most `max_connections` at once, each closed when it keeps the server
//! waiting past `idle_timeout`, and a graceful stop that lets requests in progress
//! finish.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::AppState;
use crate::routes;

/// How long a stop waits for requests in progress before closing their connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

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
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    let head_limit = state.config.max_header_bytes;
    let idle_timeout = state.config.idle_timeout;
    // The header timer runs whenever hyper waits for a request head, idle keep-alive
    // connections included.
    builder
        .http1()
        .max_buf_size(head_limit)
        .timer(TokioTimer::new())
        .header_read_timeout(idle_timeout);
    builder
        .http2()
        .max_header_list_size(u32::try_from(head_limit).unwrap_or(u32::MAX));
    tokio::pin!(shutdown);
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
        // Whether a request has arrived: until one has, hyper's own timers do not run
        // (it is still telling HTTP/1.1 from HTTP/2), so this task keeps the deadline.
        let served = Arc::new(AtomicBool::new(false));
        let service = {
            let (state, served) = (state.clone(), served.clone());
            service_fn(move |request| {
                if !served.load(Ordering::Relaxed) {
                    served.store(true, Ordering::Relaxed);
                }
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(routes::route(&state, request).await) }
            })
        };
        let connection = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::pin!(connection);
            let ended = tokio::select! {
                ended = &mut connection => ended,
                () = tokio::time::sleep(idle_timeout) => {
                    if !served.load(Ordering::Relaxed) {
                        tracing::debug!(%peer, "closing a connection that sent no request within the idle timeout");
                        return;
                    }
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
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after the shutdown grace period were cut");
    }
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
