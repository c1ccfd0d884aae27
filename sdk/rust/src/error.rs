//! [`Error`]: why a call of `handle` did not complete, and the conversions that let `?`
//! turn SDK and serde errors into one.
//!
//! The rule behind every conversion: an error that would happen again on a redelivery of the
//! same event is a `reject` (the event goes to the dead-letter topic at once, where an operator
//! can inspect it and replay it after a fix); only a failure that a later attempt may not meet
//! is a `retry`. Every refusal the WIT imports can return today is deterministic (a topic that
//! was not declared, a payload over a limit, an invalid key), so they all reject. Transient
//! host failures, such as storage being unavailable, are not reported to the guest: the host
//! fails the delivery itself, which counts as a retry.

use std::fmt;

use crate::bindings::choreo::handler::types::HandleError;

/// What choreo should do with an event whose handling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Deliver the event again later, with backoff, up to the handler's maximum number of
    /// attempts; then dead-letter it.
    Retry,
    /// Dead-letter the event now.
    Reject,
}

/// The failure of one call of [`Handler::handle`](crate::Handler::handle).
///
/// Either way, nothing the call published or wrote to state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// A transient failure: the event is delivered again later.
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Retry,
            message: message.into(),
        }
    }

    /// A permanent failure: the event goes to the dead-letter topic now.
    pub fn reject(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Reject,
            message: message.into(),
        }
    }

    /// Whether the event is retried or rejected.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The reason, as recorded with the retry or the dead-letter.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with `context` and `: `, keeping the kind.
    pub fn context(mut self, context: impl fmt::Display) -> Self {
        self.message = format!("{context}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<Error> for HandleError {
    fn from(error: Error) -> Self {
        match error.kind {
            ErrorKind::Retry => HandleError::Retry(error.message),
            ErrorKind::Reject => HandleError::Reject(error.message),
        }
    }
}

/// Malformed JSON will be just as malformed on the next attempt.
impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::reject(format!("invalid json: {error}"))
    }
}

/// Every publish refusal is deterministic (see the module docs).
impl From<crate::PublishError> for Error {
    fn from(error: crate::PublishError) -> Self {
        Error::reject(error.to_string())
    }
}

/// Every state refusal is deterministic (see the module docs).
impl From<crate::StateError> for Error {
    fn from(error: crate::StateError) -> Self {
        Error::reject(error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PublishError, StateError};

    #[test]
    fn retry_and_reject_map_to_the_wit_variants() {
        match HandleError::from(Error::retry("db busy")) {
            HandleError::Retry(m) => assert_eq!(m, "db busy"),
            other => panic!("expected retry, got {other:?}"),
        }
        match HandleError::from(Error::reject("bad order")) {
            HandleError::Reject(m) => assert_eq!(m, "bad order"),
            other => panic!("expected reject, got {other:?}"),
        }
    }

    #[test]
    fn malformed_json_rejects() {
        let error = serde_json::from_str::<u32>("{")
            .map_err(Error::from)
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Reject);
        assert!(error.message().starts_with("invalid json: "), "{error}");
    }

    #[test]
    fn publish_and_state_refusals_reject_and_keep_the_host_message() {
        let error = Error::from(PublishError::NotDeclared(
            "topic a.b is not declared".into(),
        ));
        assert_eq!(error.kind(), ErrorKind::Reject);
        assert!(
            error.message().contains("topic a.b is not declared"),
            "{error}"
        );

        let error = Error::from(StateError::TooLarge("value over 1 MiB".into()));
        assert_eq!(error.kind(), ErrorKind::Reject);
        assert!(error.message().contains("value over 1 MiB"), "{error}");
    }

    #[test]
    fn context_prefixes_the_message_and_keeps_the_kind() {
        let error = Error::retry("timeout").context("order 42");
        assert_eq!(error.kind(), ErrorKind::Retry);
        assert_eq!(error.to_string(), "order 42: timeout");
    }
}
