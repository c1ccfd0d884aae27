//! `choreo new` and `choreo build` on the real binary: a project in each language, created
//! into a temp dir, built from source with the real tools, deployed with `choreo deploy`
//! into a running server, and seen handling an event; and the refusals (an existing
//! directory, a bad name, an unknown language, a directory that is not a project, a
//! missing tool) with their messages.
//!
//! The Rust project is built with `CARGO_TARGET_DIR` under this test target's tmp dir,
//! shared by every run, so only the first run compiles its dependencies (≈ 1-2 min on a
//! loaded two-core machine); later runs take seconds. The Python and JavaScript builds use
//! the tools `choreo-polyglot` installed into the checkout before the tests ran.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;

use crate::cli::{Run, run_choreo};
use crate::harness::{DEADLINE, DEPLOY_DEADLINE, Dirs, Server, eventually};

/// How long one `choreo build` may take: a cold Rust build compiles wit-bindgen and serde.
const BUILD_DEADLINE: Duration = Duration::from_secs(900);
/// How long a command that builds nothing may take.
const QUICK_DEADLINE: Duration = Duration::from_secs(60);

/// The checkout these tests run in.
const CHECKOUT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");

/// Runs `choreo ARGS` like [`run_choreo`], with a Rust project's build sharing one
/// target dir between runs, outside the one cargo holds locked while the tests run.
fn choreo(cwd: &Path, args: &[&str], env: &[(&str, &str)], deadline: Duration) -> Run {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scaffold-target");
    let mut env = env.to_vec();
    env.push(("CARGO_TARGET_DIR", target.to_str().unwrap()));
    run_choreo(cwd, args, &env, deadline)
}

fn success(run: Run) -> Run {
    assert!(run.ok, "{run}");
    run
}

/// Fails unless `run` failed with exit code 1 or 2 and its stderr holds every `expected`.
fn failure(run: Run, expected: &[&str]) {
    assert!(!run.ok, "{run}");
    assert!(matches!(run.code, Some(1 | 2)), "{run}");
    for text in expected {
        assert!(run.stderr.contains(text), "expected {text:?} in {run}");
    }
}

/// Creates the project `name` in `lang` under `parent`, builds it and deploys it into
/// `deploy`; returns the project directory.
fn new_build_deploy(parent: &Path, name: &str, lang: &str, deploy: &Path) -> PathBuf {
    let created = success(choreo(
        parent,
        &["new", name, "--lang", lang],
        &[],
        QUICK_DEADLINE,
    ));
    assert!(
        created
            .stdout
            .contains(&format!("created the {lang} handler `{name}`")),
        "{created}"
    );
    let project = parent.join(name);
    let built = success(choreo(&project, &["build"], &[], BUILD_DEADLINE));
    let wasm = project.join(format!("{name}.wasm"));
    assert!(
        built
            .stdout
            .contains(&format!("built handler `{name}` 0.1.0"))
            && built.stdout.contains(&format!("subscribes {name}.in")),
        "{built}"
    );
    assert!(
        built.stdout.contains(&wasm.display().to_string()),
        "{built}"
    );
    assert!(built.stderr.contains("✓ building with"), "{built}");
    assert!(built.stderr.contains("✓ checking the component"), "{built}");
    let deploy = deploy.display().to_string();
    success(choreo(
        &project,
        &["deploy", &format!("{name}.wasm"), "--deploy-dir", &deploy],
        &[],
        QUICK_DEADLINE,
    ));
    project
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_projects_in_every_language_build_deploy_and_handle_an_event() {
    let dirs = Dirs::create();
    let projects = tempfile::tempdir().unwrap();
    let server = Server::start(&dirs).await;
    let handlers = [
        ("greeter-rust", "rust"),
        ("greeter-python", "python"),
        ("greeter-js", "js"),
    ];
    // The three builds are independent, and each is mostly one process: run them at once.
    std::thread::scope(|scope| {
        for (name, lang) in handlers {
            let (parent, deploy) = (projects.path(), dirs.deploy());
            scope.spawn(move || new_build_deploy(parent, name, lang, &deploy));
        }
    });

    for (name, _) in handlers {
        server.wait_running(name, DEPLOY_DEADLINE).await;
        let described = server.handler(name).await;
        assert_eq!(
            described["subscriptions"],
            json!([format!("{name}.in")]),
            "{described}"
        );
        assert_eq!(
            described["publishes"],
            json!([format!("{name}.out")]),
            "{described}"
        );

        for text in ["hello", "choreo"] {
            server
                .publish(
                    &format!("{name}.in"),
                    &[("content-type", "application/json")],
                    json!({ "text": text }).to_string(),
                )
                .await
                .unwrap();
        }
        let out = format!("{name}.out");
        let events = eventually(&format!("two events on {out}"), DEADLINE, async || {
            let events = server.events(&out).await;
            if events.len() >= 2 {
                Ok(events)
            } else {
                Err(format!("{events:?}"))
            }
        })
        .await;
        let data: Vec<_> = events.iter().map(|e| e["data"].clone()).collect();
        assert_eq!(
            data,
            [
                json!({"text": "HELLO!", "count": 1}),
                json!({"text": "CHOREO!", "count": 2}),
            ],
            "{name}: the suffix comes from the manifest {name}.toml"
        );
        let count = server.query(name, "count").await;
        assert_eq!(count.json(), json!({"count": 2}), "{name}: {count}");
        let other = server.query(name, "elsewhere").await;
        assert_eq!(other.status, http::StatusCode::NOT_FOUND, "{name}: {other}");
    }
}

#[test]
fn new_refuses_an_existing_directory_a_bad_name_and_an_unknown_language() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path();
    success(choreo(
        dir,
        &["new", "taken", "--lang", "js"],
        &[],
        QUICK_DEADLINE,
    ));
    let readme = std::fs::read(dir.join("taken/README.md")).unwrap();
    failure(
        choreo(
            dir,
            &["new", "taken", "--lang", "python"],
            &[],
            QUICK_DEADLINE,
        ),
        &["taken already exists; choose another name"],
    );
    assert_eq!(std::fs::read(dir.join("taken/README.md")).unwrap(), readme);
    assert!(
        !dir.join("taken/app.py").exists(),
        "the existing project is untouched"
    );

    failure(
        choreo(
            dir,
            &["new", "Bad_Name", "--lang", "rust"],
            &[],
            QUICK_DEADLINE,
        ),
        &["handler name `Bad_Name` must start with a lower-case letter"],
    );
    failure(
        choreo(dir, &["new", "ok", "--lang", "go"], &[], QUICK_DEADLINE),
        &[
            "invalid value 'go' for '--lang <LANG>'",
            "[possible values: rust, python, js]",
        ],
    );
    failure(
        choreo(
            dir,
            &["new", "ok", "--lang", "js", "--sdk", dir.to_str().unwrap()],
            &[],
            QUICK_DEADLINE,
        ),
        &["is not a choreo checkout with the js SDK"],
    );
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["taken"], "a refused `choreo new` creates nothing");
}

#[test]
fn build_refuses_what_is_not_a_project_and_names_a_missing_tool() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path();
    failure(
        choreo(dir, &["build"], &[], QUICK_DEADLINE),
        &["is not a choreo handler project: it has no choreo.project.toml"],
    );
    failure(
        choreo(dir, &["build", "missing"], &[], QUICK_DEADLINE),
        &["missing is not a directory"],
    );

    success(choreo(
        dir,
        &["new", "lonely", "--lang", "js", "--sdk", CHECKOUT],
        &[],
        QUICK_DEADLINE,
    ));
    let project = dir.join("lonely");
    failure(
        choreo(
            &project,
            &["build", "-o", "lonely.bin"],
            &[],
            QUICK_DEADLINE,
        ),
        &["does not end in .wasm"],
    );
    // No node on PATH: the build names it and says how to install it.
    let empty = tempfile::tempdir().unwrap();
    failure(
        choreo(
            &project,
            &["build"],
            &[("PATH", empty.path().to_str().unwrap())],
            QUICK_DEADLINE,
        ),
        &[
            "`node` builds JavaScript handlers",
            "install Node.js 20 or later",
        ],
    );
    std::fs::remove_file(project.join("handler.js")).unwrap();
    failure(
        choreo(&project, &["build"], &[], QUICK_DEADLINE),
        &["handler.js does not exist"],
    );
    std::fs::write(
        project.join("choreo.project.toml"),
        "[handler]\nname = \"lonely\"\nlanguage = \"cobol\"\n",
    )
    .unwrap();
    failure(
        choreo(&project, &["build"], &[], QUICK_DEADLINE),
        &["invalid", "choreo.project.toml", "unknown variant `cobol`"],
    );
    assert!(!project.join("lonely.wasm").exists());
}
