//! The harness: a fresh temp dir per test, the real `choreo serve` started on a random
//! port, a small HTTP client for its API, and `eventually` for waiting with a deadline.
//!
//! [`Dirs`] owns the temp dir (a data dir and a deploy dir) and outlives servers, so a test
//! can kill a server and start another on the same dirs. [`Server::start`] spawns the
//! binary with `--listen 127.0.0.1:0`, reads its stderr until the `listening on http://`
//! line (with a deadline), then polls `/readyz` until it answers 200 (with a deadline).
//! Two threads keep capturing the server's stdout and stderr for as long as it runs; when
//! a test fails (panics) while a server is alive, dropping it prints everything the server
//! wrote. Dropping a server kills it (SIGKILL).
//!
//! Deadlines are generous: the suite runs a debug build on a loaded 2-core machine.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;

/// The real binary, built by cargo for this test target.
pub const CHOREO: &str = env!("CARGO_BIN_EXE_choreo");

/// How long the server may take to print `listening on`.
const LISTEN_DEADLINE: Duration = Duration::from_secs(60);
/// How long the server may take to load the components present at startup and report ready.
const READY_DEADLINE: Duration = Duration::from_secs(120);
/// How long one HTTP request may take before the test gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How often `eventually` checks again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long the API client keeps an idle connection: below the idle timeout of every
/// server the tests start (75 s by default, 1 s where a test sets it lower, which the
/// client never idles that long in).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(20);

/// The default deadline for "this will happen": long enough for a debug build on a busy
/// machine to work through a few thousand deliveries.
pub const DEADLINE: Duration = Duration::from_secs(180);

/// How long a large component (Python, JavaScript) may take to compile and deploy: seconds
/// with an optimised wasmtime, many times that on a loaded two-core machine.
pub const DEPLOY_DEADLINE: Duration = Duration::from_secs(600);

/// A test's temp dir, holding the data dir and the deploy dir.
#[derive(Debug)]
pub struct Dirs {
    root: tempfile::TempDir,
}

impl Dirs {
    pub fn create() -> Self {
        let root = tempfile::Builder::new()
            .prefix("choreo-e2e-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(root.path().join("deploy")).unwrap();
        Dirs { root }
    }

    /// The temp dir itself, for files beside the data and deploy dirs (a config file).
    pub fn root(&self) -> &std::path::Path {
        self.root.path()
    }

    pub fn data(&self) -> PathBuf {
        self.root.path().join("data")
    }

    pub fn deploy(&self) -> PathBuf {
        self.root.path().join("deploy")
    }

    /// Puts the component at `wasm` into the deploy dir as `<stem>.wasm`, with
    /// `<stem>.toml` first when a manifest is given. Both are written under a hidden temp
    /// name and renamed, so the watcher only ever sees whole files.
    pub fn deploy_component(&self, stem: &str, wasm: &str, manifest: Option<&str>) {
        if let Some(manifest) = manifest {
            self.write_atomically(&format!("{stem}.toml"), manifest.as_bytes());
        }
        let bytes = std::fs::read(wasm).unwrap_or_else(|e| panic!("reading {wasm}: {e}"));
        self.write_atomically(&format!("{stem}.wasm"), &bytes);
    }

    /// Writes `name` in the deploy dir so that it appears whole (temp file, then rename).
    pub fn write_atomically(&self, name: &str, bytes: &[u8]) {
        let temp = self.deploy().join(format!(".{name}.writing"));
        std::fs::write(&temp, bytes).unwrap();
        std::fs::rename(&temp, self.deploy().join(name)).unwrap();
    }

    /// Writes `name` in the deploy dir in place, as a tool that cannot rename would.
    pub fn write_in_place(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.deploy().join(name), bytes).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.deploy().join(name)).unwrap();
    }
}

/// What the server wrote, stdout and stderr interleaved by line, each line marked.
type Output = Arc<Mutex<String>>;

/// A running `choreo serve`. Killed when dropped; prints its output if the test failed.
/// Derefs to its [`Api`].
#[derive(Debug)]
pub struct Server {
    child: Child,
    api: Api,
    output: Output,
    command: String,
}

impl std::ops::Deref for Server {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A client of one server's HTTP API. Cheap to clone, so publisher tasks each take one.
#[derive(Debug, Clone)]
pub struct Api {
    pub addr: SocketAddr,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Server {
    /// Starts `choreo serve` on `dirs` and waits until it is ready.
    pub async fn start(dirs: &Dirs) -> Server {
        Server::start_with(dirs, &[], &[]).await
    }

    /// Starts `choreo serve` on `dirs` with `extra` flags and `env` variables, and waits
    /// until it is ready. It listens on a free port unless `extra` has a `--listen`.
    pub async fn start_with(dirs: &Dirs, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_through(&[], dirs, extra, env).await
    }

    /// Like [`Server::start_with`], run through `wrapper` (a command that ends by running
    /// its arguments, such as `nsenter … --`) when it is not empty.
    pub async fn start_through(
        wrapper: &[&str],
        dirs: &Dirs,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Server {
        let mut args = vec!["serve".to_owned()];
        if !extra.contains(&"--listen") {
            args.extend(["--listen".to_owned(), "127.0.0.1:0".to_owned()]);
        }
        args.extend([
            "--data-dir".to_owned(),
            dirs.data().display().to_string(),
            "--deploy-dir".to_owned(),
            dirs.deploy().display().to_string(),
        ]);
        args.extend(extra.iter().map(|arg| (*arg).to_owned()));
        let command = format!(
            "CHOREO_LOG=info {}{CHOREO} {}",
            wrapper
                .iter()
                .map(|word| format!("{word} "))
                .collect::<String>(),
            args.join(" ")
        );
        let mut child = match wrapper.split_first() {
            Some((program, wrapper_args)) => {
                let mut command = Command::new(program);
                command.args(wrapper_args).arg(CHOREO);
                command
            }
            None => Command::new(CHOREO),
        };
        let mut child = child
            .args(&args)
            .env("CHOREO_LOG", "info")
            .env("NO_COLOR", "1")
            .env_remove("CHOREO_LOG_FORMAT")
            .env_remove("CHOREO_CONFIG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let output: Output = Arc::default();
        let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
        capture(child.stdout.take().unwrap(), "out", output.clone(), None);
        capture(
            child.stderr.take().unwrap(),
            "err",
            output.clone(),
            Some(addr_tx),
        );
        // Pooled connections are dropped well before the server's idle timeout closes
        // them, so that no request races a close.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .build_http();
        let mut server = Server {
            child,
            // Replaced as soon as the server says where it listens.
            api: Api {
                addr: SocketAddr::from(([127, 0, 0, 1], 0)),
                client,
            },
            output,
            command,
        };
        server.api.addr = match tokio::time::timeout(LISTEN_DEADLINE, addr_rx).await {
            Ok(Ok(addr)) => addr,
            Ok(Err(_)) => panic!(
                "choreo serve exited ({:?}) without printing `listening on http://`",
                server.child.try_wait()
            ),
            Err(_) => panic!(
                "choreo serve did not print `listening on http://` within {LISTEN_DEADLINE:?}"
            ),
        };
        let started = Instant::now();
        loop {
            if let Ok(response) = server.get("/readyz").await
                && response.status == StatusCode::OK
            {
                break;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("choreo serve exited ({status}) before it was ready");
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "choreo serve was not ready within {READY_DEADLINE:?}"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
        server
    }

    /// `kill -9`: the server gets no chance to flush or finish anything.
    pub fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits (up to `deadline`) for the server to exit; its exit status.
    pub async fn terminate(&mut self, deadline: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < deadline,
                "choreo serve did not exit within {deadline:?} of SIGTERM"
            );
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Everything the server wrote so far.
    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// A client of this server's API, to move into a task.
    pub fn api(&self) -> Api {
        self.api.clone()
    }
}

impl Api {
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Result<Reply, String> {
        let mut request = Request::builder()
            .method(method.clone())
            .uri(format!("http://{}{path}", self.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).unwrap();
        let send = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{method} {path}: {e:?}"))?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|e| format!("{method} {path}: reading the body: {e}"))?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(REQUEST_TIMEOUT, send)
            .await
            .unwrap_or_else(|_| Err(format!("{method} {path}: no answer in {REQUEST_TIMEOUT:?}")))
    }

    pub async fn get(&self, path: &str) -> Result<Reply, String> {
        self.request(Method::GET, path, &[], Bytes::new()).await
    }

    /// `POST /v1/topics/{topic}`; the 202 answer's JSON, or why there was none.
    pub async fn publish(
        &self,
        topic: &str,
        headers: &[(&str, &str)],
        data: impl Into<Bytes>,
    ) -> Result<Value, String> {
        let reply = self
            .request(Method::POST, &format!("/v1/topics/{topic}"), headers, data)
            .await?;
        if reply.status != StatusCode::ACCEPTED {
            return Err(format!("publish to {topic}: {reply}"));
        }
        Ok(reply.json())
    }

    /// `GET /v1/handlers`.
    pub async fn handlers(&self) -> Value {
        let reply = self.get("/v1/handlers").await.unwrap();
        assert_eq!(reply.status, StatusCode::OK, "{reply}");
        reply.json()
    }

    /// One handler's entry in `/v1/handlers`, `Value::Null` when it is not listed.
    pub async fn handler(&self, name: &str) -> Value {
        self.handlers().await["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// Waits until `name` is listed as running (deployed and being delivered to).
    pub async fn wait_running(&self, name: &str, deadline: Duration) {
        eventually(&format!("{name} is deployed"), deadline, async || {
            let handler = self.handler(name).await;
            if handler["status"] == "running" {
                Ok(())
            } else {
                Err(format!("{handler} (all: {})", self.handlers().await))
            }
        })
        .await;
    }

    /// Every event in the log matching `pattern`, in seq order, read page by page.
    pub async fn events(&self, pattern: &str) -> Vec<Value> {
        let pattern = percent_encode(pattern);
        let mut events = Vec::new();
        let mut after = 0u64;
        loop {
            let path = format!("/v1/events?pattern={pattern}&after={after}&limit=1000");
            let reply = self.get(&path).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK, "GET {path}: {reply}");
            let page = reply.json();
            let batch = page["events"].as_array().unwrap().clone();
            let next = page["next"].as_u64().unwrap();
            let empty = batch.is_empty();
            events.extend(batch);
            // An empty page that does not move the cursor is the end of the log.
            if empty && next <= after {
                return events;
            }
            after = next;
        }
    }

    /// `GET /v1/query/{handler}/{path}`: the handler's read side.
    pub async fn query(&self, handler: &str, path: &str) -> Reply {
        self.get(&format!("/v1/query/{handler}/{path}"))
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "\n===== choreo serve at {} ({}) wrote:\n{}===== end of server output\n",
                self.addr,
                self.command,
                self.output()
            );
        }
    }
}

/// Reads one of the child's streams line by line into `output` until it closes; on
/// stderr, sends the address of the `listening on http://ADDR` line.
fn capture(
    stream: impl Read + Send + 'static,
    label: &'static str,
    output: Output,
    mut addr_tx: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&line);
            if let Some(addr) = listening_address(&text)
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(addr);
            }
            let mut output = output.lock().unwrap();
            let _ = write!(output, "[{label}] {}", text.trim_end());
            output.push('\n');
            line.clear();
        }
    });
}

/// The address in a `listening on http://ADDR` log line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// An HTTP answer, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: StatusCode,
    pub content_type: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// Whether this is an `application/problem+json` answer with `status`, in the status
    /// line and in the body, whose `detail` contains `mentions`.
    pub fn is_problem(&self, status: StatusCode, mentions: &str) -> bool {
        let problem: Option<serde_json::Value> = serde_json::from_slice(&self.body).ok();
        self.status == status
            && self.content_type == "application/problem+json"
            && problem.as_ref().is_some_and(|p| {
                p["status"] == status.as_u16()
                    && p["detail"].as_str().is_some_and(|d| d.contains(mentions))
            })
    }

    /// A response header as text, `""` when absent.
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("the body is not JSON ({e}): {self}"))
    }
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}) {}",
            self.status,
            self.content_type,
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// Checks until `check` returns `Ok`, every [`POLL_INTERVAL`], for at most `deadline`;
/// then panics with `what` and the last reason `check` gave.
pub async fn eventually<T>(
    what: &str,
    deadline: Duration,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let started = Instant::now();
    loop {
        match check().await {
            Ok(value) => return value,
            Err(reason) if started.elapsed() >= deadline => {
                panic!("{what}: still not true after {deadline:?}; last check: {reason}")
            }
            Err(_) => tokio::time::sleep(POLL_INTERVAL).await,
        }
    }
}
