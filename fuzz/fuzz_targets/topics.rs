//! Topics and patterns come from HTTP paths, query strings and guests: parsing never
//! panics, whatever parses prints back as itself, and a pattern made of a topic's own
//! tokens matches that topic.

#![no_main]

use choreo_core::{Pattern, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, &str)| {
    let (first, second) = input;
    let topic = Topic::new(first);
    let pattern = Pattern::new(second);
    if let Ok(topic) = &topic {
        assert_eq!(topic.as_str(), first);
        let itself = Pattern::new(first).expect("a topic is a valid pattern");
        assert!(itself.matches(topic), "{first} does not match itself");
        let everything = Pattern::new(">").expect("`>` is a pattern");
        assert_eq!(everything.matches(topic), !first.starts_with('$'));
    }
    if let (Ok(topic), Ok(pattern)) = (&topic, &pattern) {
        let _ = pattern.matches(topic);
    }
});
