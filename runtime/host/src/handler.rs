//! A loaded handler: a linked component, what it said about itself, and its limits; and
//! the two calls the rest of choreo makes on it, `handle` and `query`.
//!
//! Loading checks the world, then calls `describe` under the handler's limits (a
//! describe that loops or traps is refused like any other broken component) and
//! validates the answer. A [`LoadedHandler`] is cheap to clone and safe to share: each
//! call instantiates afresh from the same `InstancePre`, or takes an instance the
//! handler kept from an earlier delivery (`warm.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use choreo_core::{Event, Pattern, RecordedEvent};
use wasmtime::component::Component;

use crate::bindings::choreo::handler::types as wit;
use crate::bindings::{HandleError, HandlerPre};
use crate::call::{self, CallSetup, CallState, Mode, PublishScope, SpentInstance};
use crate::error::{CallError, Failure};
use crate::info::HandlerInfo;
use crate::limits::Limits;
use crate::state::{MemoryState, Overlay, StateReader, StateWrite};
use crate::warm::{MAX_DELIVERIES_PER_INSTANCE, WarmInstances};
use crate::{Error, Host};

/// What the deployer knows about a handler before loading it: its limits, the
/// `[config]` values of its manifest, and how long an instance lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerSettings {
    /// Limits for every call, `describe` included.
    pub limits: Limits,
    /// Values the guest reads through the `config` import.
    pub config: BTreeMap<String, String>,
    /// Deliveries one instance serves, one after the other, before it is replaced: 1
    /// (the default) is a fresh instance per delivery; more keeps the instance warm
    /// between deliveries, at most [`crate::MAX_DELIVERIES_PER_INSTANCE`]. A kept
    /// instance is dropped after any failure; see the `warm` module for the rules.
    pub deliveries_per_instance: u32,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        HandlerSettings {
            limits: Limits::default(),
            config: BTreeMap::new(),
            deliveries_per_instance: 1,
        }
    }
}

/// The `source` of every event a handler publishes is this prefix followed by the
/// handler's name, so a trace can tell which handler produced an event.
pub const HANDLER_SOURCE_PREFIX: &str = "choreo://handler/";

/// A handler ready to be called.
#[derive(Clone)]
pub struct LoadedHandler {
    host: Host,
    pre: HandlerPre<CallState>,
    info: Arc<HandlerInfo>,
    limits: Arc<Limits>,
    config: Arc<BTreeMap<String, String>>,
    declared: Arc<[Pattern]>,
    label: Arc<str>,
    source: Arc<str>,
    /// Idle instances kept between deliveries; `None` for a fresh one each time.
    warm: Option<Arc<WarmInstances>>,
}

impl std::fmt::Debug for LoadedHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedHandler")
            .field("info", &self.info)
            .field("limits", &self.limits)
            .finish()
    }
}

/// The result of one `handle` call. On failure, `publishes` and `state_writes` are
/// empty: nothing the call did may be kept.
#[derive(Debug)]
pub struct HandleOutcome {
    /// `Ok` acknowledges the event.
    pub result: Result<(), CallError>,
    /// Events to commit with the ack, in publish order.
    pub publishes: Vec<Event>,
    /// State writes to commit with the ack, in key order.
    pub state_writes: Vec<StateWrite>,
    /// Wall-clock time of the call, instantiation included.
    pub elapsed: Duration,
    /// The call's instance, unless the handler kept it for its next delivery. Drop it
    /// once the result is acted on: returning it to the pool takes a few microseconds
    /// that the result need not wait for.
    pub spent: Option<SpentInstance>,
}

/// A read-side request for `query`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryRequest {
    /// `GET` or `POST`.
    pub method: String,
    /// The path after `/v1/query/<handler>`, starting with `/`.
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    /// Request headers, lower-case names.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// The guest's answer to a [`QueryRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Host {
    /// Links `component`, calls its `describe` under `settings.limits`, and validates
    /// the answer. `source_name` (usually the file path) is used in errors and logs.
    pub async fn load(
        &self,
        source_name: &str,
        component: &Component,
        settings: HandlerSettings,
    ) -> Result<LoadedHandler, Error> {
        let pool = &self.inner.pool;
        let ceilings = [
            (
                "max_memory_bytes",
                settings.limits.max_memory_bytes,
                pool.max_memory_bytes,
            ),
            (
                "max_table_elements",
                settings.limits.max_table_elements,
                pool.max_table_elements,
            ),
            (
                "max_core_instances",
                settings.limits.max_core_instances,
                pool.max_core_instances_per_component as usize,
            ),
        ];
        let pre = self.link(source_name, component)?;
        let limits = Arc::new(settings.limits);
        let config = Arc::new(settings.config);
        let label: Arc<str> = Arc::from(source_name);
        let setup = CallSetup {
            handler: label.clone(),
            event_id: None,
            mode: Mode::Describe,
            limits: limits.clone(),
            config: config.clone(),
            scope: None,
            state: Overlay::new(Arc::new(MemoryState::default())),
        };
        let (raw, _) = call::run(self, &pre, None, setup, async |instance, store| {
            instance.call_describe(store).await
        })
        .await;
        let raw = raw.map_err(|reason| Error::DescribeFailed {
            source_name: source_name.to_owned(),
            reason,
        })?;
        let info = HandlerInfo::validate(raw).map_err(|invalid| Error::InvalidDescribe {
            source_name: source_name.to_owned(),
            field: invalid.field,
            reason: invalid.reason,
        })?;
        let per_instance = settings.deliveries_per_instance;
        if per_instance > MAX_DELIVERIES_PER_INSTANCE {
            return Err(Error::LimitAboveCeiling {
                handler: info.name.clone(),
                limit: "deliveries_per_instance",
                requested: per_instance as usize,
                ceiling: MAX_DELIVERIES_PER_INSTANCE as usize,
            });
        }
        for (limit, requested, ceiling) in ceilings {
            if requested > ceiling {
                return Err(Error::LimitAboveCeiling {
                    handler: info.name.clone(),
                    limit,
                    requested,
                    ceiling,
                });
            }
        }
        tracing::info!(handler = %info.name, version = %info.version, source = source_name, "handler loaded");
        let warm = (per_instance > 1).then(|| {
            let warm = Arc::new(WarmInstances::new(per_instance));
            self.inner.warm.register(&warm);
            warm
        });
        Ok(LoadedHandler {
            host: self.clone(),
            pre,
            declared: info.publishes.clone().into(),
            label: Arc::from(info.name.as_str()),
            source: Arc::from(format!("{HANDLER_SOURCE_PREFIX}{}", info.name)),
            info: Arc::new(info),
            limits,
            config,
            warm,
        })
    }
}

impl LoadedHandler {
    /// What the handler said about itself.
    pub fn info(&self) -> &HandlerInfo {
        &self.info
    }

    /// The limits its calls run under.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `handle` on `event`, in a fresh instance or a kept one
    /// ([`HandlerSettings::deliveries_per_instance`]). `attempt` counts from 1; `state`
    /// is the handler's committed keyspace.
    pub async fn handle(
        &self,
        event: &RecordedEvent,
        attempt: u32,
        state: Arc<dyn StateReader>,
    ) -> HandleOutcome {
        let event_id = event.event.id.to_string();
        let fail = |failure, elapsed, spent| HandleOutcome {
            result: Err(self.error(Some(event_id.clone()), failure)),
            publishes: Vec::new(),
            state_writes: Vec::new(),
            elapsed,
            spent,
        };
        let size = event.event.size();
        if size > self.limits.max_event_bytes {
            let reason = format!(
                "event is {size} bytes, past the handler's limit of {} (max_event_bytes)",
                self.limits.max_event_bytes
            );
            return fail(Failure::Refused(reason), Duration::ZERO, None);
        }
        let setup = CallSetup {
            handler: self.label.clone(),
            event_id: Some(event_id.clone()),
            mode: Mode::Handle,
            limits: self.limits.clone(),
            config: self.config.clone(),
            scope: Some(PublishScope {
                declared: self.declared.clone(),
                source: self.source.clone(),
                correlation_id: event.event.correlation_id.clone(),
                causation_id: event.event.id.clone(),
                reply_to: event.event.reply_to.clone(),
            }),
            state: Overlay::new(state),
        };
        let wit_event = to_wit(event, attempt);
        let (result, leftovers) = call::run(
            &self.host,
            &self.pre,
            self.warm.as_deref(),
            setup,
            async |instance, store| instance.call_handle(store, &wit_event).await,
        )
        .await;
        let (elapsed, spent) = (leftovers.elapsed, leftovers.spent);
        match result {
            Ok(Ok(())) => HandleOutcome {
                result: Ok(()),
                publishes: leftovers.published,
                state_writes: leftovers.state.into_writes(),
                elapsed,
                spent,
            },
            Ok(Err(HandleError::Retry(reason))) => fail(Failure::Retry(reason), elapsed, spent),
            Ok(Err(HandleError::Reject(reason))) => fail(Failure::Reject(reason), elapsed, spent),
            Err(failure) => fail(failure, elapsed, spent),
        }
    }

    /// Runs `query` read-only against the handler's committed state.
    pub async fn query(
        &self,
        request: &QueryRequest,
        state: Arc<dyn StateReader>,
    ) -> Result<QueryResponse, CallError> {
        let setup = CallSetup {
            handler: self.label.clone(),
            event_id: None,
            mode: Mode::Query,
            limits: self.limits.clone(),
            config: self.config.clone(),
            scope: None,
            state: Overlay::new(state),
        };
        let wit_request = wit::Request {
            method: request.method.clone(),
            path: request.path.clone(),
            query: request.query.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        };
        let (result, _) = call::run(
            &self.host,
            &self.pre,
            None,
            setup,
            async |instance, store| instance.call_query(store, &wit_request).await,
        )
        .await;
        let response = result.map_err(|failure| self.error(None, failure))?;
        Ok(QueryResponse {
            status: response.status,
            headers: response.headers,
            body: response.body,
        })
    }

    fn error(&self, event_id: Option<String>, failure: Failure) -> CallError {
        CallError {
            handler: self.info.name.clone(),
            event_id,
            failure,
        }
    }
}

fn to_wit(recorded: &RecordedEvent, attempt: u32) -> wit::Event {
    let event = &recorded.event;
    wit::Event {
        id: event.id.to_string(),
        source: event.source.clone(),
        type_: event.ty.clone(),
        topic: event.topic.to_string(),
        time: event.time.to_string(),
        datacontenttype: event.datacontenttype.clone(),
        subject: event.subject.clone(),
        data: event.data.clone(),
        seq: recorded.seq,
        key: event.key.clone(),
        correlationid: event.correlation_id.to_string(),
        causationid: event.causation_id.as_ref().map(ToString::to_string),
        replyto: event.reply_to.as_ref().map(ToString::to_string),
        attempt,
        extensions: event
            .extensions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}
