//! `choreo:handler/log`: guest log lines into `tracing`, at the level the guest chose,
//! with the handler and event id as fields and target `choreo::guest`. Lines are cut
//! to the handler's `max_log_line_bytes`.

use crate::bindings::choreo::handler::log::{Host, Level};
use crate::call::CallState;
use crate::output::GUEST_LOG_TARGET;

impl Host for CallState {
    async fn write(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        let max = self.setup.limits.max_log_line_bytes;
        let text = match message.char_indices().find(|(at, _)| *at >= max) {
            Some((cut, _)) => &message[..cut],
            None => &message,
        };
        let handler = &*self.setup.handler;
        let event_id = self.setup.event_id.as_deref();
        match level {
            Level::Trace => tracing::trace!(target: GUEST_LOG_TARGET, handler, event_id, "{text}"),
            Level::Debug => tracing::debug!(target: GUEST_LOG_TARGET, handler, event_id, "{text}"),
            Level::Info => tracing::info!(target: GUEST_LOG_TARGET, handler, event_id, "{text}"),
            Level::Warn => tracing::warn!(target: GUEST_LOG_TARGET, handler, event_id, "{text}"),
            Level::Error => tracing::error!(target: GUEST_LOG_TARGET, handler, event_id, "{text}"),
        }
        Ok(())
    }
}
