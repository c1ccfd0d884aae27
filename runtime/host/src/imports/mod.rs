//! The host side of the choreo imports, one file per WIT interface. Each serves the
//! guest from the call's [`CallState`](crate::call::CallState) and enforces the
//! handler's limits; errors a guest can act on are WIT results, host failures trap.

mod config;
mod emit;
mod log;
mod state;

impl crate::bindings::choreo::handler::types::Host for crate::call::CallState {}
