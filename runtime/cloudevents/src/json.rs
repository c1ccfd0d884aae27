//! Events as choreo hands them out: structured-mode CloudEvents JSON.
//!
//! JSON data goes out as the bytes it came in with, not re-encoded: a number keeps all
//! its digits (a `serde_json::Value` would round `12345678901234567890123` to an `f64`)
//! and an object keeps its members' order. Only the whitespace between tokens is
//! dropped, so that an event is always one line (the SSE stream relies on it).

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine;
use choreo_core::RecordedEvent;
use serde::{Serialize, Serializer};
use serde_json::value::RawValue;

/// A recorded event as a structured-mode CloudEvent, with choreo's fields (`topic`,
/// `seq`, `correlationid`, `causationid`, `partitionkey`, `replyto`) as extensions.
/// JSON data is inlined as `data`, UTF-8 text with a `text/*` type too; anything else
/// is `data_base64`. Serialises as one JSON object, members in name order.
#[derive(Debug)]
pub struct StructuredEvent<'a> {
    members: BTreeMap<&'a str, Member<'a>>,
}

/// One member's value.
#[derive(Debug)]
enum Member<'a> {
    Text(Cow<'a, str>),
    Number(u64),
    /// JSON data, compact.
    Json(Cow<'a, RawValue>),
}

impl<'a> StructuredEvent<'a> {
    pub fn new(recorded: &'a RecordedEvent) -> Self {
        let event = &recorded.event;
        let text = |value: &'a str| Member::Text(Cow::Borrowed(value));
        let mut members = BTreeMap::from([
            ("specversion", text(crate::SPEC_VERSION)),
            ("id", text(event.id.as_str())),
            ("source", text(&event.source)),
            ("type", text(&event.ty)),
            ("time", Member::Text(Cow::Owned(event.time.to_string()))),
            ("topic", text(event.topic.as_str())),
            ("seq", Member::Number(recorded.seq)),
            ("correlationid", text(event.correlation_id.as_str())),
        ]);
        let optional = [
            ("datacontenttype", event.datacontenttype.as_deref()),
            ("dataschema", event.dataschema.as_deref()),
            ("subject", event.subject.as_deref()),
            ("partitionkey", event.key.as_deref()),
            (
                "causationid",
                event.causation_id.as_ref().map(|id| id.as_str()),
            ),
            ("replyto", event.reply_to.as_ref().map(|t| t.as_str())),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                members.insert(name, text(value));
            }
        }
        for (name, value) in &event.extensions {
            members.insert(name, text(value));
        }
        let content_type = event.datacontenttype.as_deref().unwrap_or("");
        let json = if crate::attributes::is_json_media_type(event.datacontenttype.as_deref()) {
            serde_json::from_slice::<&RawValue>(&event.data).ok()
        } else {
            None
        };
        match json {
            Some(raw) => {
                members.insert("data", Member::Json(compact(raw)));
            }
            None => match std::str::from_utf8(&event.data) {
                Ok(data) if content_type.starts_with("text/") => {
                    members.insert("data", text(data));
                }
                _ => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(&event.data);
                    members.insert("data_base64", Member::Text(Cow::Owned(encoded)));
                }
            },
        }
        StructuredEvent { members }
    }

    /// Every member but the data, as text: strings as they are, numbers in decimal.
    pub fn attributes(&self) -> impl Iterator<Item = (&str, Cow<'_, str>)> {
        self.members
            .iter()
            .filter_map(|(&name, member)| match member {
                Member::Text(text) => Some((name, Cow::Borrowed(text.as_ref()))),
                Member::Number(number) => Some((name, Cow::Owned(number.to_string()))),
                Member::Json(_) => None,
            })
            .filter(|(name, _)| !matches!(*name, "data" | "data_base64"))
    }
}

impl Serialize for StructuredEvent<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.members.iter())
    }
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Text(text) => serializer.serialize_str(text),
            Member::Number(number) => serializer.serialize_u64(*number),
            Member::Json(raw) => raw.serialize(serializer),
        }
    }
}

/// `raw` without whitespace between its tokens; borrowed when it has none (whitespace
/// inside strings is kept, and needs no copy).
fn compact(raw: &RawValue) -> Cow<'_, RawValue> {
    let text = raw.get().as_bytes();
    // Bytes, not chars: every byte that JSON's grammar looks at is ASCII, and no byte of
    // a multi-byte UTF-8 sequence is.
    let mut copy: Option<Vec<u8>> = None;
    let (mut in_string, mut escaped) = (false, false);
    for (at, &byte) in text.iter().enumerate() {
        let keep = if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            true
        } else {
            in_string = byte == b'"';
            !matches!(byte, b' ' | b'\t' | b'\n' | b'\r')
        };
        match (&mut copy, keep) {
            (Some(copy), true) => copy.push(byte),
            (None, false) => {
                let mut started = Vec::with_capacity(text.len());
                started.extend_from_slice(&text[..at]);
                copy = Some(started);
            }
            _ => {}
        }
    }
    match copy {
        None => Cow::Borrowed(raw),
        Some(copy) => {
            let copy = String::from_utf8(copy).expect("removing ASCII whitespace keeps UTF-8");
            Cow::Owned(
                RawValue::from_string(copy).expect("valid JSON stays valid without whitespace"),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use choreo_core::{Event, Topic};

    use super::*;

    fn recorded(content_type: Option<&str>, data: &[u8]) -> RecordedEvent {
        let mut event = Event::new(Topic::new("orders.created").unwrap(), "test", data);
        event.datacontenttype = content_type.map(str::to_owned);
        RecordedEvent { seq: 7, event }
    }

    fn out(recorded: &RecordedEvent) -> String {
        serde_json::to_string(&StructuredEvent::new(recorded)).unwrap()
    }

    #[test]
    fn json_data_goes_out_as_it_came_in_on_one_line() {
        let data = "{\n  \"z\": 12345678901234567890123,\n  \"b\": 0.10000000000000000555,\n  \"a\": [1, \"two  words\\\" \\n\"]\n}\n";
        let text = out(&recorded(Some("application/json"), data.as_bytes()));
        assert!(
            text.contains(r#""data":{"z":12345678901234567890123,"b":0.10000000000000000555,"a":[1,"two  words\" \n"]}"#),
            "{text}"
        );
        assert!(!text.contains('\n'), "one line: {text}");
        // Already compact data is borrowed as it is, whitespace in its strings too.
        let compact = recorded(Some("application/json"), br#"{"z":1e400}"#);
        assert!(out(&compact).contains(r#""data":{"z":1e400}"#));
        let spaced: &RawValue =
            serde_json::from_str(r#"{"a":"two  words\" \t","\u00e9 \\":[" "]}"#).unwrap();
        assert!(matches!(super::compact(spaced), Cow::Borrowed(_)));
        let pretty: &RawValue = serde_json::from_str("[ \"caf\u{e9} \" ,\t{ } ]").unwrap();
        assert_eq!(super::compact(pretty).get(), "[\"caf\u{e9} \",{}]");
    }

    #[test]
    fn deeply_nested_data_goes_out_without_recursing() {
        let data = format!("{} {}", "[".repeat(100_000), "]".repeat(100_000));
        let text = out(&recorded(Some("application/json"), data.as_bytes()));
        let compact = data.replace(' ', "");
        assert!(text.contains(&format!(r#""data":{compact}"#)));
    }

    #[test]
    fn the_envelope_is_sorted_and_other_data_is_text_or_base64() {
        let text = out(&recorded(Some("text/plain"), b"hello"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["data"], "hello");
        assert_eq!(value["seq"], 7);
        assert_eq!(value["specversion"], "1.0");
        let names: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
        assert!(text.starts_with(r#"{"correlationid":"#), "{text}");
        // Not JSON though labelled so, and bytes without a type: base64.
        for (content_type, data) in [
            (Some("application/json"), &b"{oops"[..]),
            (None, &[0xff, 0][..]),
        ] {
            let value: serde_json::Value =
                serde_json::from_str(&out(&recorded(content_type, data))).unwrap();
            assert!(value.get("data").is_none());
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(value["data_base64"].as_str().unwrap())
                .unwrap();
            assert_eq!(decoded, data);
        }
    }

    #[test]
    fn attributes_leave_out_the_data() {
        let recorded = recorded(Some("application/json"), b"{\"a\":1}");
        let event = StructuredEvent::new(&recorded);
        let attributes: BTreeMap<&str, Cow<'_, str>> = event.attributes().collect();
        assert_eq!(attributes["seq"], "7");
        assert_eq!(attributes["topic"], "orders.created");
        assert_eq!(attributes["datacontenttype"], "application/json");
        assert!(!attributes.contains_key("data") && !attributes.contains_key("data_base64"));
    }
}
