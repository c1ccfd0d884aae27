//! `choreo publish TOPIC [DATA | @FILE | -]`: publish one event over HTTP and print its
//! id and seq once choreo has stored it durably.

use anyhow::Context;
use choreo_ingress::percent_encode_header;
use http::Method;
use tokio::io::AsyncReadExt;

use crate::client::{self, DEFAULT_URL};

/// Arguments of `choreo publish`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// The topic, e.g. `orders.created`
    topic: String,
    /// The data: text, `@path` to read a file, or `-` for standard input [default: empty JSON object]
    data: Option<String>,
    /// CloudEvents type [default: the topic]
    #[arg(long = "type", env = "CHOREO_PUBLISH_TYPE")]
    kind: Option<String>,
    /// Ordering key: events with the same key are handled in order
    #[arg(long, env = "CHOREO_PUBLISH_KEY")]
    key: Option<String>,
    /// Media type of the data
    #[arg(
        long,
        env = "CHOREO_PUBLISH_CONTENT_TYPE",
        default_value = "application/json"
    )]
    content_type: String,
    /// The choreo API
    #[arg(long, env = "CHOREO_URL", default_value = DEFAULT_URL)]
    url: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let data = match args.data.as_deref() {
        None => b"{}".to_vec(),
        Some("-") => {
            let mut buffer = Vec::new();
            tokio::io::stdin()
                .read_to_end(&mut buffer)
                .await
                .context("reading standard input failed")?;
            buffer
        }
        Some(text) => match text.strip_prefix('@') {
            Some(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {path}"))?,
            None => text.as_bytes().to_vec(),
        },
    };
    let mut headers = vec![
        ("content-type", args.content_type),
        ("ce-specversion", "1.0".to_owned()),
    ];
    // The server percent-decodes `ce-*` values, as the binary binding asks.
    if let Some(kind) = args.kind {
        headers.push(("ce-type", percent_encode_header(&kind)));
    }
    if let Some(key) = args.key {
        headers.push(("ce-partitionkey", percent_encode_header(&key)));
    }
    let url = format!(
        "{}/v1/topics/{}",
        args.url.trim_end_matches('/'),
        args.topic
    );
    let answer = client::send(Method::POST, &url, &headers, data).await?;
    let body = client::expect_success(answer)?;
    println!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
