//! `choreo:handler/state`: the handler's own key-value store.
//!
//! Reads go through the call's overlay (committed state plus the call's writes); writes
//! are only possible in `handle` and are buffered for the caller to commit with the
//! delivery. Keys and values are bounded; a failing store traps the call (the delivery
//! is retried) because the guest is not at fault.

use crate::bindings::choreo::handler::state::{Host, StateError};
use crate::call::{CallState, Mode};
use crate::limits::{MAX_SCAN_ENTRIES, MAX_STATE_KEY_BYTES};

type Entries = Vec<(String, Vec<u8>)>;

impl Host for CallState {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, StateError>> {
        if let Err(err) = check_key(&key) {
            return Ok(Err(err));
        }
        Ok(Ok(self.setup.state.get(&key).await?))
    }

    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), StateError>> {
        if let Err(err) = self.check_write(&key) {
            return Ok(Err(err));
        }
        if value.len() > self.setup.limits.max_state_value_bytes {
            return Ok(Err(StateError::TooLarge(format!(
                "value for `{}` is {} bytes, past the handler's limit of {} (max_state_value_bytes)",
                short(&key),
                value.len(),
                self.setup.limits.max_state_value_bytes
            ))));
        }
        self.setup.state.put(key, Some(value));
        Ok(Ok(()))
    }

    async fn delete(&mut self, key: String) -> wasmtime::Result<Result<(), StateError>> {
        if let Err(err) = self.check_write(&key) {
            return Ok(Err(err));
        }
        self.setup.state.put(key, None);
        Ok(Ok(()))
    }

    async fn scan(
        &mut self,
        prefix: String,
        start_after: Option<String>,
        limit: u32,
    ) -> wasmtime::Result<Result<Entries, StateError>> {
        let limit = limit.min(MAX_SCAN_ENTRIES) as usize;
        Ok(Ok(self
            .setup
            .state
            .scan(&prefix, start_after.as_deref(), limit)
            .await?))
    }
}

impl CallState {
    fn check_write(&self, key: &str) -> Result<(), StateError> {
        if self.setup.mode != Mode::Handle {
            return Err(StateError::ReadOnly(format!(
                "state is read-only during {}; only handle may write",
                self.setup.mode.name()
            )));
        }
        check_key(key)?;
        if self.setup.state.write_count >= self.setup.limits.max_state_writes {
            return Err(StateError::TooLarge(format!(
                "this call already made {} state writes, the handler's limit (max_state_writes)",
                self.setup.limits.max_state_writes
            )));
        }
        Ok(())
    }
}

fn check_key(key: &str) -> Result<(), StateError> {
    if key.is_empty() {
        return Err(StateError::InvalidKey(
            "state keys must not be empty".to_owned(),
        ));
    }
    if key.len() > MAX_STATE_KEY_BYTES {
        return Err(StateError::InvalidKey(format!(
            "state key `{}` is {} bytes, past the limit of {MAX_STATE_KEY_BYTES}",
            short(key),
            key.len()
        )));
    }
    Ok(())
}

fn short(key: &str) -> &str {
    match key.char_indices().nth(40) {
        Some((cut, _)) => &key[..cut],
        None => key,
    }
}
