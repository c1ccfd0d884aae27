//! Guest stdout and stderr, forwarded line by line to `tracing`.
//!
//! A guest has no inherited stdio: whatever it prints is split into lines, cut to the
//! handler's line limit, and logged with the handler name and event id (stdout at
//! `info`, stderr at `warn`, target `choreo::guest`). One call may print at most
//! `max_output_bytes` in total; the rest is dropped with a single warning, and writes
//! keep succeeding so a chatty guest is never broken by its logging.

use std::sync::{Arc, Mutex};

use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The log target of everything a guest writes.
pub const GUEST_LOG_TARGET: &str = "choreo::guest";

/// Which stream a guest wrote to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

/// Who is printing, for the log fields.
#[derive(Debug, Clone)]
pub(crate) struct Origin {
    pub(crate) handler: Arc<str>,
    pub(crate) event_id: Option<Arc<str>>,
}

/// One stream of one call. Clones share the buffer (WASI may ask for the stream more
/// than once per call).
#[derive(Debug, Clone)]
pub(crate) struct GuestOutput {
    shared: Arc<Mutex<Buffer>>,
}

#[derive(Debug)]
struct Buffer {
    origin: Origin,
    stream: Stream,
    line: Vec<u8>,
    max_line: usize,
    /// Bytes this call may still print, shared by stdout and stderr.
    budget: Arc<Mutex<usize>>,
    dropped: bool,
}

impl GuestOutput {
    /// A stdout/stderr pair for one call sharing one byte budget.
    pub(crate) fn pair(origin: Origin, max_line: usize, max_total: usize) -> (Self, Self) {
        let budget = Arc::new(Mutex::new(max_total));
        let make = |stream| GuestOutput {
            shared: Arc::new(Mutex::new(Buffer {
                origin: origin.clone(),
                stream,
                line: Vec::new(),
                max_line,
                budget: budget.clone(),
                dropped: false,
            })),
        };
        (make(Stream::Stdout), make(Stream::Stderr))
    }

    /// Points a pair made by [`GuestOutput::pair`] at a new call: its origin and a new
    /// shared budget. The guest may hold its streams across calls (a kept instance), so
    /// the pair is changed in place rather than replaced.
    pub(crate) fn restart_pair(pair: &(Self, Self), origin: Origin, max_total: usize) {
        let budget = Arc::new(Mutex::new(max_total));
        for output in [&pair.0, &pair.1] {
            let mut buffer = output
                .shared
                .lock()
                .expect("guest output lock is never poisoned");
            buffer.origin = origin.clone();
            buffer.budget = budget.clone();
            buffer.line.clear();
            buffer.dropped = false;
        }
    }

    /// Logs a last unterminated line, if any. Called when the call ends.
    pub(crate) fn finish(&self) {
        let mut buffer = self
            .shared
            .lock()
            .expect("guest output lock is never poisoned");
        if !buffer.line.is_empty() {
            let line = std::mem::take(&mut buffer.line);
            buffer.emit(&line);
        }
    }

    fn write_bytes(&self, bytes: &[u8]) {
        let mut buffer = self
            .shared
            .lock()
            .expect("guest output lock is never poisoned");
        let allowed = {
            let mut budget = buffer.budget.lock().expect("budget lock is never poisoned");
            let allowed = bytes.len().min(*budget);
            *budget -= allowed;
            allowed
        };
        if allowed < bytes.len() && !buffer.dropped {
            buffer.dropped = true;
            tracing::warn!(
                target: GUEST_LOG_TARGET,
                handler = %buffer.origin.handler,
                event_id = buffer.origin.event_id.as_deref(),
                "guest output past its per-call limit is dropped"
            );
        }
        for &byte in &bytes[..allowed] {
            if byte == b'\n' {
                let line = std::mem::take(&mut buffer.line);
                buffer.emit(&line);
            } else if buffer.line.len() < buffer.max_line {
                buffer.line.push(byte);
            }
        }
    }
}

impl Buffer {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let handler = &*self.origin.handler;
        let event_id = self.origin.event_id.as_deref();
        match self.stream {
            Stream::Stdout => {
                tracing::info!(target: GUEST_LOG_TARGET, handler, event_id, stream = "stdout", "{text}");
            }
            Stream::Stderr => {
                tracing::warn!(target: GUEST_LOG_TARGET, handler, event_id, stream = "stderr", "{text}");
            }
        }
    }
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for GuestOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.write_bytes(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: output past the budget is accepted and dropped.
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for GuestOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.write_bytes(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
