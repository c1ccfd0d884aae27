//! One call into a guest: its store, its sandbox, its deadline, and how its failure is
//! classified.
//!
//! By default every call gets a fresh store and instance: nothing a guest leaves in
//! memory can leak into the next event, and a guest that corrupts itself only loses that
//! call. The pooling allocator and the pre-linked `InstancePre` make this a few
//! microseconds for a compiled guest; a handler may instead keep its instance between
//! deliveries (`warm.rs`), and then a kept store is reset here for each call.
//! The store data ([`CallState`]) holds the WASI context (which grants nothing), the
//! limiter, and what the call produced (publishes, state writes).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use choreo_core::{Event, EventId, Pattern, Topic};
use tokio::sync::OwnedSemaphorePermit;
use wasmtime::component::ResourceTable;
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::bindings::Handler;
use crate::engine::{EPOCH_TICK, Host};
use crate::error::{Failure, TrapKind};
use crate::limits::{Limiter, Limits};
use crate::output::{GuestOutput, Origin};
use crate::state::Overlay;
use crate::warm::{Warm, WarmInstances};

/// What a call may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `describe` at load time: read-only, no state.
    Describe,
    /// `handle`: may publish and write state.
    Handle,
    /// `query`: reads state, publishes and writes nothing.
    Query,
}

impl Mode {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Describe => "describe",
            Mode::Handle => "handle",
            Mode::Query => "query",
        }
    }
}

/// What `emit.publish` needs to stamp and check an outgoing event.
#[derive(Debug)]
pub(crate) struct PublishScope {
    pub(crate) declared: Arc<[Pattern]>,
    pub(crate) source: Arc<str>,
    pub(crate) correlation_id: EventId,
    pub(crate) causation_id: EventId,
    pub(crate) reply_to: Option<Topic>,
}

/// The store data of one call.
pub(crate) struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: Limiter,
    /// The call's inputs, as the caller set them up.
    pub(crate) setup: CallSetup,
    pub(crate) published: Vec<Event>,
    deadline: Instant,
    deadline_hit: bool,
    outputs: (GuestOutput, GuestOutput),
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The inputs of one call, before its store exists.
pub(crate) struct CallSetup {
    pub(crate) handler: Arc<str>,
    pub(crate) event_id: Option<String>,
    pub(crate) mode: Mode,
    pub(crate) limits: Arc<Limits>,
    pub(crate) config: Arc<BTreeMap<String, String>>,
    pub(crate) scope: Option<PublishScope>,
    pub(crate) state: Overlay,
}

/// What a finished call leaves behind, whatever its result.
pub(crate) struct CallLeftovers {
    pub(crate) published: Vec<Event>,
    pub(crate) state: Overlay,
    pub(crate) elapsed: Duration,
    /// The call's instance, unless its handler kept it for the next call.
    pub(crate) spent: Option<SpentInstance>,
}

/// An instance whose call has ended, with its pool slot. Dropping it returns the
/// instance's memory to the pool (its touched pages are reset: a few microseconds), and
/// then frees the slot for the next call.
///
/// Decision: the caller drops it, after acting on the call's result, rather than the
/// host spawning a task to drop it. The result need not wait for the reset either way,
/// but a task per call cost a spawn and, on an idle runtime, waking a parked thread: a
/// fresh-instance delivery took 19 or 42 µs (`cargo bench -p choreo-host`), by whether
/// that task found a thread awake.
pub struct SpentInstance {
    // Field order is drop order: the store (and its pool slot) goes before the permit
    // that lets the next caller take that slot.
    _store: Store<CallState>,
    _slot: OwnedSemaphorePermit,
}

impl std::fmt::Debug for SpentInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SpentInstance")
    }
}

/// Extra time past the deadline before the host stops waiting on a call that is stuck
/// in a host import rather than in guest code (guest code is stopped by the epoch).
const DEADLINE_GRACE: Duration = Duration::from_millis(50);

/// Runs `body` under the call's limits, against an idle instance from `warm` when
/// the handler keeps them (`warm.rs`), else against a fresh instance of `pre`. A
/// call that ends without a failure puts its instance back into `warm`.
pub(crate) async fn run<R>(
    host: &Host,
    pre: &crate::bindings::HandlerPre<CallState>,
    warm: Option<&WarmInstances>,
    setup: CallSetup,
    body: impl AsyncFnOnce(&Handler, &mut Store<CallState>) -> wasmtime::Result<R>,
) -> (Result<R, Failure>, CallLeftovers) {
    let started = Instant::now();
    let deadline = setup.limits.deadline;
    let (mut store, reused, slot, served) = match warm.and_then(WarmInstances::take) {
        Some(warm) => {
            let mut store = warm.store;
            store.data_mut().restart(setup, started + deadline);
            (store, Some(warm.instance), warm.slot, warm.served)
        }
        None => {
            let slot = host.acquire_slot().await;
            (new_store(host, setup, started + deadline), None, slot, 0)
        }
    };

    let outcome = tokio::time::timeout(deadline + DEADLINE_GRACE, async {
        let instance = match reused {
            Some(instance) => instance,
            None => pre.instantiate_async(&mut store).await?,
        };
        let value = body(&instance, &mut store).await?;
        Ok::<_, wasmtime::Error>((instance, value))
    })
    .await;

    let (result, intact) = match outcome {
        Ok(Ok((instance, value))) => (Ok(value), Some(instance)),
        Ok(Err(err)) => (Err(classify(&err, store.data(), deadline)), None),
        Err(_elapsed) => (Err(Failure::deadline(deadline)), None),
    };
    let mut leftovers = store.data_mut().finish(started);
    // A refused memory grow the guest survived still leaves it in a state nobody chose.
    let healthy = store.data().limiter.memory_refused.is_none();
    if let (Some(warm), Some(instance), true) = (warm, intact, healthy) {
        warm.put(Warm::new(store, instance, slot, served + 1));
    } else {
        leftovers.spent = Some(SpentInstance {
            _store: store,
            _slot: slot,
        });
    }
    (result, leftovers)
}

impl CallState {
    /// Makes a kept instance's store ready for the next call: the new inputs, deadline
    /// and output budget; nothing of the previous call's outputs.
    fn restart(&mut self, setup: CallSetup, deadline: Instant) {
        let origin = Origin {
            handler: setup.handler.clone(),
            event_id: setup.event_id.as_deref().map(Arc::from),
        };
        GuestOutput::restart_pair(&self.outputs, origin, setup.limits.max_output_bytes);
        self.limiter = Limiter::new(&setup.limits);
        self.setup = setup;
        self.published.clear();
        self.deadline = deadline;
        self.deadline_hit = false;
    }

    /// Takes what the call produced, and logs a last unterminated output line.
    fn finish(&mut self, started: Instant) -> CallLeftovers {
        self.outputs.0.finish();
        self.outputs.1.finish();
        CallLeftovers {
            published: std::mem::take(&mut self.published),
            state: self.setup.state.take(),
            elapsed: started.elapsed(),
            spent: None,
        }
    }
}

fn new_store(host: &Host, setup: CallSetup, deadline: Instant) -> Store<CallState> {
    let origin = Origin {
        handler: setup.handler.clone(),
        event_id: setup.event_id.as_deref().map(Arc::from),
    };
    let outputs = GuestOutput::pair(
        origin,
        setup.limits.max_log_line_bytes,
        setup.limits.max_output_bytes,
    );
    // Nothing is granted: no preopened directories, no environment, no arguments, no
    // network, no name lookups, empty stdin. Clocks and randomness stay, because language
    // runtimes need them to start.
    let wasi = WasiCtxBuilder::new()
        .stdout(outputs.0.clone())
        .stderr(outputs.1.clone())
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = CallState {
        wasi,
        table: ResourceTable::new(),
        limiter: Limiter::new(&setup.limits),
        setup,
        published: Vec::new(),
        deadline,
        deadline_hit: false,
        outputs,
    };
    let mut store = Store::new(&host.inner.engine, state);
    store.limiter(|state| &mut state.limiter);
    // Check the wall clock at every epoch tick: trap once the deadline has passed, and
    // otherwise yield to the executor so a busy guest shares its thread.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut cx| {
        let state = cx.data_mut();
        if Instant::now() >= state.deadline {
            state.deadline_hit = true;
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// Turns a wasmtime error into a failure that names the limit or reason.
fn classify(err: &wasmtime::Error, state: &CallState, deadline: Duration) -> Failure {
    if state.deadline_hit || matches!(err.downcast_ref::<Trap>(), Some(Trap::Interrupt)) {
        return Failure::deadline(deadline);
    }
    if let Some(desired) = state.limiter.memory_refused {
        return Failure::Trap {
            kind: TrapKind::Memory,
            detail: format!(
                "tried to grow its memory to {} MiB, past its limit of {} MiB",
                desired >> 20,
                state.setup.limits.max_memory_bytes >> 20
            ),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::StackOverflow) => Failure::Trap {
            kind: TrapKind::StackOverflow,
            detail: "overflowed its stack (unbounded recursion?)".to_owned(),
        },
        Some(Trap::UnreachableCodeReached) => Failure::Trap {
            kind: TrapKind::Unreachable,
            detail: "executed `unreachable` (a panic or abort in the guest)".to_owned(),
        },
        Some(trap) => Failure::Trap {
            kind: TrapKind::Other,
            detail: trap.to_string(),
        },
        None => Failure::Host(format!("{err:#}")),
    }
}

/// Keeps EPOCH_TICK in the docs of this module's deadline behaviour honest.
const _: () = assert!(EPOCH_TICK.as_millis() < DEADLINE_GRACE.as_millis());
