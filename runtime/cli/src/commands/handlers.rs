//! `choreo handlers`: a table of the handlers of a running choreo; `choreo handlers
//! delete NAME` retires one whose component was removed, deleting its queue,
//! dead-letters and state.

use http::Method;
use serde::Deserialize;

use crate::client::{self, DEFAULT_URL};

/// Arguments of `choreo handlers`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The choreo API
    #[arg(long, env = "CHOREO_URL", default_value = DEFAULT_URL, global = true)]
    url: String,
    /// Print the raw JSON instead of a table
    #[arg(long, env = "CHOREO_JSON")]
    json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Retire a handler whose component was removed from the deploy folder: delete its
    /// subscription, queue, dead-letters and state. Until then its queue keeps taking
    /// every matching event, so that a redeploy resumes.
    Delete {
        /// The handler's name
        name: String,
    },
}

/// What `DELETE /v1/handlers/{handler}` answers.
#[derive(Deserialize)]
struct Deleted {
    name: String,
    queued: usize,
    dead_letters: usize,
}

#[derive(Deserialize)]
struct Listing {
    handlers: Vec<HandlerRow>,
    problems: Vec<ProblemRow>,
}

#[derive(Deserialize)]
struct HandlerRow {
    name: String,
    status: String,
    version: Option<String>,
    subscriptions: Vec<String>,
    queue_depth: usize,
    acked: u64,
    dead_letters: usize,
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct ProblemRow {
    file: String,
    message: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let url = format!("{}/v1/handlers", args.url.trim_end_matches('/'));
    if let Some(Command::Delete { name }) = &args.command {
        let url = format!("{url}/{}", client::encode(name));
        let body =
            client::expect_success(client::send(Method::DELETE, &url, &[], Vec::new()).await?)?;
        let deleted: Deleted = serde_json::from_slice(&body)?;
        println!(
            "deleted handler {}: {} queued events and {} dead-letters dropped",
            deleted.name, deleted.queued, deleted.dead_letters
        );
        return Ok(());
    }
    let body = client::expect_success(client::send(Method::GET, &url, &[], Vec::new()).await?)?;
    if args.json {
        println!("{}", String::from_utf8_lossy(&body));
        return Ok(());
    }
    let listing: Listing = serde_json::from_slice(&body)?;
    let rows: Vec<[String; 7]> = listing
        .handlers
        .iter()
        .map(|h| {
            [
                h.name.clone(),
                h.version.clone().unwrap_or_else(|| "-".into()),
                h.status.clone(),
                h.queue_depth.to_string(),
                h.acked.to_string(),
                h.dead_letters.to_string(),
                h.subscriptions.join(" "),
            ]
        })
        .collect();
    let header = [
        "NAME",
        "VERSION",
        "STATUS",
        "QUEUED",
        "ACKED",
        "DEAD",
        "SUBSCRIPTIONS",
    ]
    .map(String::from);
    let mut widths = header.clone().map(|h| h.len());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
    for handler in listing.handlers.iter().filter(|h| h.last_error.is_some()) {
        println!(
            "\n{} last error: {}",
            handler.name,
            handler.last_error.as_deref().unwrap_or_default()
        );
    }
    for problem in &listing.problems {
        println!("\nproblem in {}: {}", problem.file, problem.message);
    }
    Ok(())
}
