//! The guest components choreo's tests and benchmarks run, built on demand.
//!
//! Tests need real components: the first-party handlers (`handlers/`) and the hostile and
//! broken fixtures (`tests/fixtures/`). Rather than committing `.wasm` files or asking for a
//! separate build step, this crate's `build.rs` builds all of them for `wasm32-wasip2` with
//! the `guest` profile whenever a crate that depends on it is built, so a plain `cargo test`
//! on a fresh checkout has everything it needs. They are built by one nested cargo into
//! `<workspace>/target/guests` (shared across profiles and commands, so only the first build
//! is slow), and their absolute paths are the constants below.
//!
//! Use it as a dev-dependency: `choreo-test-guests = { workspace = true }`, then
//! `std::fs::read(choreo_test_guests::ECHO)`.
//!
//! | constant | name in [`ALL`] | what it is |
//! |---|---|---|
//! | [`ENRICHER`] | `enricher` | `orders.created` → validated `orders.enriched` with totals |
//! | [`COUNTER`] | `counter` | counts `orders.>` per topic in state; query `/counts[/<topic>]` |
//! | [`ROUTER`] | `router` | `orders.enriched` → `orders.routed.<region>` (+ review if high value) |
//! | [`RELAY`] | `relay` | republishes what it consumes on another topic, as its manifest's `[config]` says (`relay.in` → `relay.out` by default) |
//! | [`HOSTILE`] | `hostile` | misbehaves by topic: `hostile.loop`, `.memory`, `.recursion`, `.shadow-stack`, `.trap`, `.undeclared`, `.oversized`, `.flood`, `.noisy`, `.ok`, `.reply`, `.state`, `.retry`, `.reject` |
//! | [`ECHO`] | `echo` | `bench.*` → one publish on `bench.out.echo`; query returns the state under the path |
//! | [`BAD_NAME`] | `bad-name` | `describe` returns the invalid name `Not A Name` |
//! | [`BAD_PATTERN`] | `bad-pattern` | subscribes `orders..created` |
//! | [`DESCRIBE_LOOP`] | `describe-loop` | `describe` never returns |
//! | [`WRONG_WORLD`] | `wrong-world` | targets another world: exports only `greet: func(name: string) -> string` |
//! | [`VALIDATOR`] | `validator` | choreography step A: `orders.created` → `orders.validated`, same key |
//! | [`AUDITOR`] | `auditor` | choreography step B: records `orders.*` per ordering key in state; query `/seen` |
//! | [`FULFILLER`] | `fulfiller` | choreography step C: `*.validated` → `shipments.planned`, same key |
//! | [`TAGGER_V1`] | `tagger-v1` | handler `tagger` 1.0.0: `tags.in` → `tags.out.v1`, counts per data in state; query `/seen` |
//! | [`TAGGER_V2`] | `tagger-v2` | handler `tagger` 2.0.0: the same, publishing on `tags.out.v2` |
//!
//! The name in [`ALL`] is the guest's directory name, which is also its handler name where
//! `describe` returns a valid one, except for the two versions of `tagger`. The behaviours are documented in each guest's crate docs.

include!(concat!(env!("OUT_DIR"), "/guests.rs"));

#[cfg(test)]
mod tests {
    use super::*;

    /// The preamble of a WebAssembly component (not a core module): magic, then version 0x0d
    /// and layer 1.
    const COMPONENT_HEADER: [u8; 8] = [0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00];

    #[test]
    fn every_guest_is_a_built_component() {
        assert!(!ALL.is_empty());
        let mut names: Vec<&str> = ALL.iter().map(|(name, _)| *name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "every guest has its own name");
        for (name, path) in ALL {
            let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{name}: {path}: {e}"));
            assert!(
                bytes.starts_with(&COMPONENT_HEADER),
                "{name}: {path} is not a component"
            );
        }
    }

    #[test]
    fn paths_are_absolute_and_distinct() {
        let mut paths: Vec<&str> = ALL.iter().map(|(_, path)| *path).collect();
        assert!(paths.iter().all(|p| std::path::Path::new(p).is_absolute()));
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ALL.len());
    }
}
