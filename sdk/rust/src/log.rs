//! Structured logging into choreo's log, tagged with the handler name and the event id.
//!
//! Prefer these over `println!`: stdout and stderr are captured too, but lose the level.
//! choreo cuts lines longer than the handler's log line limit.

use crate::bindings::choreo::handler::log as wit;

/// Severity of a log line, mapped to the same `tracing` levels in choreo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Details useful while debugging.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the handler coped with.
    Warn,
    /// Something failed.
    Error,
}

/// Writes one line at `level`.
pub fn write(level: Level, message: impl AsRef<str>) {
    let level = match level {
        Level::Trace => wit::Level::Trace,
        Level::Debug => wit::Level::Debug,
        Level::Info => wit::Level::Info,
        Level::Warn => wit::Level::Warn,
        Level::Error => wit::Level::Error,
    };
    wit::write(level, message.as_ref());
}

/// Writes one line at trace level.
pub fn trace(message: impl AsRef<str>) {
    write(Level::Trace, message);
}

/// Writes one line at debug level.
pub fn debug(message: impl AsRef<str>) {
    write(Level::Debug, message);
}

/// Writes one line at info level.
pub fn info(message: impl AsRef<str>) {
    write(Level::Info, message);
}

/// Writes one line at warn level.
pub fn warn(message: impl AsRef<str>) {
    write(Level::Warn, message);
}

/// Writes one line at error level.
pub fn error(message: impl AsRef<str>) {
    write(Level::Error, message);
}
