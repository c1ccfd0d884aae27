//! The `choreo` binary: parses the command line, installs the log subscriber, runs one
//! command, and turns its error into one printed chain of causes and an exit code.
//!
//! Layout:
//! - `config`: `choreo serve`'s settings from flags, `CHOREO_*` variables and a config file.
//! - `client`: the small HTTP client the client commands share.
//! - `project`: a handler project on disk (`choreo new` writes it, `choreo build` reads it)
//!   and the choreo checkout whose SDKs build it.
//! - `commands/`: one file per command (`serve`, `publish`, `handlers`, `trace`, `tail`,
//!   `dlq`, `new`, `build`, `deploy`, `bench`).

mod client;
mod commands;
mod config;
mod open_files;
mod project;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc instead of glibc's malloc.
///
/// Decision: the server's buffers are allocated on one thread and freed on another (a
/// request parsed on an async thread, its group applied on the writer's, its records
/// written on the durability thread's), which glibc serves from contended per-thread
/// arenas. In `choreo bench`, six interleaved pairs (13:32–13:33 UTC, 2026-11-27), it
/// raised deliveries through the relay chain from a median of 23.1k to 29.1k/s and
/// batched ingress from 131–167k to 195–213k/s, with the same RSS (171–216 MiB).
/// mimalloc, tried the same way, raised the chain as much, but batched ingress swung
/// between 88k and 232k/s from run to run, and RSS rose to 233–305 MiB.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// choreo: a serverless runtime for event handlers written as WebAssembly components.
#[derive(Debug, Parser)]
#[command(name = "choreo", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Bearer token for a choreo that requires one (client commands)
    #[arg(long, global = true, env = "CHOREO_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run choreo: the broker, the handlers in the deploy folder, and the HTTP API.
    Serve(commands::serve::Args),
    /// Publish one event over HTTP.
    Publish(commands::publish::Args),
    /// List the handlers of a running choreo, or delete one whose component was removed.
    Handlers(commands::handlers::Args),
    /// Show an event and everything its handling caused, as a tree.
    Trace(commands::trace::Args),
    /// Print events on matching topics as they are published, until Ctrl-C.
    Tail(commands::tail::Args),
    /// Inspect, replay and discard dead-letters.
    Dlq(commands::dlq::Args),
    /// Create a handler project in Rust, Python or JavaScript that builds as is.
    New(commands::new::Args),
    /// Build a handler project into a component, checked as `choreo deploy` checks it.
    Build(commands::build::Args),
    /// Validate a component locally, then copy it into the deploy folder atomically.
    Deploy(commands::deploy::Args),
    /// Measure a choreo (started here, or --url) and, with --nats, JetStream side by side.
    Bench(commands::bench::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(token) = cli.token {
        client::use_token(token);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(args).await,
            Command::Publish(args) => commands::publish::run(args).await,
            Command::Handlers(args) => commands::handlers::run(args).await,
            Command::Trace(args) => commands::trace::run(args).await,
            Command::Tail(args) => commands::tail::run(args).await,
            Command::Dlq(args) => commands::dlq::run(args).await,
            Command::New(args) => commands::new::run(args).await,
            Command::Build(args) => commands::build::run(args).await,
            Command::Deploy(args) => commands::deploy::run(args).await,
            Command::Bench(args) => commands::bench::run(args).await,
        }
    });
    // Background tasks (the deploy watcher, connections) are not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line per cause, printed once.
            eprintln!("error: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn new_takes_the_three_languages_and_nothing_else() {
        for lang in ["rust", "python", "js"] {
            let cli = Cli::try_parse_from(["choreo", "new", "greeter", "--lang", lang]).unwrap();
            assert!(matches!(cli.command, Command::New(_)), "{lang}");
        }
        for (args, expected) in [
            (
                &["choreo", "new", "greeter", "--lang", "go"][..],
                "invalid value 'go'",
            ),
            (
                &["choreo", "new", "greeter", "--lang", "Rust"][..],
                "invalid value 'Rust'",
            ),
            (&["choreo", "new", "greeter"][..], "--lang <LANG>"),
        ] {
            let err = Cli::try_parse_from(args).unwrap_err().to_string();
            assert!(err.contains(expected), "{args:?}: {err}");
        }
    }

    #[test]
    fn build_defaults_to_the_current_directory() {
        let cli = Cli::try_parse_from(["choreo", "build"]).unwrap();
        assert!(matches!(cli.command, Command::Build(_)));
    }
}
