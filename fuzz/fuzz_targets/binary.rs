//! Binary mode takes attributes from `ce-*` headers a client chose: building an event
//! from any headers and body never panics, and an accepted event keeps its body as data.

#![no_main]

use choreo_cloudevents::from_binary;
use choreo_core::Topic;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (Vec<(String, Vec<u8>)>, Vec<u8>)| {
    let (headers, body) = input;
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        // Mostly CloudEvents headers, so the fuzzer spends its time where parsing is.
        let name = if name.starts_with('!') {
            name[1..].to_owned()
        } else {
            format!("ce-{name}")
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(&value),
        ) {
            map.append(name, value);
        }
    }
    let topic = Topic::new("fuzz.binary").expect("a valid topic");
    if let Ok(event) = from_binary(topic, &map, body.clone()) {
        assert_eq!(event.data, body);
    }
});
