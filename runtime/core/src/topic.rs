//! Topics and the token grammar they share with patterns.
//!
//! A topic is where an event is published: dot-separated tokens such as
//! `orders.created.eu`. The grammar is the one NATS uses for subjects, so topics map
//! one to one onto JetStream subjects. Tokens that start with `$` are reserved for
//! choreo itself (`$dlq.…`, `$reply.…`, `$sys.…`).

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest topic or pattern, in bytes: NATS subjects are practical up to this size and
/// it keeps every key the broker derives from a topic small.
pub const MAX_TOPIC_BYTES: usize = 255;

/// Most tokens in a topic or pattern: deep enough for any real hierarchy, shallow
/// enough that matching cost stays bounded.
pub const MAX_TOPIC_TOKENS: usize = 16;

/// Why a topic or pattern was refused. Every variant names the offending input, and
/// token positions count from 1 as a person reads them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// The input was empty.
    #[error("{what} is empty")]
    Empty {
        /// `topic` or `pattern`.
        what: &'static str,
    },
    /// The input is longer than [`MAX_TOPIC_BYTES`].
    #[error("{what} `{input}` is {len} bytes long; the limit is {MAX_TOPIC_BYTES}")]
    TooLong {
        /// `topic` or `pattern`.
        what: &'static str,
        /// The input, cut to a readable length.
        input: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The input has more than [`MAX_TOPIC_TOKENS`] tokens.
    #[error("{what} `{input}` has {count} tokens; the limit is {MAX_TOPIC_TOKENS}")]
    TooManyTokens {
        /// `topic` or `pattern`.
        what: &'static str,
        /// The input.
        input: String,
        /// How many tokens it has.
        count: usize,
    },
    /// Two dots in a row, or a dot at the start or the end.
    #[error(
        "{what} `{input}` has an empty token at position {position} (two dots in a row, or a dot at the start or end)"
    )]
    EmptyToken {
        /// `topic` or `pattern`.
        what: &'static str,
        /// The input.
        input: String,
        /// 1-based position of the empty token.
        position: usize,
    },
    /// A token holds a character that is never allowed (whitespace or a control character),
    /// or a wildcard character inside a longer token.
    #[error(
        "{what} `{input}`: token {position} `{token}` contains {found}, which is not allowed in a token"
    )]
    BadCharacter {
        /// `topic` or `pattern`.
        what: &'static str,
        /// The input.
        input: String,
        /// 1-based position of the token.
        position: usize,
        /// The token.
        token: String,
        /// A description of the character, e.g. "a space" or "`*`".
        found: String,
    },
    /// A topic (not a pattern) holds a wildcard token.
    #[error(
        "topic `{input}`: token {position} is the wildcard `{token}`; wildcards are only allowed in subscription patterns"
    )]
    WildcardInTopic {
        /// The input.
        input: String,
        /// 1-based position of the token.
        position: usize,
        /// `*` or `>`.
        token: String,
    },
    /// A pattern has `>` somewhere other than its last token.
    #[error(
        "pattern `{input}`: `>` at token {position} must be the last token (it matches all the remaining tokens)"
    )]
    TailNotLast {
        /// The input.
        input: String,
        /// 1-based position of the `>` token.
        position: usize,
    },
}

/// Which grammar [`check_tokens`] applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Grammar {
    Topic,
    Pattern,
}

impl Grammar {
    fn what(self) -> &'static str {
        match self {
            Grammar::Topic => "topic",
            Grammar::Pattern => "pattern",
        }
    }
}

/// Validates `input` against the shared token grammar. Patterns additionally accept `*`
/// as a whole token anywhere and `>` as the whole last token.
pub(crate) fn check_tokens(input: &str, grammar: Grammar) -> Result<(), TopicError> {
    let what = grammar.what();
    if input.is_empty() {
        return Err(TopicError::Empty { what });
    }
    if input.len() > MAX_TOPIC_BYTES {
        return Err(TopicError::TooLong {
            what,
            input: shorten(input),
            len: input.len(),
        });
    }
    let count = input.split('.').count();
    if count > MAX_TOPIC_TOKENS {
        return Err(TopicError::TooManyTokens {
            what,
            input: input.to_owned(),
            count,
        });
    }
    for (index, token) in input.split('.').enumerate() {
        let position = index + 1;
        if token.is_empty() {
            return Err(TopicError::EmptyToken {
                what,
                input: input.to_owned(),
                position,
            });
        }
        if token == "*" || token == ">" {
            match grammar {
                Grammar::Topic => {
                    return Err(TopicError::WildcardInTopic {
                        input: input.to_owned(),
                        position,
                        token: token.to_owned(),
                    });
                }
                Grammar::Pattern if token == ">" && position != count => {
                    return Err(TopicError::TailNotLast {
                        input: input.to_owned(),
                        position,
                    });
                }
                Grammar::Pattern => continue,
            }
        }
        if let Some(c) = token
            .chars()
            .find(|c| c.is_whitespace() || c.is_control() || *c == '*' || *c == '>')
        {
            return Err(TopicError::BadCharacter {
                what,
                input: input.to_owned(),
                position,
                token: token.to_owned(),
                found: describe_char(c),
            });
        }
    }
    Ok(())
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' | '\r' => "a line break".to_owned(),
        '*' | '>' => format!("`{c}` (a wildcard is only valid as a whole token)"),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("the whitespace character U+{:04X}", c as u32),
    }
}

/// Cuts long input for error messages, on a character boundary.
fn shorten(input: &str) -> String {
    const SHOWN: usize = 64;
    match input.char_indices().nth(SHOWN) {
        Some((cut, _)) => format!("{}…", &input[..cut]),
        None => input.to_owned(),
    }
}

/// A validated topic: where an event is published.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Topic(String);

impl Topic {
    /// Parses and validates a topic.
    pub fn new(input: impl Into<String>) -> Result<Self, TopicError> {
        let input = input.into();
        check_tokens(&input, Grammar::Topic)?;
        Ok(Topic(input))
    }

    /// The topic as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The dot-separated tokens, first to last.
    pub fn tokens(&self) -> impl DoubleEndedIterator<Item = &str> + Clone {
        self.0.split('.')
    }

    /// Whether the first token starts with `$`: choreo's own topics (dead-letters,
    /// replies, system events), which first-position wildcards never match.
    pub fn is_reserved(&self) -> bool {
        self.0.starts_with('$')
    }

    /// The dead-letter topic of a handler: `$dlq.<handler>`.
    pub fn dead_letter(handler: &crate::HandlerName) -> Self {
        Topic(format!("$dlq.{handler}"))
    }

    /// The reply topic for a request event: `$reply.<token>`, where `token` is a
    /// broker-assigned event id (ULIDs are always valid tokens).
    pub fn reply_to(id: &crate::EventId) -> Result<Self, TopicError> {
        Topic::new(format!("$reply.{id}"))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic({})", self.0)
    }
}

impl std::str::FromStr for Topic {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Topic::new(s)
    }
}

impl AsRef<str> for Topic {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Topic {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Topic::new(text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_topics() {
        for ok in [
            "orders",
            "orders.created.eu",
            "$dlq.billing",
            "a-b_c.D9",
            "ünïcode.ok",
        ] {
            assert!(Topic::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn names_the_empty_token() {
        let err = Topic::new("orders..eu").unwrap_err();
        assert_eq!(
            err.to_string(),
            "topic `orders..eu` has an empty token at position 2 (two dots in a row, or a dot at the start or end)"
        );
        assert!(matches!(
            Topic::new(".a"),
            Err(TopicError::EmptyToken { position: 1, .. })
        ));
        assert!(matches!(
            Topic::new("a."),
            Err(TopicError::EmptyToken { position: 2, .. })
        ));
    }

    #[test]
    fn refuses_wildcards_and_whitespace() {
        assert!(matches!(
            Topic::new("orders.*"),
            Err(TopicError::WildcardInTopic { position: 2, .. })
        ));
        assert!(matches!(
            Topic::new(">"),
            Err(TopicError::WildcardInTopic { position: 1, .. })
        ));
        let err = Topic::new("orders.new order").unwrap_err();
        assert!(
            err.to_string()
                .contains("token 2 `new order` contains a space"),
            "{err}"
        );
        assert!(matches!(
            Topic::new("a.b*"),
            Err(TopicError::BadCharacter { .. })
        ));
        assert!(matches!(
            Topic::new("a.\u{7}"),
            Err(TopicError::BadCharacter { .. })
        ));
    }

    #[test]
    fn enforces_size_limits() {
        let long = "a".repeat(MAX_TOPIC_BYTES + 1);
        assert!(matches!(
            Topic::new(long),
            Err(TopicError::TooLong { len: 256, .. })
        ));
        assert!(Topic::new("a".repeat(MAX_TOPIC_BYTES)).is_ok());
        let deep = vec!["t"; MAX_TOPIC_TOKENS + 1].join(".");
        assert!(matches!(
            Topic::new(deep),
            Err(TopicError::TooManyTokens { count: 17, .. })
        ));
        assert!(Topic::new(vec!["t"; MAX_TOPIC_TOKENS].join(".")).is_ok());
        assert!(matches!(Topic::new(""), Err(TopicError::Empty { .. })));
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<Topic>("\"a.b\"").is_ok());
        assert!(serde_json::from_str::<Topic>("\"a..b\"").is_err());
    }
}
