//! choreo's CloudEvents 1.0 codec: what turns untrusted HTTP input into events, and
//! events back into CloudEvents. Pure functions, no I/O, no HTTP server: the ingress
//! calls them, and the fuzz targets (`fuzz/`) drive them directly.
//!
//! Layout:
//! - `attributes`: attributes onto [`choreo_core::Event`] fields, shared by every mode;
//!   the binary mode ([`from_binary`]: `ce-*` headers, body = data).
//! - `structured`: the JSON format as structured mode ([`parse_event`]) and batch mode
//!   ([`parse_batch`]).
//! - `json`: recorded events as structured CloudEvents JSON ([`StructuredEvent`]).
//! - `percent`: percent-decoding for paths, query strings and header values.

mod attributes;
mod json;
mod percent;
mod structured;

pub use attributes::{
    AttributeError, DEFAULT_SOURCE, REQUIRED, SPEC_VERSION, build_event, from_binary,
    is_json_media_type, percent_encode_header,
};
pub use json::StructuredEvent;
pub use percent::percent_decode;
pub use structured::{Destination, Refusal, parse_batch, parse_event};
