//! Bearer tokens: who may read, publish where, and administer; what an unauthenticated
//! caller gets; the CLI sending its token; and `choreo serve` refusing an open API on a
//! non-loopback address.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use http::{Method, StatusCode};

use crate::harness::{CHOREO, Dirs, Server};

const READER: &str = "reader-secret-4b1d9e2f";
const ORDERS: &str = "orders-secret-7c3a5d10";
const OPS: &str = "ops-secret-from-the-environment";

/// A config file with three tokens; the admin one's secret comes from a variable.
fn config(dirs: &Dirs) -> String {
    let path = dirs.root().join("choreo.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[[tokens]]
name = "reader"
secret = "{READER}"
scopes = ["read"]

[[tokens]]
name = "orders"
secret = "{ORDERS}"
scopes = ["publish:orders.>"]

[[tokens]]
name = "ops"
secret_env = "CHOREO_E2E_OPS_TOKEN"
scopes = ["admin"]
"#
        ),
    )
    .unwrap();
    path.display().to_string()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_decide_who_may_read_publish_and_administer() {
    let dirs = Dirs::create();
    let config = config(&dirs);
    let server = Server::start_with(
        &dirs,
        &["--config", &config],
        &[("CHOREO_E2E_OPS_TOKEN", OPS)],
    )
    .await;
    let api = server.api();

    let health = api.get("/healthz").await.unwrap();
    assert_eq!(health.status, StatusCode::OK, "probes need no token");

    let anonymous = api.get("/v1/handlers").await.unwrap();
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED, "{anonymous}");
    assert_eq!(anonymous.content_type, "application/problem+json");
    let wrong = api
        .request(
            Method::GET,
            "/v1/handlers",
            &[("authorization", &bearer("not-a-real-token-at-all"))],
            "",
        )
        .await
        .unwrap();
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{wrong}");

    let reader_header = bearer(READER);
    let as_reader = [("authorization", reader_header.as_str())];
    let read = api
        .request(Method::GET, "/v1/events", &as_reader, "")
        .await
        .unwrap();
    assert_eq!(read.status, StatusCode::OK, "{read}");
    let refused = api
        .request(Method::POST, "/v1/topics/orders.created", &as_reader, "{}")
        .await
        .unwrap();
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{refused}");

    let orders_header = bearer(ORDERS);
    let as_orders = [("authorization", orders_header.as_str())];
    let published = api
        .request(Method::POST, "/v1/topics/orders.created", &as_orders, "{}")
        .await
        .unwrap();
    assert_eq!(published.status, StatusCode::ACCEPTED, "{published}");
    let elsewhere = api
        .request(
            Method::POST,
            "/v1/topics/payments.captured",
            &as_orders,
            "{}",
        )
        .await
        .unwrap();
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN, "{elsewhere}");
    let detail = elsewhere.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("`orders` may not publish to `payments.captured`")
            && detail.contains("publish:orders.>"),
        "{detail}"
    );
    // On /v1/events the topics are in the body: each one is checked, and a batch with
    // one forbidden topic appends nothing.
    let batch = serde_json::json!([
        {"specversion": "1.0", "id": "b-1", "source": "test://auth", "type": "t", "topic": "orders.paid"},
        {"specversion": "1.0", "id": "b-2", "source": "test://auth", "type": "t", "topic": "payments.captured"},
    ]);
    let mixed = api
        .request(
            Method::POST,
            "/v1/events",
            &[
                ("authorization", orders_header.as_str()),
                ("content-type", "application/cloudevents-batch+json"),
            ],
            serde_json::to_vec(&batch).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(mixed.status, StatusCode::FORBIDDEN, "{mixed}");
    assert!(
        mixed.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("event 1 of the batch: token `orders` may not publish"),
        "{mixed}"
    );
    let not_a_reader = api
        .request(Method::GET, "/v1/events", &as_orders, "")
        .await
        .unwrap();
    assert_eq!(not_a_reader.status, StatusCode::FORBIDDEN, "{not_a_reader}");

    let ops_header = bearer(OPS);
    let as_ops = [("authorization", ops_header.as_str())];
    let anything = api
        .request(Method::POST, "/v1/topics/payments.captured", &as_ops, "{}")
        .await
        .unwrap();
    assert_eq!(anything.status, StatusCode::ACCEPTED, "{anything}");
    let events = api
        .request(Method::GET, "/v1/events", &as_ops, "")
        .await
        .unwrap();
    assert_eq!(events.status, StatusCode::OK, "{events}");
    assert_eq!(
        events.json()["events"].as_array().unwrap().len(),
        2,
        "both accepted publishes are in the log, and no refused one: {events}"
    );

    // The CLI sends its token from --token or CHOREO_TOKEN.
    let url = format!("http://{}", api.addr);
    let with_token = cli(
        &["publish", "orders.shipped", "{}", "--url", &url],
        Some(ORDERS),
    );
    assert!(
        with_token.0,
        "choreo publish with a token: {}",
        with_token.1
    );
    let without = cli(&["publish", "orders.shipped", "{}", "--url", &url], None);
    assert!(!without.0, "choreo publish without a token must fail");
    assert!(without.1.contains("401"), "{}", without.1);

    let output = server.output();
    for secret in [READER, ORDERS, OPS] {
        assert!(!output.contains(secret), "a token secret was logged");
    }
}

#[test]
fn an_open_api_is_refused_off_loopback() {
    let dirs = Dirs::create();
    let mut child = Command::new(CHOREO)
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(dirs.data())
        .arg("--deploy-dir")
        .arg(dirs.deploy())
        .env_remove("CHOREO_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait(&mut child, "choreo serve on 0.0.0.0 without tokens");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0 without tokens"),
        "{stderr}"
    );
}

/// Runs a client command; whether it succeeded, and what it printed to stderr.
fn cli(args: &[&str], token: Option<&str>) -> (bool, String) {
    let mut command = Command::new(CHOREO);
    command
        .args(args)
        .env_remove("CHOREO_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("CHOREO_TOKEN", token);
    }
    let mut child = command.spawn().unwrap();
    let status = wait(&mut child, "a client command");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.success(), stderr)
}

/// Waits for `child` to exit, killing it and failing the test after a deadline.
fn wait(child: &mut std::process::Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{what} did not exit within a minute");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
