//! choreo's sandboxed WebAssembly host: compile handler components, check that they fit
//! the `choreo:handler` world, and run `describe`, `handle` and `query` in a fresh
//! instance per call under per-handler limits.
//!
//! This crate is the only one that knows wasmtime. It knows nothing of the broker: the
//! caller hands each call the handler's committed state through [`StateReader`] and
//! gets back what the call published and wrote ([`HandleOutcome`]), to commit
//! atomically with the delivery's outcome.
//!
//! One [`Host`] per process holds the engine (async, epoch interruption with a ticker,
//! pooling allocator) and the pre-built linker; each [`LoadedHandler`] keeps an
//! `InstancePre`, so a call costs an instantiation from the pool and the call itself.
//!
//! Layout:
//! - `engine`: [`Host`], [`PoolConfig`], the epoch ticker and the instance gate.
//! - `reset`: how a spent instance's memory is reset ([`MemoryReset`]), by what the kernel offers.
//! - `component`: compiling, precompiled artifacts, and the world check.
//! - `handler`: [`LoadedHandler`], loading (`describe`), `handle` and `query`.
//! - `call`: one call's store, sandbox, deadline and failure classification.
//! - `imports`: the host side of `emit`, `state`, `config` and `log`, one file each.
//! - `state`: [`StateReader`] and the per-call overlay of writes.
//! - `warm`: instances a handler keeps between deliveries, and the host taking them back.
//! - `output`: guest stdout/stderr into `tracing`.
//! - `info`: [`HandlerInfo`], the validated answer of `describe`.
//! - `limits`: [`Limits`] and their named defaults.
//! - `error`: [`Error`] for loading, [`CallError`] and [`Failure`] for calls.

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
mod bindings;
mod call;
mod component;
mod engine;
mod error;
mod handler;
mod imports;
mod info;
pub mod limits;
mod output;
mod reset;
mod state;
mod warm;

pub use call::SpentInstance;
pub use component::ACCEPTED_WORLD_VERSIONS;
pub use engine::{EPOCH_TICK, Host, PoolConfig};
pub use error::{CallError, Error, Failure, TrapKind};
pub use handler::{
    HANDLER_SOURCE_PREFIX, HandleOutcome, HandlerSettings, LoadedHandler, QueryRequest,
    QueryResponse,
};
pub use info::{HandlerInfo, TopicSchema};
pub use limits::Limits;
pub use output::GUEST_LOG_TARGET;
pub use reset::{MemoryReset, ResetMode};
pub use state::{MemoryState, StateReader, StateWrite, StoreError};
pub use warm::{IDLE_TTL, MAX_DELIVERIES_PER_INSTANCE};
pub use wasmtime::component::Component;
