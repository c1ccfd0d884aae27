//! The read side: [`Request`] as routed to a handler's `query` export, and the
//! [`Response`] builder, whose errors are `application/problem+json` like the rest of choreo.

use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::choreo::handler::types as wit;

/// A read-side request: `GET|POST /v1/query/<handler><path>`.
#[derive(Clone)]
pub struct Request {
    raw: wit::Request,
}

impl Request {
    /// A request with `method` and `path` and nothing else; meant for unit tests.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self {
            raw: wit::Request {
                method: method.into(),
                path: path.into(),
                query: String::new(),
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }

    /// Sets the raw query string (without `?`).
    pub fn with_query(mut self, query: impl Into<String>) -> Self {
        self.raw.query = query.into();
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.raw.body = body.into();
        self
    }

    /// The HTTP method, upper case: `GET` or `POST`.
    pub fn method(&self) -> &str {
        &self.raw.method
    }

    /// The path after `/v1/query/<handler>`, starting with `/`.
    pub fn path(&self) -> &str {
        &self.raw.path
    }

    /// The non-empty segments of the path, as sent (not percent-decoded): `/counts/a.b/`
    /// gives `["counts", "a.b"]`. Handy with slice patterns.
    pub fn segments(&self) -> Vec<&str> {
        self.raw.path.split('/').filter(|s| !s.is_empty()).collect()
    }

    /// The raw query string without the leading `?`; empty when there is none.
    pub fn query(&self) -> &str {
        &self.raw.query
    }

    /// The first value of query parameter `name`, as sent (not percent-decoded).
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.raw
            .query
            .split('&')
            .find_map(|pair| match pair.split_once('=') {
                Some((n, v)) if n == name => Some(v),
                None if pair == name => Some(""),
                _ => None,
            })
    }

    /// The request headers, names in lower case.
    pub fn headers(&self) -> &[(String, String)] {
        &self.raw.headers
    }

    /// The first value of header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.raw
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body (empty for `GET`).
    pub fn body(&self) -> &[u8] {
        &self.raw.body
    }

    /// Decodes the body as JSON.
    ///
    /// # Errors
    ///
    /// A ready 400 problem response saying why, to return as is.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Response> {
        serde_json::from_slice(&self.raw.body)
            .map_err(|e| Response::problem(400, format!("invalid json body: {e}")))
    }

    /// The WIT record.
    pub fn raw(&self) -> &wit::Request {
        &self.raw
    }

    /// Takes the WIT record out.
    pub fn into_raw(self) -> wit::Request {
        self.raw
    }
}

impl From<wit::Request> for Request {
    fn from(raw: wit::Request) -> Self {
        Self { raw }
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

/// The answer to a [`Request`], sent to the HTTP client as is.
///
/// ```
/// # use choreo_sdk::Response;
/// let found = Response::json(200, &serde_json::json!({"orders": 3}));
/// assert_eq!(found.header_value("content-type"), Some("application/json"));
/// assert_eq!(Response::not_found().status(), 404);
/// ```
#[derive(Clone)]
pub struct Response {
    raw: wit::Response,
}

impl Response {
    /// An empty response with `status`.
    pub fn new(status: u16) -> Self {
        Self {
            raw: wit::Response {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            },
        }
    }

    /// `value` as JSON with `status`; a 500 problem if `value` cannot be encoded.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::new(status)
                .header("content-type", crate::emit::JSON)
                .body(body),
            Err(e) => Self::problem(500, format!("cannot encode the response as json: {e}")),
        }
    }

    /// `text` as `text/plain; charset=utf-8` with `status`.
    pub fn text(status: u16, text: impl Into<String>) -> Self {
        Self::new(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(text.into().into_bytes())
    }

    /// An `application/problem+json` error (RFC 9457) with `status` and a `detail` a person
    /// can act on.
    pub fn problem(status: u16, detail: impl Into<String>) -> Self {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": reason(status),
            "status": status,
            "detail": detail.into(),
        });
        Self::new(status)
            .header("content-type", "application/problem+json")
            .body(body.to_string().into_bytes())
    }

    /// A 404 problem: the default answer of `query`.
    pub fn not_found() -> Self {
        Self::problem(404, "this handler has nothing at this path")
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.raw.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.raw.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.raw.status
    }

    /// The first value of header `name` (compared case-insensitively).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.raw
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.raw.body
    }

    /// The WIT record handed to choreo.
    pub fn into_raw(self) -> wit::Response {
        self.raw
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

/// The reason phrase for the statuses a read side typically answers with.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        422 => "Unprocessable Content",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_skip_empty_parts() {
        assert_eq!(
            Request::new("GET", "/counts/orders.created/").segments(),
            ["counts", "orders.created"]
        );
        assert!(Request::new("GET", "/").segments().is_empty());
    }

    #[test]
    fn query_params_are_found_by_name() {
        let request = Request::new("GET", "/").with_query("a=1&flag&b=2");
        assert_eq!(request.query_param("b"), Some("2"));
        assert_eq!(request.query_param("flag"), Some(""));
        assert_eq!(request.query_param("c"), None);
    }

    #[test]
    fn not_found_is_a_problem_document() {
        let response = Response::not_found();
        assert_eq!(response.status(), 404);
        assert_eq!(
            response.header_value("Content-Type"),
            Some("application/problem+json")
        );
        let body: serde_json::Value = serde_json::from_slice(response.body_bytes()).unwrap();
        assert_eq!(body["status"], 404);
        assert_eq!(body["title"], "Not Found");
    }

    #[test]
    fn json_sets_content_type_and_body() {
        let response = Response::json(200, &serde_json::json!({"n": 1}));
        assert_eq!(response.status(), 200);
        assert_eq!(response.body_bytes(), br#"{"n":1}"#);
    }

    #[test]
    fn invalid_json_body_is_a_400() {
        let error = Request::new("POST", "/")
            .with_body("{")
            .json::<u32>()
            .unwrap_err();
        assert_eq!(error.status(), 400);
    }
}
