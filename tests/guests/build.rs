//! Builds every guest component of the workspace for `wasm32-wasip2` and writes their paths
//! to `$OUT_DIR/guests.rs`.
//!
//! One nested `cargo build --target wasm32-wasip2 --profile guest -p <guest>...` on this
//! workspace, with its own target dir `<workspace>/target/guests`: it is shared by every
//! outer profile and command (test, build, clippy), so the guests are compiled once and then
//! only checked for freshness, and it never contends for the outer build's target-dir lock.
//! The nested cargo gets a scrubbed environment: what the outer cargo sets for this build
//! script (or for clippy) describes the outer build and would break or slow the inner one.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "guest";

/// (constant, package, name) of every guest; the name is the guest's directory (under
/// `handlers`, `tests/fixtures` or `examples/retail/handlers`). The `.wasm` file is named after the
/// package, with `-` turned into `_`.
const GUESTS: &[(&str, &str, &str)] = &[
    ("ENRICHER", "handler-enricher", "enricher"),
    ("COUNTER", "handler-counter", "counter"),
    ("ROUTER", "handler-router", "router"),
    ("RELAY", "handler-relay", "relay"),
    ("HOSTILE", "fixture-hostile", "hostile"),
    ("ECHO", "fixture-echo", "echo"),
    ("BAD_NAME", "fixture-bad-name", "bad-name"),
    ("BAD_PATTERN", "fixture-bad-pattern", "bad-pattern"),
    ("DESCRIBE_LOOP", "fixture-describe-loop", "describe-loop"),
    ("WRONG_WORLD", "fixture-wrong-world", "wrong-world"),
    ("VALIDATOR", "fixture-validator", "validator"),
    ("AUDITOR", "fixture-auditor", "auditor"),
    ("FULFILLER", "fixture-fulfiller", "fulfiller"),
    ("TAGGER_V1", "fixture-tagger-v1", "tagger-v1"),
    ("TAGGER_V2", "fixture-tagger-v2", "tagger-v2"),
    ("REPLIER", "fixture-replier", "replier"),
    ("RETAIL_INVENTORY", "retail-inventory", "inventory"),
    (
        "RETAIL_NOTIFICATIONS",
        "retail-notifications",
        "notifications",
    ),
    ("RETAIL_ORDER_VIEW", "retail-order-view", "order-view"),
];

/// Variables the outer cargo sets that must not reach the nested one, by exact name.
/// Wrappers (clippy's `RUSTC_WORKSPACE_WRAPPER`, sccache), the outer build's flags, target
/// dir and target, the outer jobserver, and the facts about this build script's own package.
const SCRUB: &[&str] = &[
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WRAPPER",
    "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_TARGET",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "CARGO_PRIMARY_PACKAGE",
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_MANIFEST_LINKS",
    "CARGO_CRATE_NAME",
    "CARGO_RUSTC_CURRENT_DIR",
    "CLIPPY_ARGS",
    "CLIPPY_CONF_DIR",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
];

/// The same, by prefix: cfgs and features of this package, its metadata, `links` values.
const SCRUB_PREFIXES: &[&str] = &["CARGO_CFG_", "CARGO_FEATURE_", "CARGO_PKG_", "DEP_"];

/// Paths (relative to the workspace root) whose changes may change a guest.
const WATCH: &[&str] = &[
    "wit",
    "sdk/rust",
    "handlers",
    "tests/fixtures",
    // Only the Rust ones: building the JavaScript handler stages files in its own dir.
    "examples/retail/handlers/inventory",
    "examples/retail/handlers/notifications",
    "examples/retail/handlers/order-view",
    "Cargo.toml",
    "Cargo.lock",
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

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(var("CARGO_MANIFEST_DIR")?);
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| {
            format!(
                "{} is not at <workspace>/tests/guests",
                manifest_dir.display()
            )
        })?
        .to_path_buf();
    let target_dir = workspace.join("target").join("guests");
    let out_dir = PathBuf::from(var("OUT_DIR")?);

    for path in WATCH {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }

    let cargo = var("CARGO")?;
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    check_target_installed(&rustc)?;

    let mut args: Vec<String> = vec!["build".into(), "--manifest-path".into()];
    args.push(path_str(&workspace.join("Cargo.toml"))?.to_owned());
    args.extend(["--target", TARGET, "--profile", PROFILE, "--target-dir"].map(String::from));
    args.push(path_str(&target_dir)?.to_owned());
    // The outer jobserver is scrubbed, so bound the nested build by the outer job count.
    if let Ok(jobs) = env::var("NUM_JOBS") {
        args.extend(["--jobs".to_owned(), jobs]);
    }
    for (_, package, _) in GUESTS {
        args.extend(["-p".to_owned(), (*package).to_owned()]);
    }
    let mut command = Command::new(&cargo);
    command.current_dir(&workspace).args(&args);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if SCRUB.contains(&key) || SCRUB_PREFIXES.iter().any(|p| key.starts_with(p)) {
            command.env_remove(key);
        }
    }

    let output = command
        .output()
        .map_err(|e| format!("cannot run `{cargo}` to build the guest components: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "building the guest components failed ({}): {cargo} {}\n{}",
            output.status,
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ));
    }

    let wasm_dir = target_dir.join(TARGET).join(PROFILE);
    let mut generated = String::from("// Generated by tests/guests/build.rs.\n");
    let mut all = String::from(
        "/// Every guest as (name, path), in a fixed order.\npub const ALL: &[(&str, &str)] = &[\n",
    );
    for (constant, package, name) in GUESTS {
        let path = wasm_dir.join(format!("{}.wasm", package.replace('-', "_")));
        if !path.is_file() {
            return Err(format!(
                "the nested build succeeded but left no {}",
                path.display()
            ));
        }
        let path = path
            .to_str()
            .ok_or_else(|| format!("{} is not UTF-8", path.display()))?;
        writeln!(
            generated,
            "/// Path of the `{name}` component (package `{package}`).\npub const {constant}: &str = {path:?};"
        )
        .map_err(|e| e.to_string())?;
        writeln!(all, "    ({name:?}, {constant}),").map_err(|e| e.to_string())?;
    }
    all.push_str("];\n");
    generated.push_str(&all);
    std::fs::write(out_dir.join("guests.rs"), generated)
        .map_err(|e| format!("cannot write {}: {e}", out_dir.join("guests.rs").display()))
}

/// Fails with the fix when the toolchain has no standard library for the guest target, which
/// the nested build would otherwise report as an obscure "can't find crate for `core`".
fn check_target_installed(rustc: &str) -> Result<(), String> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run `{rustc} --print sysroot`: {e}"))?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if output.status.success() && !sysroot.join("lib/rustlib").join(TARGET).is_dir() {
        return Err(format!(
            "the Rust target {TARGET} is not installed in {}; the test guests need it. \
             Fix: `rustup target add {TARGET}`",
            sysroot.display()
        ));
    }
    Ok(())
}

fn path_str(path: &Path) -> Result<&str, String> {
    path.to_str()
        .ok_or_else(|| format!("{} is not UTF-8", path.display()))
}

fn var(name: &str) -> Result<String, String> {
    env::var(name).map_err(|_| format!("cargo did not set {name} for the build script"))
}
