//! Event ids.
//!
//! choreo assigns ULIDs: 128 bits, unique without coordination, and sortable by creation
//! time, which keeps the event index in roughly insertion order. Publishers may supply
//! their own id (CloudEvents `id`), which is then any non-empty printable string; together
//! with the `source` it is the idempotency key.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest client-supplied event id, in bytes. CloudEvents sets no limit; this one keeps
/// dedup keys and log lines bounded while fitting UUIDs, ULIDs and composite keys.
pub const MAX_EVENT_ID_BYTES: usize = 128;

/// Why an event id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id was empty.
    #[error("event id is empty")]
    Empty,
    /// The id is longer than [`MAX_EVENT_ID_BYTES`].
    #[error("event id is {len} bytes long; the limit is {MAX_EVENT_ID_BYTES}")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The id holds whitespace or a control character.
    #[error("event id `{id}` contains whitespace or a control character")]
    BadCharacter {
        /// The id.
        id: String,
    },
}

/// A validated event id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// A fresh ULID.
    pub fn generate() -> Self {
        EventId(ulid::Ulid::new().to_string())
    }

    /// Validates an id supplied by a publisher.
    pub fn new(input: impl Into<String>) -> Result<Self, IdError> {
        let id = input.into();
        if id.is_empty() {
            return Err(IdError::Empty);
        }
        if id.len() > MAX_EVENT_ID_BYTES {
            return Err(IdError::TooLong { len: id.len() });
        }
        if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(IdError::BadCharacter { id });
        }
        Ok(EventId(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventId({})", self.0)
    }
}

impl<'de> Deserialize<'de> for EventId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        EventId::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_sortable_by_time() {
        let a = EventId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = EventId::generate();
        assert!(a < b);
        assert_eq!(a.as_str().len(), 26);
    }

    #[test]
    fn client_ids_are_validated() {
        assert!(EventId::new("order-42/v1").is_ok());
        assert_eq!(EventId::new(""), Err(IdError::Empty));
        assert!(matches!(
            EventId::new("a b"),
            Err(IdError::BadCharacter { .. })
        ));
        assert!(matches!(
            EventId::new("x".repeat(129)),
            Err(IdError::TooLong { len: 129 })
        ));
    }
}
