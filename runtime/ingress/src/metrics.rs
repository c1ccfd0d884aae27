//! `GET /metrics`: Prometheus text exposition format 0.0.4.
//!
//! Every value is read at scrape time from where it is counted: the dispatcher
//! (deliveries, traps, latency histograms), the deploy registry (deploys), the broker
//! (queues) and [`crate::telemetry::Telemetry`] (published events, HTTP requests).
//!
//! The text is written here directly rather than through a metrics crate: the values
//! already live in their owners' counters, so a client library's registry of owned
//! metrics would only add a second copy (or custom collectors as long as this file);
//! the format itself is a few lines per family.

use std::fmt::Write as _;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use choreo_dispatch::{HistogramSnapshot, LATENCY_BUCKETS};

use crate::AppState;
use crate::publish::broker_problem;
use crate::routes::Reply;

/// The process collector's families, each only when it could be read.
fn process_families(text: &mut Text, figures: &crate::process::ProcessFigures) {
    let gauges = [
        (
            "process_open_fds",
            "Open file descriptors: connections, store files, components being read.",
            figures.open_fds.map(|n| n as f64),
        ),
        (
            "process_max_fds",
            "The open-files limit; max_connections is kept 512 below it.",
            figures.max_fds.map(|n| n as f64),
        ),
        (
            "process_resident_memory_bytes",
            "Resident memory.",
            figures.resident_memory_bytes.map(|n| n as f64),
        ),
        (
            "process_virtual_memory_bytes",
            "Virtual memory, instance pool reservations included.",
            figures.virtual_memory_bytes.map(|n| n as f64),
        ),
        (
            "process_start_time_seconds",
            "When the process started, in seconds since the Unix epoch.",
            figures.start_time_seconds,
        ),
    ];
    for (name, help, value) in gauges {
        if let Some(value) = value {
            text.family(name, "gauge", help);
            text.sample(name, &[], value);
        }
    }
    if let Some(seconds) = figures.cpu_seconds {
        text.family(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
        );
        text.sample("process_cpu_seconds_total", &[], seconds);
    }
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

pub(crate) async fn render(state: &AppState) -> Reply {
    let stats = match state.broker.handlers().await {
        Ok(stats) => stats,
        Err(err) => return broker_problem(err),
    };
    let head = *state.broker.watch_log().borrow();
    let mut text = Text::default();

    text.family(
        "choreo_events_published_total",
        "counter",
        "Durable events by topic (its first two tokens; `other` past the label bound) and origin (ingress, handler outbox, dead_letter).",
    );
    for (topic, origin, count) in state.telemetry.published() {
        text.sample(
            "choreo_events_published_total",
            &[("topic", &topic), ("origin", origin.label())],
            count,
        );
    }

    text.family(
        "choreo_log_head_seq",
        "gauge",
        "The seq of the newest durable event.",
    );
    text.sample("choreo_log_head_seq", &[], head);

    text.family(
        "choreo_storage_failed",
        "gauge",
        "1 once a storage failure (a full disk, an I/O error) has stopped writes, until choreo restarts; else 0.",
    );
    text.sample(
        "choreo_storage_failed",
        &[],
        u8::from(state.broker.failure().is_some()),
    );

    text.family(
        "choreo_http_connections",
        "gauge",
        "HTTP connections open now; at max_connections, new ones wait until one closes.",
    );
    text.sample(
        "choreo_http_connections",
        &[],
        state.config.max_connections - state.connections.available_permits(),
    );
    text.family(
        "choreo_http_max_connections",
        "gauge",
        "The most HTTP connections open at once (max_connections).",
    );
    text.sample(
        "choreo_http_max_connections",
        &[],
        state.config.max_connections,
    );

    process_families(&mut text, &crate::process::read());

    let counters: Vec<_> = stats
        .iter()
        .map(|stat| {
            let counters = state.dispatcher.counters(&stat.handler).unwrap_or_default();
            (stat.handler.as_str(), counters)
        })
        .collect();

    text.family(
        "choreo_deliveries_total",
        "counter",
        "Delivery outcomes per handler: acked, retried, dead_lettered, failed (the commit failed), lease_lost (committed after the lease expired).",
    );
    for (handler, c) in &counters {
        for (outcome, count) in [
            ("acked", c.acked),
            ("retried", c.retried),
            ("dead_lettered", c.dead_lettered),
            ("failed", c.commits_failed),
            ("lease_lost", c.leases_lost),
        ] {
            text.sample(
                "choreo_deliveries_total",
                &[("handler", handler), ("outcome", outcome)],
                count,
            );
        }
    }

    text.family(
        "choreo_guest_traps_total",
        "counter",
        "Guest traps per handler by kind.",
    );
    for (handler, c) in &counters {
        for (kind, count) in &c.traps {
            text.sample(
                "choreo_guest_traps_total",
                &[("handler", handler), ("kind", kind)],
                *count,
            );
        }
    }

    text.family(
        "choreo_delivery_call_seconds",
        "histogram",
        "Time in the handler's `handle` call, every attempt.",
    );
    for (handler, c) in &counters {
        text.histogram("choreo_delivery_call_seconds", handler, &c.call_latency);
    }
    text.family(
        "choreo_delivery_start_delay_seconds",
        "histogram",
        "From an event's `time` attribute to the start of its first delivery.",
    );
    for (handler, c) in &counters {
        text.histogram(
            "choreo_delivery_start_delay_seconds",
            handler,
            &c.start_delay,
        );
    }

    let gauges: [(&str, &str, Gauge); 4] = [
        (
            "choreo_queue_depth",
            "Events waiting or in flight per handler.",
            |s, _| s.queue_depth as u64,
        ),
        (
            "choreo_queue_in_flight",
            "Deliveries leased and not yet committed per handler.",
            |s, _| s.in_flight as u64,
        ),
        (
            "choreo_queue_lag",
            "Per handler, how far behind the log it is: newest durable seq minus its oldest queued seq, plus one; 0 with an empty queue.",
            |s, head| {
                s.oldest_pending_seq
                    .map_or(0, |oldest| head.saturating_sub(oldest).saturating_add(1))
            },
        ),
        (
            "choreo_dead_letters",
            "Dead-letters kept for replay per handler.",
            |s, _| s.dead_letters as u64,
        ),
    ];
    for (name, help, value) in gauges {
        text.family(name, "gauge", help);
        for stat in &stats {
            text.sample(
                name,
                &[("handler", stat.handler.as_str())],
                value(stat, head),
            );
        }
    }

    let deploys = state.registry.counts();
    text.family(
        "choreo_deploys_total",
        "counter",
        "Deploy attempts by result: succeeded (a version swapped in) or failed (a file that could not be deployed).",
    );
    text.sample(
        "choreo_deploys_total",
        &[("result", "succeeded")],
        deploys.succeeded,
    );
    text.sample(
        "choreo_deploys_total",
        &[("result", "failed")],
        deploys.failed,
    );

    text.family(
        "choreo_http_requests_total",
        "counter",
        "HTTP requests by route template, method and status.",
    );
    for ((route, method, status), count) in state.telemetry.requests() {
        text.sample(
            "choreo_http_requests_total",
            &[
                ("route", route),
                ("method", method),
                ("status", &status.to_string()),
            ],
            count,
        );
    }

    let mut response = Response::new(Full::new(Bytes::from(text.out)));
    *response.status_mut() = StatusCode::OK;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// A per-handler gauge's value, from its queue statistics and the log's newest seq.
type Gauge = fn(&choreo_broker::HandlerStats, u64) -> u64;

/// The exposition being written.
#[derive(Default)]
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{label}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
    }

    fn histogram(&mut self, name: &str, handler: &str, histogram: &HistogramSnapshot) {
        let bucket = format!("{name}_bucket");
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&histogram.cumulative) {
            let le = bound.to_string();
            self.sample(&bucket, &[("handler", handler), ("le", &le)], count);
        }
        self.sample(
            &bucket,
            &[("handler", handler), ("le", "+Inf")],
            histogram.count,
        );
        let sum = histogram.sum_micros as f64 / 1e6;
        self.sample(&format!("{name}_sum"), &[("handler", handler)], sum);
        self.sample(
            &format!("{name}_count"),
            &[("handler", handler)],
            histogram.count,
        );
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Help text escapes backslash and line feed.
fn escape_help(value: &str) -> String {
    value.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_escape_label_values() {
        let mut text = Text::default();
        text.sample("m", &[("a", "x\"y\\z\nw"), ("b", "plain")], 3);
        text.sample("n", &[], 1.5);
        assert_eq!(text.out, "m{a=\"x\\\"y\\\\z\\nw\",b=\"plain\"} 3\nn 1.5\n");
    }

    #[test]
    fn histograms_end_with_inf_sum_and_count() {
        let mut text = Text::default();
        let mut cumulative = vec![0; LATENCY_BUCKETS.len()];
        cumulative[1..].fill(2);
        let histogram = HistogramSnapshot {
            cumulative,
            count: 3,
            sum_micros: 1_500_000,
        };
        text.histogram("h", "x", &histogram);
        let lines: Vec<&str> = text.out.lines().collect();
        assert_eq!(lines[0], "h_bucket{handler=\"x\",le=\"0.0005\"} 0");
        assert_eq!(lines[1], "h_bucket{handler=\"x\",le=\"0.001\"} 2");
        let tail = &lines[lines.len() - 3..];
        assert_eq!(
            tail,
            [
                "h_bucket{handler=\"x\",le=\"+Inf\"} 3",
                "h_sum{handler=\"x\"} 1.5",
                "h_count{handler=\"x\"} 3",
            ]
        );
    }
}
