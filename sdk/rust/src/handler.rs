//! The [`Handler`] trait, the [`Info`] builder for `describe`, and [`Exports`], the adapter
//! that [`export_handler!`](crate::export_handler) hands to the generated bindings.

use std::fmt;
use std::marker::PhantomData;

use crate::bindings::choreo::handler::types as wit;
use crate::{Error, Event, Request, Response};

/// An event handler. Implement it on a unit struct and export it with
/// [`export_handler!`](crate::export_handler).
///
/// Every call runs in a fresh instance of the component, so the type carries no state: the
/// methods are associated functions.
pub trait Handler {
    /// The handler's name, version, subscriptions and publish patterns.
    ///
    /// Called when the component is deployed; it must return the same answer every time.
    fn describe() -> Info;

    /// Handles one event. `Ok` acknowledges it; see [`Error`] for what a failure does.
    fn handle(event: Event) -> Result<(), Error>;

    /// Answers a read-side request (`GET|POST /v1/query/<handler>/<path>`) from state.
    /// Publishing and writing state are refused here.
    ///
    /// The default answers 404 to everything.
    fn query(request: Request) -> Response {
        let _ = request;
        Response::not_found()
    }
}

/// What a handler is and what it does: the answer of [`Handler::describe`].
///
/// ```
/// # use choreo_sdk::Info;
/// let info = Info::new("enricher", "1.0.0")
///     .description("Adds totals to new orders")
///     .subscribe("orders.created")
///     .publishes("orders.enriched")
///     .schema("orders.enriched", r#"{"type":"object"}"#);
/// assert_eq!(info.name(), "enricher");
/// ```
#[derive(Clone)]
pub struct Info {
    raw: wit::Info,
}

impl Info {
    /// A handler called `name` (lower-case letters, digits and `-`, starting with a letter)
    /// at `version`, with no subscriptions and no publish patterns yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            raw: wit::Info {
                name: name.into(),
                version: version.into(),
                description: String::new(),
                subscriptions: Vec::new(),
                publishes: Vec::new(),
                schemas: Vec::new(),
            },
        }
    }

    /// One line for the catalog.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.raw.description = description.into();
        self
    }

    /// Receive events whose topic matches `pattern` (`*` one token, `>` one or more).
    pub fn subscribe(mut self, pattern: impl Into<String>) -> Self {
        self.raw.subscriptions.push(pattern.into());
        self
    }

    /// Allow publishing to topics that match `pattern`; any other publish is refused.
    pub fn publishes(mut self, pattern: impl Into<String>) -> Self {
        self.raw.publishes.push(pattern.into());
        self
    }

    /// Declare the JSON Schema (as JSON text) of the data on `topic` (consumed or published).
    pub fn schema(mut self, topic: impl Into<String>, schema: impl Into<String>) -> Self {
        self.raw.schemas.push(wit::TopicSchema {
            topic: topic.into(),
            schema: schema.into(),
        });
        self
    }

    /// The handler's name.
    pub fn name(&self) -> &str {
        &self.raw.name
    }

    /// The handler's version.
    pub fn version(&self) -> &str {
        &self.raw.version
    }

    /// The subscription patterns, in the order given.
    pub fn subscriptions(&self) -> &[String] {
        &self.raw.subscriptions
    }

    /// The publish patterns, in the order given.
    pub fn publish_patterns(&self) -> &[String] {
        &self.raw.publishes
    }

    /// The WIT record handed to choreo.
    pub fn into_raw(self) -> wit::Info {
        self.raw
    }
}

impl fmt::Debug for Info {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

/// Implements the generated `Guest` trait for any [`Handler`]; used by
/// [`export_handler!`](crate::export_handler) only.
pub struct Exports<H>(PhantomData<H>);

impl<H> fmt::Debug for Exports<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Exports")
    }
}

impl<H: Handler> crate::bindings::Guest for Exports<H> {
    fn describe() -> wit::Info {
        H::describe().into_raw()
    }

    fn handle(event: wit::Event) -> Result<(), wit::HandleError> {
        H::handle(Event::from(event)).map_err(wit::HandleError::from)
    }

    fn query(request: wit::Request) -> wit::Response {
        H::query(Request::from(request)).into_raw()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_builder_collects_everything_in_order() {
        let raw = Info::new("router", "2.1.0")
            .description("fans out")
            .subscribe("orders.enriched")
            .subscribe("orders.manual")
            .publishes("orders.routed.*")
            .publishes("orders.review.>")
            .schema("orders.enriched", "{}")
            .into_raw();
        assert_eq!(raw.name, "router");
        assert_eq!(raw.version, "2.1.0");
        assert_eq!(raw.description, "fans out");
        assert_eq!(raw.subscriptions, ["orders.enriched", "orders.manual"]);
        assert_eq!(raw.publishes, ["orders.routed.*", "orders.review.>"]);
        assert_eq!(raw.schemas.len(), 1);
        assert_eq!(raw.schemas[0].topic, "orders.enriched");
        assert_eq!(raw.schemas[0].schema, "{}");
    }

    struct Silent;

    impl Handler for Silent {
        fn describe() -> Info {
            Info::new("silent", "0.1.0")
        }

        fn handle(_event: Event) -> Result<(), Error> {
            Err(Error::retry("later"))
        }
    }

    #[test]
    fn adapter_maps_errors_and_defaults_query_to_404() {
        use crate::bindings::Guest;

        let result = <Exports<Silent> as Guest>::handle(Event::new("a.b", "x").into_raw());
        assert!(matches!(result, Err(wit::HandleError::Retry(m)) if m == "later"));

        let response = <Exports<Silent> as Guest>::query(Request::new("GET", "/x").into_raw());
        assert_eq!(response.status, 404);
    }
}
