//! Write choreo event handlers in Rust.
//!
//! A handler is a WebAssembly component that targets the world `handler` of the WIT package
//! `choreo:handler@0.1.0` (`wit/handler.wit` in the choreo repository). This crate generates
//! the bindings for that world once and puts a small, typed API in front of them: implement
//! [`Handler`] for a type, export it with [`export_handler!`], and build the crate as a
//! `cdylib` with `cargo build --target wasm32-wasip2`: rustc links the component directly.
//!
//! The crate keeps no state of its own: every call of a handler runs in a fresh instance, so
//! anything that must outlive one event goes through [`state`].
//!
//! ```no_run
//! use choreo_sdk::{Error, Event, Handler, Info, Outgoing, publish, state};
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, Serialize)]
//! struct Order { id: String, total_cents: u64 }
//!
//! struct Auditor;
//!
//! impl Handler for Auditor {
//!     fn describe() -> Info {
//!         Info::new("auditor", "1.0.0")
//!             .description("Flags large orders and counts them")
//!             .subscribe("orders.enriched")
//!             .publishes("orders.flagged")
//!     }
//!
//!     fn handle(event: Event) -> Result<(), Error> {
//!         let order: Order = event.json()?; // malformed data: dead-letter the event
//!         if order.total_cents >= 100_000 {
//!             let flagged: u64 = state::get("flagged")?.unwrap_or(0);
//!             state::set("flagged", &(flagged + 1))?;
//!             publish(Outgoing::json("orders.flagged", &order)?.key(&order.id))?;
//!         }
//!         Ok(())
//!     }
//! }
//!
//! choreo_sdk::export_handler!(Auditor);
//! ```
//!
//! `query` is optional: the default answers 404. See [`Request`] and [`Response`] for a read
//! side, and [`Error`] for how failures map to retries and dead-letters.
//!
//! Off `wasm32` the crate still compiles (the bindings become stubs), so the pure parts of a
//! handler can be unit-tested natively; calling a host import there panics.
//!
//! Layout:
//! - `handler`: the [`Handler`] trait, the [`Info`] builder and the glue behind
//!   [`export_handler!`].
//! - `event`: [`Event`], the delivered event, with typed accessors and decoding.
//! - `emit`: [`Outgoing`], [`publish`], [`publish_json`], [`reply`], [`reply_json`].
//! - [`state`]: the handler's durable key-value store, JSON or raw bytes.
//! - [`config`] and [`log`]: manifest values and choreo's log.
//! - `error`: [`Error`], the outcome of a failed `handle`, and the conversions behind `?`.
//! - `query`: [`Request`] and [`Response`] for the read side.
//! - [`bindings`]: the generated WIT bindings, for what the typed API does not cover.

mod emit;
mod error;
mod event;
mod handler;
mod query;

pub mod config;
pub mod log;
pub mod state;

pub use emit::{Outgoing, PublishError, publish, publish_json, reply, reply_json};
pub use error::{Error, ErrorKind};
pub use event::Event;
pub use handler::{Handler, Info};
pub use query::{Request, Response};
pub use state::StateError;

/// The bindings `wit-bindgen` generates for the world `handler`, unchanged.
///
/// The typed API covers the whole world; these are here for what it does not anticipate.
/// [`bindings::export_raw!`](crate::bindings::export_raw) exports a type that implements
/// [`bindings::Guest`] directly, bypassing [`Handler`].
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "handler",
        path: "../../wit",
        // The export macro is used from handler crates, so it must be `#[macro_export]`ed
        // and name this module by its absolute path.
        pub_export_macro: true,
        default_bindings_module: "choreo_sdk::bindings",
        export_macro_name: "export_raw",
    });
}

/// Exports a type that implements [`Handler`] as the handler component.
///
/// Use it exactly once per component, at the crate root or anywhere else:
///
/// ```no_run
/// # use choreo_sdk::{Error, Event, Handler, Info};
/// struct Noop;
/// impl Handler for Noop {
///     fn describe() -> Info { Info::new("noop", "0.1.0").subscribe("noop.>") }
///     fn handle(_event: Event) -> Result<(), Error> { Ok(()) }
/// }
/// choreo_sdk::export_handler!(Noop);
/// ```
#[macro_export]
macro_rules! export_handler {
    ($handler:ty) => {
        const _: () = {
            // The generated export macro takes an identifier, so name the adapter type.
            type ChoreoHandlerExports = $crate::__private::Exports<$handler>;
    $crate::bindings::export_raw!(ChoreoHandlerExports with_types_in $crate::bindings);
        };
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::handler::Exports;
}
