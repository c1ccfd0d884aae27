//! Subscription patterns and how they match topics.
//!
//! The grammar and matching are NATS's: `*` matches exactly one token, `>` (only as the
//! last token) matches one or more tokens. One rule is added, as MQTT does for `$SYS`: a
//! wildcard in the first position never matches a reserved topic (first token starting
//! with `$`), so a handler on `>` sees no dead-letters or replies unless it asks for
//! them with a pattern such as `$dlq.>`.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::topic::{Grammar, Topic, TopicError, check_tokens};

/// One token of a pattern.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternToken<'a> {
    /// Matches exactly this token.
    Literal(&'a str),
    /// `*`: matches any one token.
    One,
    /// `>`: matches one or more remaining tokens; always the last token.
    Tail,
}

/// A validated subscription or publish pattern.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Pattern(String);

impl Pattern {
    /// Parses and validates a pattern.
    pub fn new(input: impl Into<String>) -> Result<Self, TopicError> {
        let input = input.into();
        check_tokens(&input, Grammar::Pattern)?;
        Ok(Pattern(input))
    }

    /// The pattern as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The tokens of the pattern, first to last.
    pub fn tokens(&self) -> impl Iterator<Item = PatternToken<'_>> + Clone {
        self.0.split('.').map(|token| match token {
            "*" => PatternToken::One,
            ">" => PatternToken::Tail,
            literal => PatternToken::Literal(literal),
        })
    }

    /// Whether the pattern holds no wildcard, i.e. names exactly one topic.
    pub fn is_literal(&self) -> bool {
        self.tokens().all(|t| matches!(t, PatternToken::Literal(_)))
    }

    /// Whether `topic` matches this pattern.
    pub fn matches(&self, topic: &Topic) -> bool {
        let mut topic_tokens = topic.tokens();
        for (index, token) in self.tokens().enumerate() {
            let Some(topic_token) = topic_tokens.next() else {
                return false;
            };
            match token {
                PatternToken::Literal(literal) if literal != topic_token => return false,
                PatternToken::Literal(_) => {}
                PatternToken::One | PatternToken::Tail if index == 0 && topic.is_reserved() => {
                    return false;
                }
                PatternToken::One => {}
                PatternToken::Tail => return true,
            }
        }
        topic_tokens.next().is_none()
    }
}

impl From<Topic> for Pattern {
    /// A topic is a pattern that matches only itself.
    fn from(topic: Topic) -> Self {
        Pattern(topic.as_str().to_owned())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({})", self.0)
    }
}

impl std::str::FromStr for Pattern {
    type Err = TopicError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Pattern::new(s)
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Pattern::new(text).map_err(serde::de::Error::custom)
    }
}

/// A reference matcher, written as directly from the grammar as possible, that the
/// property tests (here and in the index) compare the real matchers against.
#[cfg(test)]
pub(crate) fn naive_matches(pattern: &str, topic: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    if t[0].starts_with('$') && (p[0] == "*" || p[0] == ">") {
        return false;
    }
    if p.last() == Some(&">") {
        let fixed = &p[..p.len() - 1];
        t.len() > fixed.len() && fixed.iter().zip(&t).all(|(a, b)| *a == "*" || a == b)
    } else {
        p.len() == t.len() && p.iter().zip(&t).all(|(a, b)| *a == "*" || a == b)
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use proptest::prelude::*;

    /// Topics over a tiny alphabet so that random patterns actually match them.
    pub(crate) fn topic() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "$r"]), 1..6).prop_map(
            |tokens| {
                // `$` tokens are only special in first position; keep them there or nowhere.
                let mut tokens: Vec<&str> = tokens;
                for t in tokens.iter_mut().skip(1) {
                    if *t == "$r" {
                        *t = "a";
                    }
                }
                tokens.join(".")
            },
        )
    }

    pub(crate) fn pattern() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "*", "$r"]), 1..6),
            any::<bool>(),
        )
            .prop_map(|(mut tokens, tail)| {
                for t in tokens.iter_mut().skip(1) {
                    if *t == "$r" {
                        *t = "b";
                    }
                }
                if tail {
                    *tokens.last_mut().expect("at least one token") = ">";
                }
                tokens.join(".")
            })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn matches(pattern: &str, topic: &str) -> bool {
        Pattern::new(pattern)
            .unwrap()
            .matches(&Topic::new(topic).unwrap())
    }

    #[test]
    fn star_matches_exactly_one_token() {
        assert!(matches("orders.*", "orders.created"));
        assert!(!matches("orders.*", "orders"));
        assert!(!matches("orders.*", "orders.created.eu"));
        assert!(matches("orders.*.eu", "orders.created.eu"));
        assert!(matches("*.*", "a.b"));
    }

    #[test]
    fn tail_matches_one_or_more_tokens() {
        assert!(matches("orders.>", "orders.created"));
        assert!(matches("orders.>", "orders.created.eu.x"));
        assert!(!matches("orders.>", "orders"));
        assert!(matches(">", "anything.at.all"));
        assert!(matches("*.>", "a.b"));
        assert!(!matches("*.>", "a"));
    }

    #[test]
    fn literals_match_whole_tokens() {
        assert!(matches("orders.created", "orders.created"));
        assert!(!matches("orders.created", "orders.createdx"));
        assert!(!matches("orders", "orders.created"));
    }

    #[test]
    fn first_position_wildcards_skip_reserved_topics() {
        assert!(!matches(">", "$dlq.billing"));
        assert!(!matches("*.billing", "$dlq.billing"));
        assert!(matches("$dlq.>", "$dlq.billing"));
        assert!(matches("$dlq.*", "$dlq.billing"));
        // Only the first position is special.
        assert!(matches("a.*", "a.$x"));
    }

    #[test]
    fn tail_must_be_last() {
        let err = Pattern::new("orders.>.eu").unwrap_err();
        assert_eq!(
            err.to_string(),
            "pattern `orders.>.eu`: `>` at token 2 must be the last token (it matches all the remaining tokens)"
        );
        assert!(Pattern::new("a.*b").is_err());
        assert!(Pattern::new("a..*").is_err());
    }

    proptest! {
        #[test]
        fn agrees_with_the_naive_matcher(
            pattern in strategies::pattern(),
            topic in strategies::topic(),
        ) {
            let real = Pattern::new(pattern.clone()).unwrap().matches(&Topic::new(topic.clone()).unwrap());
            prop_assert_eq!(real, naive_matches(&pattern, &topic), "{} vs {}", pattern, topic);
        }
    }
}
