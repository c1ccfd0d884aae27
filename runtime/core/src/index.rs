//! A token trie from patterns to subscribers.
//!
//! Finding the subscribers of a topic walks the trie along the topic's tokens, following
//! the literal child, the `*` child and the `>` child at each level, so its cost grows
//! with the depth of the topic and the number of wildcard branches, not with the number
//! of subscriptions. The broker keeps one index over every handler's subscriptions.

use std::collections::{BTreeSet, HashMap};

use crate::{Pattern, PatternToken, Topic};

/// Maps patterns to the values (e.g. handler names) subscribed with them.
#[derive(Debug, Clone)]
pub struct PatternIndex<V: Ord> {
    root: Node<V>,
    len: usize,
}

#[derive(Debug, Clone)]
struct Node<V: Ord> {
    literal: HashMap<String, Node<V>>,
    one: Option<Box<Node<V>>>,
    /// Subscribers whose pattern ends with `>` at this depth.
    tail: BTreeSet<V>,
    /// Subscribers whose pattern ends exactly at this node.
    here: BTreeSet<V>,
}

impl<V: Ord> Default for Node<V> {
    fn default() -> Self {
        Node {
            literal: HashMap::new(),
            one: None,
            tail: BTreeSet::new(),
            here: BTreeSet::new(),
        }
    }
}

impl<V: Ord> Node<V> {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.one.is_none()
            && self.tail.is_empty()
            && self.here.is_empty()
    }
}

impl<V: Ord + Clone> Default for PatternIndex<V> {
    fn default() -> Self {
        PatternIndex {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V: Ord + Clone> PatternIndex<V> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many (pattern, value) entries the index holds.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the index holds no entry.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Subscribes `value` with `pattern`. Returns false if that entry was already there.
    pub fn insert(&mut self, pattern: &Pattern, value: V) -> bool {
        let mut node = &mut self.root;
        let mut tokens = pattern.tokens().peekable();
        while let Some(token) = tokens.next() {
            match token {
                PatternToken::Literal(literal) => {
                    node = node.literal.entry(literal.to_owned()).or_default();
                }
                PatternToken::One => node = node.one.get_or_insert_with(Box::default),
                PatternToken::Tail => {
                    debug_assert!(tokens.peek().is_none(), "the grammar puts `>` last");
                    let added = node.tail.insert(value);
                    self.len += usize::from(added);
                    return added;
                }
            }
        }
        let added = node.here.insert(value);
        self.len += usize::from(added);
        added
    }

    /// Removes the entry (`pattern`, `value`). Returns false if it was not there. Empty
    /// branches are pruned so the index does not grow with churn.
    pub fn remove(&mut self, pattern: &Pattern, value: &V) -> bool {
        let tokens: Vec<PatternToken<'_>> = pattern.tokens().collect();
        let removed = remove_from(&mut self.root, &tokens, value);
        self.len -= usize::from(removed);
        removed
    }

    /// Every value subscribed with a pattern that matches `topic`, each once.
    pub fn matching(&self, topic: &Topic) -> BTreeSet<V> {
        let mut found = BTreeSet::new();
        let tokens: Vec<&str> = topic.tokens().collect();
        collect(&self.root, &tokens, 0, topic.is_reserved(), &mut found);
        found
    }
}

fn remove_from<V: Ord>(node: &mut Node<V>, tokens: &[PatternToken<'_>], value: &V) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return node.here.remove(value);
    };
    match first {
        PatternToken::Tail => node.tail.remove(value),
        PatternToken::One => {
            let Some(child) = node.one.as_deref_mut() else {
                return false;
            };
            let removed = remove_from(child, rest, value);
            if child.is_empty() {
                node.one = None;
            }
            removed
        }
        PatternToken::Literal(literal) => {
            let Some(child) = node.literal.get_mut(*literal) else {
                return false;
            };
            let removed = remove_from(child, rest, value);
            if child.is_empty() {
                node.literal.remove(*literal);
            }
            removed
        }
    }
}

fn collect<V: Ord + Clone>(
    node: &Node<V>,
    tokens: &[&str],
    depth: usize,
    reserved: bool,
    found: &mut BTreeSet<V>,
) {
    let Some((token, rest)) = tokens.split_first() else {
        found.extend(node.here.iter().cloned());
        return;
    };
    // A wildcard in the first position never matches a reserved (`$`) topic.
    let wildcards_apply = !(depth == 0 && reserved);
    if wildcards_apply {
        found.extend(node.tail.iter().cloned());
        if let Some(one) = node.one.as_deref() {
            collect(one, rest, depth + 1, reserved, found);
        }
    }
    if let Some(child) = node.literal.get(*token) {
        collect(child, rest, depth + 1, reserved, found);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::pattern::{naive_matches, strategies};

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    fn t(s: &str) -> Topic {
        Topic::new(s).unwrap()
    }

    #[test]
    fn finds_each_subscriber_once() {
        let mut index = PatternIndex::new();
        index.insert(&p("orders.*"), "a");
        index.insert(&p("orders.>"), "a");
        index.insert(&p("orders.created"), "b");
        index.insert(&p(">"), "c");
        index.insert(&p("$dlq.>"), "d");
        assert_eq!(
            index.matching(&t("orders.created")),
            BTreeSet::from(["a", "b", "c"])
        );
        assert_eq!(index.matching(&t("$dlq.a")), BTreeSet::from(["d"]));
        assert_eq!(index.matching(&t("orders")), BTreeSet::from(["c"]));
    }

    #[test]
    fn remove_prunes_and_keeps_others() {
        let mut index = PatternIndex::new();
        index.insert(&p("a.*.c"), 1);
        index.insert(&p("a.b.c"), 2);
        assert!(index.remove(&p("a.*.c"), &1));
        assert!(!index.remove(&p("a.*.c"), &1));
        assert_eq!(index.matching(&t("a.b.c")), BTreeSet::from([2]));
        assert!(index.remove(&p("a.b.c"), &2));
        assert!(index.is_empty());
        assert!(index.root.is_empty(), "empty branches are pruned");
    }

    proptest! {
        #[test]
        fn agrees_with_the_naive_matcher(
            patterns in prop::collection::vec(strategies::pattern(), 0..12),
            removals in prop::collection::vec(any::<prop::sample::Index>(), 0..6),
            topic in strategies::topic(),
        ) {
            let mut index = PatternIndex::new();
            let mut live: Vec<(String, usize)> = Vec::new();
            for (value, pattern) in patterns.iter().enumerate() {
                index.insert(&p(pattern), value);
                live.push((pattern.clone(), value));
            }
            for removal in removals {
                if live.is_empty() { break; }
                let (pattern, value) = live.remove(removal.index(live.len()));
                prop_assert!(index.remove(&p(&pattern), &value));
            }
            let expected: BTreeSet<usize> = live
                .iter()
                .filter(|(pattern, _)| naive_matches(pattern, &topic))
                .map(|(_, value)| *value)
                .collect();
            prop_assert_eq!(index.matching(&t(&topic)), expected);
            prop_assert_eq!(index.len(), live.len());
        }
    }
}
