//! Structured and batch mode bodies come straight from HTTP clients: parsing never
//! panics, a batch is refused or accepted whole, and whatever is accepted survives a
//! trip out as choreo's structured CloudEvent and back in with its identity intact.

#![no_main]

use choreo_cloudevents::{Destination, StructuredEvent, parse_batch, parse_event};
use choreo_core::{RecordedEvent, Topic};
use libfuzzer_sys::fuzz_target;

/// The batch limit the fuzzer runs with: small, so it reaches the limit too.
const MAX_EVENTS: usize = 8;

fuzz_target!(|body: &[u8]| {
    let path = Topic::new("fuzz.path").expect("a valid topic");
    for destination in [Destination::Path(&path), Destination::TopicAttribute] {
        if let Ok(event) = parse_event(body, destination) {
            let recorded = RecordedEvent {
                seq: 1,
                event: event.clone(),
            };
            let text = serde_json::to_vec(&StructuredEvent::new(&recorded))
                .expect("an event always serialises");
            let back = parse_event(&text, Destination::TopicAttribute)
                .unwrap_or_else(|refusal| panic!("choreo's own event is refused: {refusal:?}"));
            assert_eq!(back.id, event.id);
            assert_eq!(back.source, event.source);
            assert_eq!(back.ty, event.ty);
            assert_eq!(back.topic, event.topic);
        }
        if let Ok(events) = parse_batch(body, destination, MAX_EVENTS) {
            assert!(!events.is_empty() && events.len() <= MAX_EVENTS);
        }
    }
});
