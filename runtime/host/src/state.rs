//! The handler's keyspace as one call sees it.
//!
//! The caller supplies a read-only [`StateReader`] over the committed state (the broker
//! in production, a map in tests). Writes made during a call go into an overlay that
//! reads see immediately and that is handed back with the call's outcome, so the
//! caller commits them atomically with the delivery, or drops them when it fails.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// A failure of the committed-state store. It traps the call, so the delivery is
/// retried: the guest is not at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state store failed: {0}")]
pub struct StoreError(pub String);

/// Read access to one handler's committed state. Implemented by the caller.
#[async_trait::async_trait]
pub trait StateReader: Send + Sync {
    /// The value under `key`.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Up to `limit` entries whose key starts with `prefix` and is greater than
    /// `start_after`, in key order.
    async fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
}

/// An in-memory [`StateReader`], for tests and tools.
#[derive(Debug, Default, Clone)]
pub struct MemoryState(pub BTreeMap<String, Vec<u8>>);

impl MemoryState {
    /// Applies the writes of a successful call, as a committing caller would.
    pub fn apply(&mut self, writes: &[StateWrite]) {
        for write in writes {
            match &write.value {
                Some(value) => self.0.insert(write.key.clone(), value.clone()),
                None => self.0.remove(&write.key),
            };
        }
    }
}

#[async_trait::async_trait]
impl StateReader for MemoryState {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.0.get(key).cloned())
    }

    async fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let lower = match start_after {
            Some(after) if after >= prefix => Bound::Excluded(after.to_owned()),
            _ => Bound::Included(prefix.to_owned()),
        };
        Ok(self
            .0
            .range((lower, Bound::Unbounded))
            .take_while(|(key, _)| key.starts_with(prefix))
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }
}

/// One write a call made: a new value, or `None` for a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// The key.
    pub key: String,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// Committed state plus the call's own writes.
pub(crate) struct Overlay {
    reader: Arc<dyn StateReader>,
    writes: BTreeMap<String, Option<Vec<u8>>>,
    pub(crate) write_count: usize,
}

impl Overlay {
    pub(crate) fn new(reader: Arc<dyn StateReader>) -> Self {
        Overlay {
            reader,
            writes: BTreeMap::new(),
            write_count: 0,
        }
    }

    /// Takes the writes made so far, leaving an overlay with none over the same reader.
    pub(crate) fn take(&mut self) -> Overlay {
        let empty = Overlay::new(self.reader.clone());
        std::mem::replace(self, empty)
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.writes.get(key) {
            Some(written) => Ok(written.clone()),
            None => self.reader.get(key).await,
        }
    }

    pub(crate) fn put(&mut self, key: String, value: Option<Vec<u8>>) {
        self.write_count += 1;
        self.writes.insert(key, value);
    }

    /// Merges committed entries with the overlay, page by page, until `limit` live
    /// entries are found or the committed state is exhausted.
    pub(crate) async fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let mut found = Vec::new();
        let mut cursor = start_after.map(str::to_owned);
        while found.len() < limit {
            let page = self.reader.scan(prefix, cursor.as_deref(), limit).await?;
            let exhausted = page.len() < limit;
            let page_end = if exhausted {
                None
            } else {
                page.last().map(|(k, _)| k.clone())
            };

            let mut merged: BTreeMap<String, Vec<u8>> = page
                .into_iter()
                .filter(|(key, _)| !self.writes.contains_key(key))
                .collect();
            let lower = match &cursor {
                Some(after) if after.as_str() >= prefix => Bound::Excluded(after.clone()),
                _ => Bound::Included(prefix.to_owned()),
            };
            let upper = page_end.clone().map_or(Bound::Unbounded, Bound::Included);
            for (key, value) in self.writes.range((lower, upper)) {
                if !key.starts_with(prefix) {
                    break;
                }
                if let Some(value) = value {
                    merged.insert(key.clone(), value.clone());
                }
            }
            found.extend(merged.into_iter().take(limit - found.len()));
            match page_end {
                Some(end) if !exhausted => cursor = Some(end),
                _ => break,
            }
        }
        Ok(found)
    }

    pub(crate) fn into_writes(self) -> Vec<StateWrite> {
        self.writes
            .into_iter()
            .map(|(key, value)| StateWrite { key, value })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn committed(keys: &[&str]) -> Arc<dyn StateReader> {
        Arc::new(MemoryState(
            keys.iter()
                .map(|k| (k.to_string(), k.as_bytes().to_vec()))
                .collect(),
        ))
    }

    fn keys(entries: Vec<(String, Vec<u8>)>) -> Vec<String> {
        entries.into_iter().map(|(k, _)| k).collect()
    }

    #[tokio::test]
    async fn reads_see_the_calls_own_writes() {
        let mut overlay = Overlay::new(committed(&["a"]));
        overlay.put("a".into(), None);
        overlay.put("b".into(), Some(b"new".to_vec()));
        assert_eq!(overlay.get("a").await.unwrap(), None);
        assert_eq!(overlay.get("b").await.unwrap(), Some(b"new".to_vec()));
    }

    #[tokio::test]
    async fn scan_merges_pages_with_writes_and_deletes() {
        let mut overlay = Overlay::new(committed(&["p1", "p2", "p3", "p4", "q1"]));
        overlay.put("p2".into(), None);
        overlay.put("p25".into(), Some(b"x".to_vec()));
        overlay.put("p9".into(), Some(b"y".to_vec()));
        let all = overlay.scan("p", None, 100).await.unwrap();
        assert_eq!(keys(all), ["p1", "p25", "p3", "p4", "p9"]);
        // Small pages: deleted entries do not shorten a page, and paging resumes right.
        let first = overlay.scan("p", None, 2).await.unwrap();
        assert_eq!(keys(first), ["p1", "p25"]);
        let next = overlay.scan("p", Some("p25"), 2).await.unwrap();
        assert_eq!(keys(next), ["p3", "p4"]);
        let last = overlay.scan("p", Some("p4"), 2).await.unwrap();
        assert_eq!(keys(last), ["p9"]);
    }
}
