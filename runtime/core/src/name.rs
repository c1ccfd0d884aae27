//! Handler names: the identity a handler's queue, state and dead-letters are keyed by.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest handler name, in bytes: it appears in topics (`$dlq.<name>`), storage keys,
/// metric labels and URLs, so it stays short.
pub const MAX_HANDLER_NAME_BYTES: usize = 64;

/// Why a handler name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name was empty.
    #[error("handler name is empty")]
    Empty,
    /// The name is longer than [`MAX_HANDLER_NAME_BYTES`].
    #[error("handler name `{name}` is {len} bytes long; the limit is {MAX_HANDLER_NAME_BYTES}")]
    TooLong {
        /// The name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The name has a character outside `a-z`, `0-9` and `-`, or does not start with a letter.
    #[error(
        "handler name `{name}` must start with a lower-case letter and hold only lower-case letters, digits and `-` (found {found:?} at byte {at})"
    )]
    BadCharacter {
        /// The name.
        name: String,
        /// The offending character.
        found: char,
        /// Its byte offset.
        at: usize,
    },
}

/// A validated handler name: lower-case ASCII letters, digits and `-`, starting with a
/// letter, at most [`MAX_HANDLER_NAME_BYTES`] bytes. Valid as a topic token and in URLs.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct HandlerName(String);

impl HandlerName {
    /// Parses and validates a handler name.
    pub fn new(input: impl Into<String>) -> Result<Self, NameError> {
        let name = input.into();
        if name.is_empty() {
            return Err(NameError::Empty);
        }
        if name.len() > MAX_HANDLER_NAME_BYTES {
            return Err(NameError::TooLong {
                len: name.len(),
                name,
            });
        }
        for (at, c) in name.char_indices() {
            let ok = c.is_ascii_lowercase() || (at > 0 && (c.is_ascii_digit() || c == '-'));
            if !ok {
                return Err(NameError::BadCharacter {
                    name: name.clone(),
                    found: c,
                    at,
                });
            }
        }
        Ok(HandlerName(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HandlerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HandlerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HandlerName({})", self.0)
    }
}

impl std::str::FromStr for HandlerName {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HandlerName::new(s)
    }
}

impl<'de> Deserialize<'de> for HandlerName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        HandlerName::new(String::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_refuses() {
        assert!(HandlerName::new("order-view2").is_ok());
        assert!(matches!(
            HandlerName::new("2fast"),
            Err(NameError::BadCharacter { at: 0, .. })
        ));
        assert!(matches!(
            HandlerName::new("Orders"),
            Err(NameError::BadCharacter { .. })
        ));
        assert!(matches!(
            HandlerName::new("a.b"),
            Err(NameError::BadCharacter { found: '.', .. })
        ));
        assert!(matches!(HandlerName::new(""), Err(NameError::Empty)));
        assert!(matches!(
            HandlerName::new("a".repeat(65)),
            Err(NameError::TooLong { .. })
        ));
    }
}
