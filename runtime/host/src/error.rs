//! Errors of the host: loading a component, and the ways a call can fail.
//!
//! Loading errors ([`Error`]) say what is wrong with a component so its author can fix
//! it. Call failures ([`CallError`]) name the handler, the event and the limit or reason,
//! and say whether the delivery should be retried.

use std::fmt;
use std::time::Duration;

use choreo_core::HandlerName;

/// Why a component could not be compiled, checked or loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The engine could not be configured (pool sizes the OS refuses, and the like).
    #[error("cannot configure the wasm engine: {0:#}")]
    Engine(wasmtime::Error),
    /// The bytes are a core module, not a component.
    #[error(
        "{source_name} is a core WebAssembly module, not a component: build it for the \
         wasm32-wasip2 target, or wrap it with `wasm-tools component new`"
    )]
    CoreModule {
        /// Where the bytes came from (a path or a name).
        source_name: String,
    },
    /// The bytes are not WebAssembly at all, or Cranelift refused them.
    #[error("{source_name} does not compile as a WebAssembly component: {reason:#}")]
    Compile {
        /// Where the bytes came from.
        source_name: String,
        /// What the compiler said.
        reason: wasmtime::Error,
    },
    /// A precompiled artifact could not be loaded (made by another wasmtime or config).
    #[error("precompiled artifact {source_name} cannot be loaded: {reason:#}")]
    Artifact {
        /// Where the bytes came from.
        source_name: String,
        /// What wasmtime said.
        reason: wasmtime::Error,
    },
    /// The component does not target the `choreo:handler` world this host accepts.
    #[error("{source_name} does not fit the choreo:handler@0.1 world: {problems}")]
    WrongWorld {
        /// Where the bytes came from.
        source_name: String,
        /// Every problem found, separated by `; `.
        problems: String,
    },
    /// `describe` failed, trapped or ran past its deadline.
    #[error("{source_name}: calling describe failed: {reason}")]
    DescribeFailed {
        /// Where the bytes came from.
        source_name: String,
        /// The failure.
        reason: Failure,
    },
    /// `describe` returned something invalid.
    #[error("{source_name}: describe returned an invalid {field}: {reason}")]
    InvalidDescribe {
        /// Where the bytes came from.
        source_name: String,
        /// Which field of `info` is wrong (e.g. `subscription "orders..x"`).
        field: String,
        /// Why.
        reason: String,
    },
    /// A handler's limits exceed what the engine's pool can give any instance.
    #[error(
        "handler `{handler}`: {limit} of {requested} exceeds the engine's ceiling of {ceiling}"
    )]
    LimitAboveCeiling {
        /// The handler.
        handler: HandlerName,
        /// The limit's name.
        limit: &'static str,
        /// What the handler asked for.
        requested: usize,
        /// What the engine allows.
        ceiling: usize,
    },
}

/// How a guest trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrapKind {
    /// It ran past its wall-clock deadline.
    Deadline,
    /// It tried to grow its memory past its limit.
    Memory,
    /// It overflowed its stack.
    StackOverflow,
    /// It executed `unreachable` (Rust panics end here).
    Unreachable,
    /// Any other trap (out-of-bounds access, division by zero, ...).
    Other,
}

impl TrapKind {
    /// A short label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            TrapKind::Deadline => "deadline",
            TrapKind::Memory => "memory",
            TrapKind::StackOverflow => "stack_overflow",
            TrapKind::Unreachable => "unreachable",
            TrapKind::Other => "other",
        }
    }
}

/// Why one call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The handler returned `retry(reason)`.
    Retry(String),
    /// The handler returned `reject(reason)`.
    Reject(String),
    /// The guest trapped; `detail` says which limit or what happened.
    Trap {
        /// The kind of trap.
        kind: TrapKind,
        /// A sentence for the operator.
        detail: String,
    },
    /// The event was refused before the guest ran (e.g. larger than the handler's limit).
    Refused(String),
    /// The host could not run the call (instance pool exhausted, state store failed).
    Host(String),
}

impl Failure {
    /// Whether the delivery should be tried again: everything but `reject` and an event
    /// the handler can never accept.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Failure::Reject(_) | Failure::Refused(_))
    }

    /// The trap kind, if this failure is a trap.
    pub fn trap_kind(&self) -> Option<TrapKind> {
        match self {
            Failure::Trap { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    pub(crate) fn deadline(deadline: Duration) -> Self {
        Failure::Trap {
            kind: TrapKind::Deadline,
            detail: format!("ran past its deadline of {deadline:?}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retry(reason) => write!(f, "asked to retry: {reason}"),
            Failure::Reject(reason) => write!(f, "rejected the event: {reason}"),
            Failure::Trap { detail, .. } => write!(f, "trapped: {detail}"),
            Failure::Refused(reason) => write!(f, "event refused: {reason}"),
            Failure::Host(reason) => write!(f, "host error: {reason}"),
        }
    }
}

/// A failed call: which handler, which event, what happened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("handler `{handler}`{}: {failure}", event_id.as_ref().map(|id| format!(" on event {id}")).unwrap_or_default())]
pub struct CallError {
    /// The handler that was called.
    pub handler: HandlerName,
    /// The event it was handling, for `handle` calls.
    pub event_id: Option<String>,
    /// What happened.
    pub failure: Failure,
}
