//! The Python and JavaScript handlers choreo's tests run, built from source with the SDKs
//! in `sdk/python` and `sdk/js`, and the SDKs' own test suites.
//!
//! This crate's `build.rs` installs the pinned toolchains when they are missing
//! (componentize-py in a venv under `<workspace>/target/sdk-tools`, componentize-js with
//! `npm ci` in `sdk/js`) and builds the handlers in `tests/polyglot/fixtures` into
//! components, so a plain `cargo test` on a fresh checkout needs only python3 (with venv),
//! node and npm on the machine. Their absolute paths are the constants below.
//!
//! | constant | handler | what it is |
//! |---|---|---|
//! | [`PY_COUNTER`] | `py-counter` | Python: counts order quantities in state, publishes `py.out.counted`; query `/orders/<id>`, `/total` |
//! | [`JS_ENRICHER`] | `js-enricher` | JavaScript: totals orders, publishes `js.out.enriched`; query `/orders/<id>`, `/stats` |
//! | [`PY_ECHO`], [`JS_ECHO`] | `py-echo`, `js-echo` | the Rust `echo` guest's trivial work (publish every `bench.*` event back on `bench.out.echo`), for the per-language bench |
//!
//! The counter and the enricher also retry (`*.in.retry`), reject (`*.in.reject`), fail with an unexpected error
//! (`*.in.crash`) and publish to an undeclared topic (`*.in.undeclared`); see each
//! fixture's doc comment.
//!
//! The tests here run each SDK's unit tests in its own idiom (`unittest`, `node:test`);
//! the integration tests that deploy the components on the real binary are in
//! `tests/e2e/polyglot.rs`.

include!(concat!(env!("OUT_DIR"), "/polyglot.rs"));

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::process::Command;

    use super::*;

    /// The preamble of a WebAssembly component (not a core module): magic, then version 0x0d
    /// and layer 1.
    const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    fn run(command: &mut Command) {
        let shown = format!("{command:?}");
        let output = command
            .output()
            .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
        assert!(
            output.status.success(),
            "{shown} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    #[test]
    fn every_handler_is_a_built_component() {
        for path in [PY_COUNTER, JS_ENRICHER, PY_ECHO, JS_ECHO] {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(
                bytes.starts_with(&COMPONENT_HEADER),
                "{path} is not a component"
            );
        }
    }

    #[test]
    fn python_sdk_unit_tests_pass() {
        run(Command::new(PYTHON)
            .args(["-m", "unittest", "discover", "-s", "tests"])
            .current_dir(SDK_PYTHON)
            .env("PYTHONDONTWRITEBYTECODE", "1"));
    }

    #[test]
    fn js_sdk_unit_tests_pass() {
        run(Command::new("npm")
            .args(["test", "--silent"])
            .current_dir(SDK_JS));
    }
}
