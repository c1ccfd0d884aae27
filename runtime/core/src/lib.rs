//! choreo's vocabulary: topics, patterns, handler names, event ids and events.
//!
//! Pure logic with no I/O, shared by every other crate: the broker stores and routes
//! these types, the host converts them to and from the WIT contract, the ingress parses
//! them from HTTP. The grammar of topics and patterns is documented in [`Topic`] and
//! [`Pattern`]; every parse error names the offending token and why it is wrong.
//!
//! Layout:
//! - `topic`: [`Topic`] and the token grammar shared with patterns, with size limits.
//! - `pattern`: [`Pattern`] and NATS-style matching (`*`, `>`), reserved `$` topics.
//! - `index`: [`PatternIndex`], a token trie from patterns to subscribers.
//! - `name`: [`HandlerName`], the identity of a handler.
//! - `id`: [`EventId`], generated ULIDs or publisher-supplied ids.
//! - `event`: [`Event`] and [`RecordedEvent`], CloudEvents attributes plus links.
//! - `report`: [`with_causes`], an error and its causes as one line.

mod event;
mod id;
mod index;
mod name;
mod pattern;
mod report;
mod topic;

pub use event::{
    AttributeError, Event, MAX_EXTENSION_NAME_BYTES, RESERVED_ATTRIBUTES, RecordedEvent,
    check_extension_name,
};
pub use id::{EventId, IdError, MAX_EVENT_ID_BYTES};
pub use index::PatternIndex;
pub use jiff::Timestamp;
pub use name::{HandlerName, MAX_HANDLER_NAME_BYTES, NameError};
pub use pattern::{Pattern, PatternToken};
pub use report::with_causes;
pub use topic::{MAX_TOPIC_BYTES, MAX_TOPIC_TOKENS, Topic, TopicError};
