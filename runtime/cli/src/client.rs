//! The HTTP client the client commands (`publish`, `handlers`, `trace`, `tail`) share.

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// The API a client command talks to by default: `choreo serve`'s default address.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// The bearer token every request carries, set once from `--token` / `CHOREO_TOKEN`.
///
/// Decision: process-wide rather than a parameter of every command, because every client
/// command sends it the same way, and a command added later cannot forget it.
static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every later request carry `token`.
pub(crate) fn use_token(token: String) {
    let _ = TOKEN.set(token);
}

/// The `Authorization` header to send, if a token was given.
pub(crate) fn authorization() -> Option<String> {
    TOKEN.get().map(|token| format!("Bearer {token}"))
}

/// A response, fully read.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) body: Bytes,
}

/// Characters left as they are in a path segment or query value; everything else is
/// percent-encoded (RFC 3986 unreserved characters only).
const ENCODE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `text` percent-encoded for a path segment or a query value.
pub(crate) fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, ENCODE).to_string()
}

/// Sends a GET and returns the response as soon as its head arrives, for the caller to
/// read the body as it streams.
pub(crate) async fn open_stream(
    url: &str,
    headers: &[(&str, String)],
) -> anyhow::Result<http::Response<hyper::body::Incoming>> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(Method::GET).uri(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .body(Full::new(Bytes::new()))
        .with_context(|| format!("invalid request to {url}"))?;
    client
        .request(request)
        .await
        .with_context(|| format!("cannot reach choreo at {url} (is `choreo serve` running?)"))
}

/// Sends one request and reads the whole answer.
pub(crate) async fn send(
    method: Method,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> anyhow::Result<Answer> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if let Some(authorization) = authorization() {
        request = request.header(http::header::AUTHORIZATION, authorization);
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .with_context(|| format!("invalid request to {url}"))?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("cannot reach choreo at {url} (is `choreo serve` running?)"))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the answer failed")?
        .to_bytes();
    Ok(Answer { status, body })
}

/// Turns a non-success answer into an error carrying the server's problem detail.
pub(crate) fn expect_success(answer: Answer) -> anyhow::Result<Bytes> {
    if answer.status.is_success() {
        return Ok(answer.body);
    }
    let detail = serde_json::from_slice::<serde_json::Value>(&answer.body)
        .ok()
        .and_then(|problem| {
            problem
                .get("detail")
                .and_then(|d| d.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(&answer.body).into_owned());
    anyhow::bail!("choreo answered {}: {detail}", answer.status)
}
