//! The host's view of a handler's committed state, served from the broker.

use std::sync::Arc;

use choreo_broker::{Broker, StateView};
use choreo_core::HandlerName;
use choreo_host::{StateReader, StoreError};

/// Reads one handler's keyspace in the broker. Writes never go through here: they come
/// back from the call and are committed with the delivery's outcome.
#[derive(Debug, Clone)]
pub struct BrokerState {
    broker: Arc<dyn Broker>,
    handler: HandlerName,
    view: StateView,
}

impl BrokerState {
    /// The state of `handler` in `broker`, as `view` sees it: [`StateView::Latest`] for
    /// deliveries, [`StateView::Durable`] for everyone else.
    pub fn new(broker: Arc<dyn Broker>, handler: HandlerName, view: StateView) -> Self {
        BrokerState {
            broker,
            handler,
            view,
        }
    }
}

#[async_trait::async_trait]
impl StateReader for BrokerState {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.broker
            .state_get(&self.handler, key.as_bytes(), self.view)
            .await
            .map_err(|err| StoreError(err.to_string()))
    }

    async fn scan(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let entries = self
            .broker
            .state_scan(
                &self.handler,
                self.view,
                prefix.as_bytes(),
                start_after.map(str::as_bytes),
                limit,
            )
            .await
            .map_err(|err| StoreError(err.to_string()))?;
        // Keys are written by guests through a `string` interface, so they are UTF-8.
        Ok(entries
            .into_iter()
            .map(|(key, value)| (String::from_utf8_lossy(&key).into_owned(), value))
            .collect())
    }
}
