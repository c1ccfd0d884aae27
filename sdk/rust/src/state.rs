//! The handler's own durable key-value store, with values as JSON ([`get`], [`set`],
//! [`scan_json`]) or raw bytes ([`get_bytes`], [`set_bytes`], [`scan`]).
//!
//! Each handler has one keyspace, shared by all its versions and invisible to other handlers.
//! Writes made in `handle` are committed with the delivery's outcome, so a failed call writes
//! nothing; reads see the committed state plus the call's own writes. In `query` and
//! `describe` writes are refused with [`StateError::ReadOnly`].

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::choreo::handler::state as wit;

/// How many entries [`scan`] asks for per call. choreo may cap it lower; the iterator pages
/// on until a call returns nothing, so the cap only changes the number of calls.
pub const SCAN_PAGE: u32 = 256;

/// Why a state operation failed. The first three variants are choreo's refusals and carry
/// its message; with `?` in `handle` every variant rejects the event, since each would fail
/// the same way on a redelivery (see [`Error`](crate::Error)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The key is empty or longer than the key size limit.
    #[error("invalid state key: {0}")]
    InvalidKey(String),
    /// The value is larger than the value size limit.
    #[error("state value too large: {0}")]
    TooLarge(String),
    /// The call is `describe` or `query`, which cannot write.
    #[error("read-only call: {0}")]
    ReadOnly(String),
    /// The stored value is not JSON of the requested type.
    #[error("state value under key {key} is not the expected json: {message}")]
    Decode {
        /// The key read.
        key: String,
        /// serde's explanation.
        message: String,
    },
    /// The value could not be encoded as JSON.
    #[error("cannot encode the state value for key {key} as json: {message}")]
    Encode {
        /// The key to write.
        key: String,
        /// serde's explanation.
        message: String,
    },
}

impl From<wit::StateError> for StateError {
    fn from(error: wit::StateError) -> Self {
        match error {
            wit::StateError::InvalidKey(m) => Self::InvalidKey(m),
            wit::StateError::TooLarge(m) => Self::TooLarge(m),
            wit::StateError::ReadOnly(m) => Self::ReadOnly(m),
        }
    }
}

/// The value under `key` decoded from JSON, or `None` when the key is absent.
///
/// # Errors
///
/// choreo's refusal, or [`StateError::Decode`] when the stored value is not a `T`.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>, StateError> {
    match get_bytes(key)? {
        Some(bytes) => decode(key, &bytes).map(Some),
        None => Ok(None),
    }
}

/// Stores `value` as JSON under `key`.
///
/// # Errors
///
/// choreo's refusal, or [`StateError::Encode`].
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<(), StateError> {
    let bytes = serde_json::to_vec(value).map_err(|e| StateError::Encode {
        key: key.to_owned(),
        message: e.to_string(),
    })?;
    set_bytes(key, &bytes)
}

/// The raw value under `key`, or `None` when the key is absent.
///
/// # Errors
///
/// choreo's refusal (an invalid key).
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>, StateError> {
    wit::get(key).map_err(StateError::from)
}

/// Stores `value` under `key` as is.
///
/// # Errors
///
/// choreo's refusal: invalid key, value too large, or a read-only call.
pub fn set_bytes(key: &str, value: &[u8]) -> Result<(), StateError> {
    wit::set(key, value).map_err(StateError::from)
}

/// Removes `key`; removing a missing key is not an error.
///
/// # Errors
///
/// choreo's refusal: invalid key or a read-only call.
pub fn delete(key: &str) -> Result<(), StateError> {
    wit::delete(key).map_err(StateError::from)
}

/// Every entry whose key starts with `prefix`, in key order, as raw bytes. The iterator asks
/// choreo for [`SCAN_PAGE`] entries at a time and stops after the first error.
///
/// ```no_run
/// let counts: Vec<(String, Vec<u8>)> =
///     choreo_sdk::state::scan("count/").collect::<Result<_, _>>()?;
/// # Ok::<(), choreo_sdk::StateError>(())
/// ```
pub fn scan(prefix: &str) -> Scan {
    Scan::new(prefix, host_page)
}

/// Every entry whose key starts with `prefix`, in key order, decoded from JSON.
pub fn scan_json<T: DeserializeOwned>(
    prefix: &str,
) -> impl Iterator<Item = Result<(String, T), StateError>> {
    scan(prefix).map(|entry| {
        let (key, bytes) = entry?;
        let value = decode(&key, &bytes)?;
        Ok((key, value))
    })
}

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, StateError> {
    serde_json::from_slice(bytes).map_err(|e| StateError::Decode {
        key: key.to_owned(),
        message: e.to_string(),
    })
}

type Page = Result<Vec<(String, Vec<u8>)>, StateError>;
type FetchPage = fn(prefix: &str, start_after: Option<&str>, limit: u32) -> Page;

fn host_page(prefix: &str, start_after: Option<&str>, limit: u32) -> Page {
    wit::scan(prefix, start_after, limit).map_err(StateError::from)
}

/// The iterator returned by [`scan`].
pub struct Scan {
    prefix: String,
    /// The last key returned so far: where the next page starts.
    after: Option<String>,
    page: std::vec::IntoIter<(String, Vec<u8>)>,
    done: bool,
    fetch: FetchPage,
}

impl Scan {
    fn new(prefix: &str, fetch: FetchPage) -> Self {
        Self {
            prefix: prefix.to_owned(),
            after: None,
            page: Vec::new().into_iter(),
            done: false,
            fetch,
        }
    }
}

impl Iterator for Scan {
    type Item = Result<(String, Vec<u8>), StateError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((key, value)) = self.page.next() {
                self.after = Some(key.clone());
                return Some(Ok((key, value)));
            }
            if self.done {
                return None;
            }
            // A short page does not mean the end: choreo may cap `limit` below what we ask,
            // so only an empty page does.
            match (self.fetch)(&self.prefix, self.after.as_deref(), SCAN_PAGE) {
                Ok(mut page) => {
                    // Keep only keys past the last one seen, so a page that does not move
                    // forward ends the scan instead of looping.
                    if let Some(after) = self.after.as_deref() {
                        page.retain(|(key, _)| key.as_str() > after);
                    }
                    self.done = page.is_empty();
                    self.page = page.into_iter();
                }
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }
}

impl fmt::Debug for Scan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scan")
            .field("prefix", &self.prefix)
            .field("after", &self.after)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake store of 7 keys that caps pages at 3 entries, below [`SCAN_PAGE`].
    fn capped_page(prefix: &str, start_after: Option<&str>, _limit: u32) -> Page {
        let keys = ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7", "b/1"];
        Ok(keys
            .iter()
            .filter(|k| k.starts_with(prefix) && start_after.is_none_or(|after| **k > after))
            .take(3)
            .map(|k| ((*k).to_owned(), k.as_bytes().to_vec()))
            .collect())
    }

    #[test]
    fn scan_pages_past_a_capped_limit_until_an_empty_page() {
        let keys: Vec<String> = Scan::new("a/", capped_page)
            .map(|entry| entry.unwrap().0)
            .collect();
        assert_eq!(keys, ["a/1", "a/2", "a/3", "a/4", "a/5", "a/6", "a/7"]);
    }

    fn failing_page(_: &str, _: Option<&str>, _: u32) -> Page {
        Err(StateError::InvalidKey("prefix too long".into()))
    }

    #[test]
    fn scan_stops_after_an_error() {
        let mut scan = Scan::new("x", failing_page);
        assert!(matches!(scan.next(), Some(Err(StateError::InvalidKey(_)))));
        assert!(scan.next().is_none());
    }

    fn stuck_page(_: &str, _: Option<&str>, _: u32) -> Page {
        Ok(vec![("k".to_owned(), Vec::new())])
    }

    #[test]
    fn scan_stops_when_a_page_does_not_move_forward() {
        assert_eq!(Scan::new("", stuck_page).count(), 1);
    }

    #[test]
    fn decode_errors_name_the_key() {
        let error = decode::<u32>("count/x", b"nope").unwrap_err();
        assert!(
            matches!(&error, StateError::Decode { key, .. } if key == "count/x"),
            "{error}"
        );
    }
}
