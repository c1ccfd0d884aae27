//! The deployer against real folders (temp dirs) and real components.

// Tests may unwrap (STYLE 4); clippy's `allow-unwrap-in-tests` does not reach the
// helpers below, which are not `#[test]` functions themselves.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use choreo_core::HandlerName;
use choreo_deploy::{
    Change, DeployConfig, Deployer, Deployment, Error, Manifest, Problem, Registry, SPARE_ARTIFACTS,
};
use choreo_host::Host;
use choreo_test_guests::{BAD_NAME, COUNTER, ECHO, WRONG_WORLD};
use tokio::sync::{mpsc, oneshot};

/// How long a condition may take: compiling a component on a busy two-core machine
/// takes seconds, not minutes.
const PATIENCE: Duration = Duration::from_secs(90);

fn host() -> Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("engine builds"))
        .clone()
}

fn name(text: &str) -> HandlerName {
    HandlerName::new(text).unwrap()
}

/// Polls `check` until it holds, or fails the test with `what` after [`PATIENCE`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A deploy folder and a cache folder in a fresh temp dir.
struct Fixture {
    tmp: tempfile::TempDir,
    deploy_dir: PathBuf,
    cache_dir: PathBuf,
}

impl Fixture {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let deploy_dir = tmp.path().join("deploy");
        let cache_dir = tmp.path().join("cache");
        Fixture {
            tmp,
            deploy_dir,
            cache_dir,
        }
    }

    fn deployer(&self) -> Deployer {
        let mut config = DeployConfig::new(&self.deploy_dir, &self.cache_dir);
        config.debounce = Duration::from_millis(50);
        Deployer::new(host(), config).unwrap()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.deploy_dir.join(file)
    }

    fn write(&self, file: &str, bytes: impl AsRef<[u8]>) {
        std::fs::write(self.path(file), bytes).unwrap();
    }

    fn copy(&self, guest: &str, file: &str) {
        std::fs::copy(guest, self.path(file)).unwrap();
    }
}

/// A running [`Deployer::watch`] and the changes it sent.
struct Watching {
    changes: mpsc::Receiver<Change>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Result<(), Error>>,
}

impl Watching {
    fn start(deployer: &Deployer) -> Self {
        let (tx, changes) = mpsc::channel(16);
        let (stop, stopped) = oneshot::channel::<()>();
        let deployer = deployer.clone();
        let task = tokio::spawn(async move {
            deployer
                .watch(tx, async {
                    let _ = stopped.await;
                })
                .await
        });
        Watching {
            changes,
            stop: Some(stop),
            task,
        }
    }

    async fn next(&mut self) -> Change {
        tokio::time::timeout(PATIENCE, self.changes.recv())
            .await
            .expect("a change arrives in time")
            .expect("the watch is running")
    }

    async fn next_deployed(&mut self) -> Arc<Deployment> {
        match self.next().await {
            Change::Deployed(deployment) => deployment,
            other => panic!("expected a deployment, got {other:?}"),
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

/// `wasm` with a custom section appended: the same component, with another hash.
fn with_custom_section(wasm: &[u8], payload: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let section_name = b"choreo-test";
    let mut body = Vec::new();
    leb(section_name.len(), &mut body);
    body.extend_from_slice(section_name);
    body.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

fn sha256_of(path: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

fn problem_for(registry: &Registry, file: &Path) -> Option<Problem> {
    registry
        .problems()
        .into_iter()
        .find(|problem| problem.file == file)
}

async fn with_timeout<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, future).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_loads_every_component_present() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    fx.copy(ECHO, "echo.wasm");
    fx.copy(COUNTER, "counter.wasm");
    fx.copy(BAD_NAME, "bad.wasm");
    fx.write("counter.toml", "concurrency = 2\n");

    let changes = with_timeout(deployer.scan()).await;

    assert_eq!(changes.len(), 2, "{changes:?}");
    let registry = deployer.registry();
    let names: Vec<String> = registry
        .list()
        .iter()
        .map(|d| d.name().to_string())
        .collect();
    assert_eq!(names, ["counter", "echo"]);
    let echo = registry.get(&name("echo")).unwrap();
    assert_eq!(echo.file, fx.path("echo.wasm"));
    assert_eq!(echo.content_hash, sha256_of(ECHO));
    assert_eq!(echo.manifest, Manifest::default());
    assert!(!echo.from_cache);
    let counter = registry.get(&name("counter")).unwrap();
    assert_eq!(counter.manifest.concurrency, 2);
    assert_eq!(counter.subscription().concurrency, 2);
    let problems = registry.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].file, fx.path("bad.wasm"));
    assert!(problems[0].message.contains("invalid name"), "{problems:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_deploys_a_new_file() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    assert!(deployer.scan().await.is_empty());
    let mut watching = Watching::start(&deployer);

    fx.copy(ECHO, "echo.wasm");

    let deployed = watching.next_deployed().await;
    assert_eq!(deployed.name().as_str(), "echo");
    assert!(deployer.registry().get(&name("echo")).is_some());
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_component_is_redeployed_and_holders_keep_the_old_version() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    fx.copy(ECHO, "echo.wasm");
    with_timeout(deployer.scan()).await;
    let old = deployer.registry().get(&name("echo")).unwrap();
    let mut watching = Watching::start(&deployer);

    let new_bytes = with_custom_section(&std::fs::read(ECHO).unwrap(), "v2");
    fx.write("echo.wasm", &new_bytes);

    let new = watching.next_deployed().await;
    assert_eq!(new.name().as_str(), "echo");
    assert_ne!(new.content_hash, old.content_hash);
    let current = deployer.registry().get(&name("echo")).unwrap();
    assert!(Arc::ptr_eq(&current, &new));
    // A caller that took the old version still has it, whole.
    assert_eq!(old.content_hash, sha256_of(ECHO));
    assert_eq!(old.handler.info().name.as_str(), "echo");
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_change_alone_redeploys_and_a_broken_one_keeps_the_running_version() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    fx.copy(ECHO, "echo.wasm");
    with_timeout(deployer.scan()).await;
    let mut watching = Watching::start(&deployer);

    fx.write("echo.toml", "concurrency = 3\n[config]\nmode = \"loud\"\n");
    let deployed = watching.next_deployed().await;
    assert_eq!(deployed.manifest.concurrency, 3);
    assert_eq!(deployed.manifest.config["mode"], "loud");
    assert!(
        deployed.from_cache,
        "a manifest change reuses the compiled artifact"
    );

    fx.write("echo.toml", "concurency = 4\n");
    let registry = deployer.registry();
    let manifest_path = fx.path("echo.toml");
    eventually("the broken manifest is a problem", || {
        problem_for(&registry, &manifest_path).is_some()
    })
    .await;
    let message = problem_for(&registry, &manifest_path).unwrap().message;
    assert!(
        message.contains("echo.toml: unknown key `concurency`"),
        "{message}"
    );
    assert_eq!(registry.get(&name("echo")).unwrap().manifest.concurrency, 3);

    fx.write("echo.toml", "concurrency = 4\n");
    let deployed = watching.next_deployed().await;
    assert_eq!(deployed.manifest.concurrency, 4);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_component_leaves_the_running_version_and_is_a_problem() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    fx.copy(ECHO, "echo.wasm");
    with_timeout(deployer.scan()).await;
    let registry = deployer.registry();
    let original = sha256_of(ECHO);
    let mut watching = Watching::start(&deployer);
    let file = fx.path("echo.wasm");
    let echo = std::fs::read(ECHO).unwrap();

    let cases: [(&str, Vec<u8>, &str); 3] = [
        (
            "a truncated copy",
            echo[..echo.len() / 2].to_vec(),
            "does not compile",
        ),
        ("garbage", b"not wasm at all".to_vec(), "does not compile"),
        (
            "a component of another world",
            std::fs::read(WRONG_WORLD).unwrap(),
            "does not fit the choreo:handler@0.1 world",
        ),
    ];
    for (what, bytes, expected) in cases {
        let before = problem_for(&registry, &file);
        fx.write("echo.wasm", &bytes);
        eventually(&format!("{what} is reported"), || {
            let now = problem_for(&registry, &file);
            now != before && now.is_some_and(|problem| problem.message.contains(expected))
        })
        .await;
        assert_eq!(
            registry.get(&name("echo")).unwrap().content_hash,
            original,
            "{what} replaced the running version"
        );
    }

    fx.write("echo.wasm", with_custom_section(&echo, "fixed"));
    let deployed = watching.next_deployed().await;
    assert_ne!(deployed.content_hash, original);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_and_temp_files_are_ignored() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    let mut watching = Watching::start(&deployer);

    for ignored in [
        ".echo.wasm",
        "echo.wasm.tmp",
        "echo.wasm~",
        "echo.wasm.part",
        ".echo.wasm.swp",
        "echo.txt",
    ] {
        fx.copy(ECHO, ignored);
    }
    fx.write("garbage.wasm.tmp", b"not wasm");
    // Written last: once it is deployed, every file above has had its chance.
    fx.copy(COUNTER, "counter.wasm");

    let deployed = watching.next_deployed().await;
    assert_eq!(deployed.name().as_str(), "counter");
    let registry = deployer.registry();
    assert_eq!(registry.list().len(), 1);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    assert!(watching.changes.try_recv().is_err());
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_file_sends_removed_and_re_adding_deploys_again() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    fx.copy(ECHO, "echo.wasm");
    with_timeout(deployer.scan()).await;
    let mut watching = Watching::start(&deployer);

    std::fs::remove_file(fx.path("echo.wasm")).unwrap();
    match watching.next().await {
        Change::Removed(removed) => assert_eq!(removed.as_str(), "echo"),
        other => panic!("expected a removal, got {other:?}"),
    }
    assert!(deployer.registry().get(&name("echo")).is_none());

    fx.copy(ECHO, "echo.wasm");
    let deployed = watching.next_deployed().await;
    assert_eq!(deployed.name().as_str(), "echo");
    assert!(deployed.from_cache);
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_files_declaring_one_name_are_a_conflict_until_the_owner_leaves() {
    let fx = Fixture::new();
    let deployer = fx.deployer();
    fx.copy(ECHO, "a.wasm");
    with_timeout(deployer.scan()).await;
    let registry = deployer.registry();
    let mut watching = Watching::start(&deployer);

    fx.copy(ECHO, "b.wasm");
    let b = fx.path("b.wasm");
    eventually("the conflict is reported", || {
        problem_for(&registry, &b).is_some()
    })
    .await;
    assert_eq!(
        problem_for(&registry, &b).unwrap().message,
        "`b.wasm` declares handler `echo`, already deployed from `a.wasm`"
    );
    assert_eq!(registry.get(&name("echo")).unwrap().file, fx.path("a.wasm"));

    std::fs::remove_file(fx.path("a.wasm")).unwrap();
    match watching.next().await {
        Change::Removed(removed) => assert_eq!(removed.as_str(), "echo"),
        other => panic!("expected a removal, got {other:?}"),
    }
    let deployed = watching.next_deployed().await;
    assert_eq!(deployed.file, b);
    assert!(registry.problems().is_empty(), "{:?}", registry.problems());
    watching.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_artifact_cache_is_used_and_a_corrupt_artifact_is_recompiled() {
    let fx = Fixture::new();
    let first = fx.deployer();
    fx.copy(ECHO, "echo.wasm");
    with_timeout(first.scan()).await;
    assert!(!first.registry().get(&name("echo")).unwrap().from_cache);
    let artifact = fx
        .cache_dir
        .join(host().artifact_fingerprint())
        .join(format!("{}.cwasm", sha256_of(ECHO)));
    assert!(artifact.is_file(), "{} was not written", artifact.display());

    let second = fx.deployer();
    with_timeout(second.scan()).await;
    assert!(second.registry().get(&name("echo")).unwrap().from_cache);

    std::fs::write(&artifact, b"corrupt artifact").unwrap();
    let third = fx.deployer();
    with_timeout(third.scan()).await;
    let echo = third.registry().get(&name("echo")).unwrap();
    assert!(!echo.from_cache);
    assert!(third.registry().problems().is_empty());

    let fourth = fx.deployer();
    with_timeout(fourth.scan()).await;
    assert!(fourth.registry().get(&name("echo")).unwrap().from_cache);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_what_is_deployed_and_the_newest_spares() {
    let fx = Fixture::new();
    let ours = fx.cache_dir.join(host().artifact_fingerprint());
    let foreign = fx.cache_dir.join("another-engine");
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::write(foreign.join("old.cwasm"), b"x").unwrap();
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(24 * 3600);
    let spares = SPARE_ARTIFACTS + 3;
    for i in 0..spares {
        let path = ours.join(format!("unused{i:02}.cwasm"));
        std::fs::write(&path, b"x").unwrap();
        // unused00 is the least recently used.
        let used = long_ago + Duration::from_secs(60 * i as u64);
        std::fs::File::open(&path)
            .unwrap()
            .set_modified(used)
            .unwrap();
    }
    let stale_temp = ours.join(".crashed.cwasm.1.0.tmp");
    std::fs::write(&stale_temp, b"x").unwrap();
    std::fs::File::open(&stale_temp)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    let fresh_temp = ours.join(".writing.cwasm.1.1.tmp");
    std::fs::write(&fresh_temp, b"x").unwrap();

    let deployer = fx.deployer();
    fx.copy(ECHO, "echo.wasm");
    with_timeout(deployer.scan()).await;
    assert!(deployer.registry().get(&name("echo")).is_some());

    assert!(!foreign.exists(), "another engine's artifacts are removed");
    assert!(
        ours.join(format!("{}.cwasm", sha256_of(ECHO))).is_file(),
        "the deployed component's artifact stays"
    );
    for i in 0..spares {
        let kept = ours.join(format!("unused{i:02}.cwasm")).exists();
        assert_eq!(
            kept,
            i >= 3,
            "unused{i:02}: only the {SPARE_ARTIFACTS} newest stay"
        );
    }
    assert!(!stale_temp.exists(), "a temp file left by a crash goes");
    assert!(fresh_temp.exists(), "a temp file being written stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_copies_the_component_and_its_manifest_atomically() {
    let fx = Fixture::new();
    let source = fx.tmp.path().join("build");
    std::fs::create_dir_all(&source).unwrap();
    std::fs::copy(ECHO, source.join("orders.wasm")).unwrap();
    std::fs::write(source.join("orders.toml"), "concurrency = 2\n").unwrap();

    let installed = choreo_deploy::install(&source.join("orders.wasm"), &fx.deploy_dir).unwrap();

    assert_eq!(installed, fx.path("orders.wasm"));
    assert_eq!(
        std::fs::read(&installed).unwrap(),
        std::fs::read(ECHO).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(fx.path("orders.toml")).unwrap(),
        "concurrency = 2\n"
    );
    let mut names: Vec<String> = std::fs::read_dir(&fx.deploy_dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["orders.toml", "orders.wasm"],
        "no temp file is left"
    );

    std::fs::copy(ECHO, source.join(".hidden.wasm")).unwrap();
    let err = choreo_deploy::install(&source.join(".hidden.wasm"), &fx.deploy_dir).unwrap_err();
    assert!(matches!(err, Error::NotDeployable { .. }), "{err}");
    let err = choreo_deploy::install(&source.join("orders.toml"), &fx.deploy_dir).unwrap_err();
    assert!(err.to_string().contains("only `.wasm` files"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_file_reports_the_handler_and_refuses_another_world() {
    let info = with_timeout(choreo_deploy::validate_file(&host(), Path::new(ECHO)))
        .await
        .unwrap();
    assert_eq!(info.name.as_str(), "echo");

    let err = with_timeout(choreo_deploy::validate_file(
        &host(),
        Path::new(WRONG_WORLD),
    ))
    .await
    .unwrap_err();
    assert!(
        matches!(
            &err,
            Error::Component {
                reason: choreo_host::Error::WrongWorld { .. },
                ..
            }
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains(WRONG_WORLD), "{message}");
    assert!(
        message.contains("does not export the function `handle`"),
        "{message}"
    );
}
