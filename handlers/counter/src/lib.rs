//! `counter`: counts order events per topic and serves the counts (a CQRS read side).
//!
//! Consumes `orders.>` and adds one to the count of the event's topic, kept in state under
//! `count/<topic>` as a JSON number. Publishes nothing.
//!
//! Read side (`GET /v1/query/counter/<path>`):
//! - `GET /counts`: every count, as `{"<topic>": <count>, ...}`;
//! - `GET /counts/<topic>`: the count as a bare JSON number, or 404 when no event was ever
//!   seen on that topic;
//! - anything else: 404.
//!
//! Counting is exact because choreo commits the state write with the delivery's ack: a
//! redelivered event was not counted the first time.

use std::collections::BTreeMap;

use choreo_sdk::{Error, Event, Handler, Info, Request, Response, state};

/// The state key prefix of the counts; the topic follows it.
const PREFIX: &str = "count/";

fn key(topic: &str) -> String {
    format!("{PREFIX}{topic}")
}

struct Counter;

impl Handler for Counter {
    fn describe() -> Info {
        Info::new("counter", env!("CARGO_PKG_VERSION"))
            .description("Counts order events per topic; query /counts or /counts/<topic>")
            .subscribe("orders.>")
    }

    fn handle(event: Event) -> Result<(), Error> {
        let key = key(event.topic());
        let count: u64 = state::get(&key)?.unwrap_or(0);
        state::set(&key, &(count + 1))?;
        Ok(())
    }

    fn query(request: Request) -> Response {
        if request.method() != "GET" {
            return Response::not_found();
        }
        match request.segments().as_slice() {
            ["counts"] => all_counts(),
            ["counts", topic] => one_count(topic),
            _ => Response::not_found(),
        }
    }
}

fn all_counts() -> Response {
    let counts: Result<BTreeMap<String, u64>, _> = state::scan_json::<u64>(PREFIX)
        .map(|entry| entry.map(|(key, count)| (key[PREFIX.len()..].to_owned(), count)))
        .collect();
    match counts {
        Ok(counts) => Response::json(200, &counts),
        Err(e) => Response::problem(500, e.to_string()),
    }
}

fn one_count(topic: &str) -> Response {
    match state::get::<u64>(&key(topic)) {
        Ok(Some(count)) => Response::json(200, &count),
        Ok(None) => Response::problem(404, format!("no event seen on topic {topic}")),
        Err(e) => Response::problem(500, e.to_string()),
    }
}

choreo_sdk::export_handler!(Counter);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_paths_and_methods_are_404_without_touching_state() {
        for (method, path) in [
            ("GET", "/"),
            ("GET", "/other"),
            ("GET", "/counts/a/b"),
            ("POST", "/counts"),
        ] {
            assert_eq!(
                Counter::query(Request::new(method, path)).status(),
                404,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn keys_carry_the_topic() {
        assert_eq!(key("orders.created"), "count/orders.created");
    }
}
