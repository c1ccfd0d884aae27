//! Installs the pinned Python and JavaScript guest toolchains into the workspace when they
//! are missing, builds the polyglot test handlers from source with choreo's SDKs, and
//! writes their paths to `$OUT_DIR/polyglot.rs`.
//!
//! - componentize-py goes into a venv at `<workspace>/target/sdk-tools/venv`, installed with
//!   pip from `sdk/python/requirements-build.txt` (the one place its version is pinned);
//! - componentize-js and jco go into `sdk/js/node_modules` with `npm ci`, from the committed
//!   `sdk/js/package-lock.json`.
//!
//! Each install is redone only when its pin file changes (a copy of it is kept as a stamp
//! beside the tools), and a file lock on `target/sdk-tools/.lock` makes concurrent builds
//! (test and clippy at once) install and build one after the other. The components go to
//! `target/sdk-tools/components`, outside every cargo target dir, like the Rust guests of
//! `tests/guests`. What is missing on the machine (python3 with venv, node, npm) is named
//! with the fix.

use std::fmt::Write as _;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::{env, thread};

/// (constant, source dir relative to the workspace, entry file, language). The component is
/// named after the dir's last component, so those must differ.
const FIXTURES: &[(&str, &str, &str, Lang)] = &[
    (
        "PY_COUNTER",
        "tests/polyglot/fixtures/py-counter",
        "app.py",
        Lang::Python,
    ),
    (
        "JS_ENRICHER",
        "tests/polyglot/fixtures/js-enricher",
        "handler.js",
        Lang::Js,
    ),
    // The retail example's handlers, kept with the example and built here for its test.
    (
        "RETAIL_PAYMENTS",
        "examples/retail/handlers/payments",
        "app.py",
        Lang::Python,
    ),
    (
        "RETAIL_SHIPPING",
        "examples/retail/handlers/shipping",
        "handler.js",
        Lang::Js,
    ),
];

#[derive(Clone, Copy)]
enum Lang {
    Python,
    Js,
}

/// Paths (relative to the workspace root) whose changes may change a component or a tool,
/// besides each fixture's entry file. The fixtures' dirs are not watched as a whole:
/// `build.mjs` stages the SDK in the entry's dir and removes it, which would make every
/// build look changed to the next one.
const WATCH: &[&str] = &[
    "wit",
    "sdk/python/choreo_sdk",
    "sdk/python/build.py",
    "sdk/python/requirements-build.txt",
    "sdk/js/src",
    "sdk/js/build.mjs",
    "sdk/js/package.json",
    "sdk/js/package-lock.json",
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

struct Paths {
    workspace: PathBuf,
    tools: PathBuf,
    venv: PathBuf,
    components: PathBuf,
}

impl Paths {
    fn python(&self) -> PathBuf {
        self.venv.join("bin").join("python")
    }

    fn sdk_python(&self) -> PathBuf {
        self.workspace.join("sdk").join("python")
    }

    fn sdk_js(&self) -> PathBuf {
        self.workspace.join("sdk").join("js")
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| {
            format!(
                "{} is not at <workspace>/tests/polyglot",
                manifest_dir.display()
            )
        })?
        .to_path_buf();
    let tools = workspace.join("target").join("sdk-tools");
    let paths = Paths {
        venv: tools.join("venv"),
        components: tools.join("components"),
        tools,
        workspace,
    };
    let entries = FIXTURES
        .iter()
        .map(|(_, dir, entry, _)| format!("{dir}/{entry}"));
    for path in WATCH.iter().map(|p| (*p).to_owned()).chain(entries) {
        println!(
            "cargo:rerun-if-changed={}",
            paths.workspace.join(path).display()
        );
    }
    fs::create_dir_all(&paths.components)
        .map_err(|e| format!("cannot create {}: {e}", paths.components.display()))?;

    // Held until the end of the build script: installs and builds are not safe to run twice
    // at once on the same dirs.
    let lock_path = paths.tools.join(".lock");
    let lock = File::create(&lock_path)
        .map_err(|e| format!("cannot create {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;

    install_python(&paths)?;
    install_js(&paths)?;

    // The two builds are independent and mostly single-threaded: run them side by side.
    let builds: Vec<_> = FIXTURES
        .iter()
        .map(|&(constant, dir, entry, lang)| {
            let command = build_command(&paths, dir, entry, lang);
            let out = component_path(&paths, dir);
            thread::spawn(move || run_command(command).map(|()| (constant, dir, out)))
        })
        .collect();
    let mut generated = String::from("// Generated by tests/polyglot/build.rs.\n");
    for build in builds {
        let (constant, dir, out) = build
            .join()
            .map_err(|_| "a build thread panicked".to_owned())??;
        if !out.is_file() {
            return Err(format!(
                "building {dir} succeeded but left no {}",
                out.display()
            ));
        }
        writeln!(
            generated,
            "/// Path of the `{}` component, built from `{dir}`.\n\
             pub const {constant}: &str = {:?};",
            component_name(dir),
            path_str(&out)?
        )
        .map_err(|e| e.to_string())?;
    }
    writeln!(
        generated,
        "/// The Python of the venv holding componentize-py.\npub const PYTHON: &str = {:?};\n\
         /// The Python SDK's directory.\npub const SDK_PYTHON: &str = {:?};\n\
         /// The JavaScript SDK's directory, with its `node_modules` installed.\npub const SDK_JS: &str = {:?};",
        path_str(&paths.python())?,
        path_str(&paths.sdk_python())?,
        path_str(&paths.sdk_js())?,
    )
    .map_err(|e| e.to_string())?;
    let out_dir = PathBuf::from(var("OUT_DIR")?);
    fs::write(out_dir.join("polyglot.rs"), generated).map_err(|e| {
        format!(
            "cannot write {}: {e}",
            out_dir.join("polyglot.rs").display()
        )
    })
}

/// Creates the venv and installs the pinned componentize-py, unless the stamp says the
/// current pin is installed.
fn install_python(paths: &Paths) -> Result<(), String> {
    let requirements = paths.sdk_python().join("requirements-build.txt");
    let stamp = paths.tools.join("venv.stamp");
    if up_to_date(
        &requirements,
        &stamp,
        &paths.venv.join("bin").join("componentize-py"),
    ) {
        return Ok(());
    }
    require(
        "python3",
        &["--version"],
        "Python 3.11 or later (Debian: `apt-get install python3 python3-venv`)",
    )?;
    let _ = fs::remove_dir_all(&paths.venv);
    let mut venv = Command::new("python3");
    venv.arg("-m").arg("venv").arg(&paths.venv);
    run_command(venv).map_err(|e| {
        format!("{e}\nthe Python venv module is missing? Debian: `apt-get install python3-venv`")
    })?;
    let mut pip = Command::new(paths.python());
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--quiet",
        "--timeout",
        "60",
        "-r",
    ])
    .arg(&requirements);
    run_command(pip)?;
    fs::copy(&requirements, &stamp)
        .map(drop)
        .map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// Runs `npm ci` in `sdk/js`, unless the stamp says the current lockfile is installed.
fn install_js(paths: &Paths) -> Result<(), String> {
    let lockfile = paths.sdk_js().join("package-lock.json");
    let stamp = paths.tools.join("npm.stamp");
    let cli = paths
        .sdk_js()
        .join("node_modules/@bytecodealliance/componentize-js/src/cli.js");
    require(
        "node",
        &["--version"],
        "Node.js 20 or later (https://nodejs.org, or Debian: `apt-get install nodejs npm`)",
    )?;
    if up_to_date(&lockfile, &stamp, &cli) {
        return Ok(());
    }
    require(
        "npm",
        &["--version"],
        "npm (it comes with Node.js; Debian: `apt-get install npm`)",
    )?;
    let mut npm = Command::new("npm");
    npm.current_dir(paths.sdk_js())
        .args(["ci", "--no-audit", "--no-fund", "--loglevel", "error"]);
    run_command(npm)?;
    fs::copy(&lockfile, &stamp)
        .map(drop)
        .map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

fn build_command(paths: &Paths, dir: &str, entry: &str, lang: Lang) -> Command {
    let source = paths.workspace.join(dir).join(entry);
    let out = component_path(paths, dir);
    let mut command = match lang {
        Lang::Python => {
            let mut c = Command::new(paths.python());
            c.arg(paths.sdk_python().join("build.py"));
            c
        }
        Lang::Js => {
            let mut c = Command::new("node");
            c.arg(paths.sdk_js().join("build.mjs"));
            c
        }
    };
    command.arg(source).arg("-o").arg(out);
    // A virtualenv the caller has active would add its packages to the component.
    command.env_remove("VIRTUAL_ENV");
    command
}

/// The component's name: the last component of its source dir.
fn component_name(dir: &str) -> &str {
    dir.rsplit('/').next().unwrap_or(dir)
}

/// Where the component built from `dir` goes.
fn component_path(paths: &Paths, dir: &str) -> PathBuf {
    paths
        .components
        .join(format!("{}.wasm", component_name(dir)))
}

/// Whether `stamp` holds the same bytes as `pin` and `installed` exists.
fn up_to_date(pin: &Path, stamp: &Path, installed: &Path) -> bool {
    installed.is_file() && matches!((fs::read(pin), fs::read(stamp)), (Ok(a), Ok(b)) if a == b)
}

/// Fails naming `tool` and how to install it when `tool args` cannot run.
fn require(tool: &str, args: &[&str], install: &str) -> Result<(), String> {
    match Command::new(tool).args(args).output() {
        Ok(output) if output.status.success() => Ok(()),
        _ => Err(format!(
            "`{tool}` is needed to build the Python and JavaScript test handlers, and it is \
             not on PATH (or does not run). Install {install}"
        )),
    }
}

fn run_command(mut command: Command) -> Result<(), String> {
    let shown = format!("{command:?}");
    let output = command
        .output()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}
