//! What a handler says about itself, validated.
//!
//! `describe` returns raw strings; [`HandlerInfo`] is the checked form the rest of
//! choreo uses: a valid name, parsed patterns, and parsed JSON schemas, each within a
//! named bound. Every refusal names the field and the value so the author can fix it.

use choreo_core::{HandlerName, Pattern};
use serde::Serialize;

use crate::bindings::choreo::handler::types::Info;

/// Most subscription patterns, and most publish patterns, one handler may declare.
pub const MAX_PATTERNS: usize = 64;
/// Longest handler version string.
pub const MAX_VERSION_BYTES: usize = 64;
/// Longest handler description.
pub const MAX_DESCRIPTION_BYTES: usize = 1024;
/// Largest JSON schema text, per topic.
pub const MAX_SCHEMA_BYTES: usize = 64 << 10;

/// A handler's validated self-description.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HandlerInfo {
    /// Its identity.
    pub name: HandlerName,
    /// Its own version string.
    pub version: String,
    /// One line for the catalog.
    pub description: String,
    /// What it consumes.
    pub subscriptions: Vec<Pattern>,
    /// What it may publish.
    pub publishes: Vec<Pattern>,
    /// JSON schemas of consumed or published data, by topic pattern.
    pub schemas: Vec<TopicSchema>,
}

/// A JSON schema for the data on topics matching `topic`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopicSchema {
    /// The topic or pattern.
    pub topic: Pattern,
    /// The schema document.
    pub schema: serde_json::Value,
}

/// A field of `info` that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InvalidField {
    pub(crate) field: String,
    pub(crate) reason: String,
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> InvalidField {
    InvalidField {
        field: field.into(),
        reason: reason.into(),
    }
}

impl HandlerInfo {
    pub(crate) fn validate(raw: Info) -> Result<Self, InvalidField> {
        let name = HandlerName::new(raw.name.clone())
            .map_err(|err| invalid(format!("name {:?}", raw.name), err.to_string()))?;
        if raw.version.is_empty() || raw.version.len() > MAX_VERSION_BYTES {
            return Err(invalid(
                format!("version {:?}", raw.version),
                format!("must be 1 to {MAX_VERSION_BYTES} bytes"),
            ));
        }
        if raw.description.len() > MAX_DESCRIPTION_BYTES {
            return Err(invalid(
                "description",
                format!(
                    "is {} bytes; the limit is {MAX_DESCRIPTION_BYTES}",
                    raw.description.len()
                ),
            ));
        }
        let subscriptions = patterns("subscription", raw.subscriptions)?;
        if subscriptions.is_empty() {
            return Err(invalid(
                "subscriptions",
                "is empty: a handler must subscribe to at least one pattern",
            ));
        }
        let publishes = patterns("publish pattern", raw.publishes)?;
        if let Some(reserved) = publishes.iter().find(|p| p.as_str().starts_with('$')) {
            return Err(invalid(
                format!("publish pattern {:?}", reserved.as_str()),
                "topics starting with `$` are reserved to choreo (replies need no declaration)",
            ));
        }
        let schemas = raw
            .schemas
            .into_iter()
            .map(|schema| {
                let field = format!("schema for {:?}", schema.topic);
                let topic =
                    Pattern::new(schema.topic).map_err(|err| invalid(&field, err.to_string()))?;
                if schema.schema.len() > MAX_SCHEMA_BYTES {
                    return Err(invalid(
                        &field,
                        format!("is longer than {MAX_SCHEMA_BYTES} bytes"),
                    ));
                }
                let schema = serde_json::from_str(&schema.schema)
                    .map_err(|err| invalid(&field, format!("is not valid JSON: {err}")))?;
                Ok(TopicSchema { topic, schema })
            })
            .collect::<Result<_, _>>()?;
        Ok(HandlerInfo {
            name,
            version: raw.version,
            description: raw.description,
            subscriptions,
            publishes,
            schemas,
        })
    }
}

fn patterns(what: &str, raw: Vec<String>) -> Result<Vec<Pattern>, InvalidField> {
    if raw.len() > MAX_PATTERNS {
        return Err(invalid(
            format!("{what}s"),
            format!("has {} entries; the limit is {MAX_PATTERNS}", raw.len()),
        ));
    }
    raw.into_iter()
        .map(|text| {
            Pattern::new(text.clone())
                .map_err(|err| invalid(format!("{what} {text:?}"), err.to_string()))
        })
        .collect()
}
