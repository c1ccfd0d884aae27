//! `choreo dlq`: inspect, replay and discard the dead-letters of a running choreo.
//!
//! Bulk replay and discard act on a whole queue of failures, so they need `--all`
//! spelled out: a forgotten seq must not wipe or flood a queue.

use anyhow::Context;
use http::Method;
use serde::Deserialize;
use serde_json::Value;

use crate::client::{self, DEFAULT_URL};

/// Arguments of `choreo dlq`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The choreo API
    #[arg(long, env = "CHOREO_URL", default_value = DEFAULT_URL, global = true)]
    url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Without HANDLER, how many dead-letters each handler has; with it, its dead-letters.
    List {
        /// The handler whose dead-letters to list
        handler: Option<String>,
        /// Print the raw JSON instead of a table
        #[arg(long, env = "CHOREO_JSON")]
        json: bool,
    },
    /// One dead-letter in full: why, attempts, last error, and the event.
    Show {
        /// The handler
        handler: String,
        /// The seq of the dead-lettered event, as `choreo dlq list HANDLER` shows it
        seq: u64,
    },
    /// Put dead-lettered events back in the handler's queue, attempts reset.
    Replay(Target),
    /// Forget dead-letters for good.
    Discard(Target),
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("which").required(true).args(["seq", "all"]))]
struct Target {
    /// The handler
    handler: String,
    /// The seq of one dead-lettered event
    seq: Option<u64>,
    /// Every dead-letter of the handler
    #[arg(long)]
    all: bool,
}

impl Target {
    /// The API path of the dead-letters this names.
    fn path(&self, base: &str) -> String {
        match self.seq {
            Some(seq) => format!("{base}/v1/dlq/{}/{seq}", self.handler),
            None => format!("{base}/v1/dlq/{}", self.handler),
        }
    }
}

#[derive(Deserialize)]
struct Counts {
    handlers: Vec<CountRow>,
}

#[derive(Deserialize)]
struct CountRow {
    handler: String,
    dead_letters: usize,
}

#[derive(Deserialize)]
struct Page {
    dead_letters: Vec<Letter>,
    next: Option<u64>,
}

#[derive(Deserialize)]
struct Letter {
    seq: u64,
    cause: String,
    attempts: u32,
    last_error: String,
    dead_lettered_at: String,
    event: Value,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/');
    match args.command {
        Command::List {
            handler: None,
            json,
        } => {
            let body = get(&format!("{base}/v1/dlq")).await?;
            if json {
                println!("{}", String::from_utf8_lossy(&body));
                return Ok(());
            }
            let counts: Counts = serde_json::from_slice(&body)?;
            let rows = counts
                .handlers
                .iter()
                .map(|c| vec![c.handler.clone(), c.dead_letters.to_string()])
                .collect();
            print_table(&["HANDLER", "DEAD"], rows);
        }
        Command::List {
            handler: Some(handler),
            json,
        } => {
            let mut letters = Vec::new();
            let mut after: Option<u64> = None;
            loop {
                let mut url = format!("{base}/v1/dlq/{handler}");
                if let Some(after) = after {
                    url.push_str(&format!("?after={after}"));
                }
                let body = get(&url).await?;
                if json {
                    // One JSON document per page, as the API returns them.
                    println!("{}", String::from_utf8_lossy(&body));
                }
                let page: Page = serde_json::from_slice(&body)?;
                letters.extend(page.dead_letters);
                match page.next {
                    Some(next) => after = Some(next),
                    None => break,
                }
            }
            if json {
                return Ok(());
            }
            let rows = letters
                .iter()
                .map(|l| {
                    vec![
                        l.seq.to_string(),
                        l.event["topic"].as_str().unwrap_or("").to_owned(),
                        l.cause.clone(),
                        l.attempts.to_string(),
                        l.dead_lettered_at.clone(),
                        one_line(&l.last_error),
                    ]
                })
                .collect();
            print_table(
                &["SEQ", "TOPIC", "CAUSE", "ATTEMPTS", "AT", "LAST ERROR"],
                rows,
            );
        }
        Command::Show { handler, seq } => {
            let body = get(&format!("{base}/v1/dlq/{handler}/{seq}")).await?;
            let letter: Value = serde_json::from_slice(&body)?;
            println!("{}", serde_json::to_string_pretty(&letter)?);
        }
        Command::Replay(target) => {
            let url = format!("{}/replay", target.path(base));
            let answer = client::send(Method::POST, &url, &[], Vec::new()).await?;
            let body: Value = serde_json::from_slice(&client::expect_success(answer)?)?;
            let n = body["replayed"].as_u64().context("no `replayed` count")?;
            println!("replayed {n} dead-letter(s) of {}", target.handler);
        }
        Command::Discard(target) => {
            let url = target.path(base);
            let answer = client::send(Method::DELETE, &url, &[], Vec::new()).await?;
            let body: Value = serde_json::from_slice(&client::expect_success(answer)?)?;
            let n = body["discarded"].as_u64().context("no `discarded` count")?;
            println!("discarded {n} dead-letter(s) of {}", target.handler);
        }
    }
    Ok(())
}

async fn get(url: &str) -> anyhow::Result<bytes::Bytes> {
    client::expect_success(client::send(Method::GET, url, &[], Vec::new()).await?)
}

/// The first line of an error, so that a table row stays one line.
fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_owned()
}

fn print_table(header: &[&str], rows: Vec<Vec<String>>) {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(&rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        println!("{}", line.join("  ").trim_end());
    }
}
