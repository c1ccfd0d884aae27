//! Operating choreo: dead-letters over HTTP and with `choreo dlq` (metrics and the topics
//! catalog are in `metrics`).

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{Api, CHOREO, DEADLINE, Dirs, Server, eventually};

/// Two attempts, quick retries without jitter: a trap dead-letters within a second.
pub const HOSTILE_MANIFEST: &str = r#"
[retry]
max_attempts = 2
initial_backoff_ms = 50
max_backoff_ms = 100
jitter = 0.0
"#;

/// How long one `choreo` client command may take.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// Runs the `choreo` binary with `args` against `api`.
async fn choreo(api: &Api, args: &[&str]) -> Output {
    let mut command = std::process::Command::new(CHOREO);
    command
        .args(args)
        .arg("--url")
        .arg(format!("http://{}", api.addr));
    let shown = format!("{command:?}");
    let run = tokio::task::spawn_blocking(move || command.output());
    tokio::time::timeout(COMMAND_DEADLINE, run)
        .await
        .unwrap_or_else(|_| panic!("{shown}: no exit within {COMMAND_DEADLINE:?}"))
        .unwrap()
        .unwrap_or_else(|e| panic!("{shown}: {e}"))
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn explain(output: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    )
}

pub async fn json_at(api: &Api, method: Method, path: &str, status: StatusCode) -> Value {
    let reply = api.request(method.clone(), path, &[], "").await.unwrap();
    assert_eq!(reply.status, status, "{method} {path}: {reply}");
    reply.json()
}

/// The dead-letters of `handler` once there are `count` of them that satisfy `check`.
async fn dead_letters(
    api: &Api,
    handler: &str,
    count: usize,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    eventually(
        &format!("{handler} has {count} dead-letters"),
        DEADLINE,
        async || {
            let page = json_at(
                api,
                Method::GET,
                &format!("/v1/dlq/{handler}"),
                StatusCode::OK,
            )
            .await;
            let letters = page["dead_letters"].as_array().unwrap().clone();
            if letters.len() == count && check(&letters) {
                Ok(letters)
            } else {
                Err(format!("{page}"))
            }
        },
    )
    .await
}

fn seq(value: &Value) -> u64 {
    value["seq"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_inspected_replayed_and_discarded_over_http() {
    let dirs = Dirs::create();
    dirs.deploy_component(
        "hostile",
        choreo_test_guests::HOSTILE,
        Some(HOSTILE_MANIFEST),
    );
    let server = Server::start(&dirs).await;
    let trap = seq(&server.publish("hostile.trap", &[], "t").await.unwrap());
    let reject = seq(&server.publish("hostile.reject", &[], "r").await.unwrap());
    let letters = dead_letters(&server, "hostile", 2, |_| true).await;

    let by_seq = |s: u64| letters.iter().find(|l| seq(l) == s).unwrap().clone();
    let trapped = by_seq(trap);
    assert_eq!(trapped["cause"], "retries-exhausted", "{trapped}");
    assert_eq!(trapped["attempts"], 2, "{trapped}");
    assert!(
        trapped["reason"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 2 attempts: "),
        "{trapped}"
    );
    assert!(
        trapped["last_error"]
            .as_str()
            .unwrap()
            .contains("unreachable"),
        "{trapped}"
    );
    assert_eq!(trapped["event"]["topic"], "hostile.trap", "{trapped}");
    assert_eq!(trapped["event"]["seq"], trap, "{trapped}");
    assert_eq!(trapped["event"]["specversion"], "1.0", "{trapped}");
    let rejected = by_seq(reject);
    assert_eq!(rejected["cause"], "rejected", "{rejected}");
    assert_eq!(rejected["attempts"], 1, "{rejected}");
    assert!(
        rejected["last_error"]
            .as_str()
            .unwrap()
            .contains("asked to reject"),
        "{rejected}"
    );

    let counts = json_at(&server, Method::GET, "/v1/dlq", StatusCode::OK).await;
    assert_eq!(
        counts["handlers"],
        serde_json::json!([{ "handler": "hostile", "dead_letters": 2 }])
    );
    let one = json_at(
        &server,
        Method::GET,
        &format!("/v1/dlq/hostile/{trap}"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(one, trapped);

    // Pages of one, chained by `next`.
    let first = json_at(
        &server,
        Method::GET,
        "/v1/dlq/hostile?limit=1",
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        first["dead_letters"].as_array().unwrap().len(),
        1,
        "{first}"
    );
    let next = first["next"].as_u64().unwrap();
    let second = json_at(
        &server,
        Method::GET,
        &format!("/v1/dlq/hostile?limit=1&after={next}"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(second["dead_letters"].as_array().unwrap().len(), 1);
    assert!(second["next"].is_null(), "the last page: {second}");
    assert_ne!(
        first["dead_letters"][0]["seq"],
        second["dead_letters"][0]["seq"]
    );

    // Replaying the trapped event runs it again: it dead-letters again after two new
    // attempts (not four: replay resets them), announced by a new `$dlq` event.
    let old_dlq_seq = trapped["dead_letter_seq"].as_u64().unwrap();
    let replayed = json_at(
        &server,
        Method::POST,
        &format!("/v1/dlq/hostile/{trap}/replay"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(replayed, serde_json::json!({ "replayed": 1 }));
    let again = dead_letters(&server, "hostile", 2, |letters| {
        letters
            .iter()
            .any(|l| seq(l) == trap && l["dead_letter_seq"].as_u64() > Some(old_dlq_seq))
    })
    .await;
    let again = again.iter().find(|l| seq(l) == trap).unwrap();
    assert_eq!(again["attempts"], 2, "attempts were reset: {again}");

    // Replaying all, then discarding one and the rest.
    let all = json_at(
        &server,
        Method::POST,
        "/v1/dlq/hostile/replay",
        StatusCode::OK,
    )
    .await;
    assert_eq!(all, serde_json::json!({ "replayed": 2 }));
    dead_letters(&server, "hostile", 2, |_| true).await;
    let discarded = json_at(
        &server,
        Method::DELETE,
        &format!("/v1/dlq/hostile/{reject}"),
        StatusCode::OK,
    )
    .await;
    assert_eq!(discarded, serde_json::json!({ "discarded": 1 }));
    let rest = json_at(&server, Method::DELETE, "/v1/dlq/hostile", StatusCode::OK).await;
    assert_eq!(rest, serde_json::json!({ "discarded": 1 }));
    dead_letters(&server, "hostile", 0, |_| true).await;

    // What cannot be served says why.
    for (method, path, status, kind) in [
        (
            Method::GET,
            format!("/v1/dlq/hostile/{reject}"),
            404,
            "dead-letter-not-found",
        ),
        (
            Method::POST,
            format!("/v1/dlq/hostile/{reject}/replay"),
            404,
            "dead-letter-not-found",
        ),
        (
            Method::DELETE,
            format!("/v1/dlq/hostile/{reject}"),
            404,
            "dead-letter-not-found",
        ),
        (
            Method::GET,
            "/v1/dlq/nobody".to_owned(),
            404,
            "unknown-handler",
        ),
        (
            Method::POST,
            "/v1/dlq/nobody/replay".to_owned(),
            404,
            "unknown-handler",
        ),
        (
            Method::GET,
            "/v1/dlq/hostile/twelve".to_owned(),
            400,
            "invalid-seq",
        ),
        (
            Method::POST,
            "/v1/dlq/hostile/-1/replay".to_owned(),
            400,
            "invalid-seq",
        ),
        (
            Method::GET,
            "/v1/dlq/hostile?limit=0".to_owned(),
            400,
            "invalid-parameter",
        ),
        (
            Method::GET,
            "/v1/dlq/hostile?after=x".to_owned(),
            400,
            "invalid-parameter",
        ),
        (
            Method::GET,
            "/v1/dlq/Not%20A%20Name".to_owned(),
            400,
            "invalid-handler",
        ),
        (
            Method::POST,
            "/v1/dlq".to_owned(),
            405,
            "method-not-allowed",
        ),
        (
            Method::POST,
            "/v1/dlq/hostile".to_owned(),
            405,
            "method-not-allowed",
        ),
        (
            Method::PUT,
            format!("/v1/dlq/hostile/{trap}"),
            405,
            "method-not-allowed",
        ),
        (
            Method::GET,
            format!("/v1/dlq/hostile/{trap}/replay"),
            405,
            "method-not-allowed",
        ),
        (
            Method::GET,
            "/v1/dlq/hostile/replay".to_owned(),
            405,
            "method-not-allowed",
        ),
    ] {
        let reply = server
            .request(method.clone(), &path, &[], "")
            .await
            .unwrap();
        assert_eq!(reply.status.as_u16(), status, "{method} {path}: {reply}");
        assert_eq!(reply.content_type, "application/problem+json", "{reply}");
        let problem = reply.json();
        assert_eq!(problem["type"], format!("/problems/{kind}"), "{reply}");
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{reply}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreo_dlq_lists_shows_replays_and_discards() {
    let dirs = Dirs::create();
    dirs.deploy_component(
        "hostile",
        choreo_test_guests::HOSTILE,
        Some(HOSTILE_MANIFEST),
    );
    let server = Server::start(&dirs).await;
    let mut seqs = BTreeSet::new();
    for _ in 0..3 {
        seqs.insert(seq(&server
            .publish("hostile.reject", &[], "r")
            .await
            .unwrap()));
    }
    dead_letters(&server, "hostile", 3, |_| true).await;

    let counts = choreo(&server, &["dlq", "list"]).await;
    assert!(counts.status.success(), "{}", explain(&counts));
    let row: Vec<String> = stdout(&counts)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(row, ["hostile", "3"], "{}", explain(&counts));

    let listed = choreo(&server, &["dlq", "list", "hostile"]).await;
    assert!(listed.status.success(), "{}", explain(&listed));
    let listed_seqs: BTreeSet<u64> = stdout(&listed)
        .lines()
        .skip(1)
        .map(|line| line.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(listed_seqs, seqs, "{}", explain(&listed));
    assert!(stdout(&listed).contains("rejected"), "{}", explain(&listed));

    let first = *seqs.first().unwrap();
    let shown = choreo(&server, &["dlq", "show", "hostile", &first.to_string()]).await;
    assert!(shown.status.success(), "{}", explain(&shown));
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["seq"], first);
    assert_eq!(shown["event"]["topic"], "hostile.reject");

    // Bulk actions must be asked for by name.
    for action in ["replay", "discard"] {
        let refused = choreo(&server, &["dlq", action, "hostile"]).await;
        assert!(!refused.status.success(), "{}", explain(&refused));
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("--all"),
            "{}",
            explain(&refused)
        );
    }
    dead_letters(&server, "hostile", 3, |_| true).await;

    let replayed = choreo(&server, &["dlq", "replay", "hostile", "--all"]).await;
    assert!(replayed.status.success(), "{}", explain(&replayed));
    assert!(
        stdout(&replayed).contains("replayed 3"),
        "{}",
        explain(&replayed)
    );
    // Rejected again at once, the three come back.
    dead_letters(&server, "hostile", 3, |_| true).await;

    let one = choreo(&server, &["dlq", "discard", "hostile", &first.to_string()]).await;
    assert!(one.status.success(), "{}", explain(&one));
    assert!(stdout(&one).contains("discarded 1"), "{}", explain(&one));
    let gone = choreo(&server, &["dlq", "show", "hostile", &first.to_string()]).await;
    assert!(!gone.status.success(), "{}", explain(&gone));
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("404"),
        "{}",
        explain(&gone)
    );
    let rest = choreo(&server, &["dlq", "discard", "hostile", "--all"]).await;
    assert!(rest.status.success(), "{}", explain(&rest));
    assert!(stdout(&rest).contains("discarded 2"), "{}", explain(&rest));
    dead_letters(&server, "hostile", 0, |_| true).await;
}
