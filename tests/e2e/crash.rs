//! `kill -9` of `choreo serve` while clients publish and handlers work, then a restart on
//! the same data and deploy dirs: nothing acknowledged is lost, nothing emitted is doubled.
//! The same through several kills in a row, with publishers that retry what was not
//! answered. And a second `choreo serve` on a data dir in use is refused, harming nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::choreography::{
    deploy_choreography, publish_orders, publish_orders_retrying, wait_and_verify,
};
use crate::cli::run_choreo;
use crate::harness::{DEADLINE, Dirs, Server, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_load_loses_no_acknowledged_event_and_duplicates_no_output() {
    /// A cap on orders, far above what is published before the kill.
    const MAX_ORDERS: u64 = 20_000;
    /// The kill comes once the auditor has acknowledged this many deliveries.
    const ACKED_BEFORE_KILL: u64 = 150;
    let dirs = Dirs::create();
    deploy_choreography(&dirs);
    let mut server = Server::start(&dirs).await;

    let stop = Arc::new(AtomicBool::new(false));
    let publishers = {
        let (api, stop) = (server.api(), stop.clone());
        tokio::spawn(async move { publish_orders(&api, 4, MAX_ORDERS, stop).await })
    };
    eventually(
        "the auditor has handled some orders",
        DEADLINE,
        async || {
            let acked = server.handler("auditor").await["acked"]
                .as_u64()
                .unwrap_or(0);
            if acked >= ACKED_BEFORE_KILL {
                Ok(())
            } else {
                Err(format!("auditor acked {acked}"))
            }
        },
    )
    .await;
    assert!(
        !publishers.is_finished(),
        "the publishers are still running when the server is killed"
    );
    let before = server.handlers().await;
    server.kill();
    // Every publisher stops at its first failed request (the server is gone).
    let accepted = publishers.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let killed_output = server.output();
    drop(server);

    let server = Server::start(&dirs).await;
    let context = format!(
        "{} orders got a 202 before the kill; handlers then: {before}\n\
         ===== output of the killed server:\n{killed_output}",
        accepted.len()
    );
    let created = server.events("orders.created").await;
    let logged: std::collections::BTreeSet<u64> = created
        .iter()
        .map(|e| e["data"]["order"].as_u64().unwrap())
        .collect();
    let lost: Vec<u64> = accepted.difference(&logged).copied().collect();
    assert!(
        lost.is_empty(),
        "orders acknowledged with 202 are missing after the restart: {lost:?}\n{context}"
    );
    // Every order in the log (acknowledged or caught by the kill mid-request) goes through
    // the whole choreography exactly once.
    let processed = wait_and_verify(&server).await;
    assert!(processed >= accepted.len(), "{context}");
    eprintln!(
        "{} orders acknowledged before the kill, {processed} in the log and fully processed \
         after the restart",
        accepted.len()
    );
    for name in ["validator", "auditor", "fulfiller"] {
        let handler = server.handler(name).await;
        assert_eq!(handler["dead_letters"], 0, "{handler}\n{context}");
    }
}

/// Each kill lands on a server that recovered from the one before, with publishers
/// retrying every unanswered order under its own id, so recovery after recovery and
/// deduplication across a crash are both exercised: every order ends up in the log once,
/// and goes through the whole choreography once.
///
/// Four kills by default; `CHOREO_E2E_KILLS=N` makes it a soak of N.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kill_9_with_publishers_retrying_loses_nothing_and_doubles_nothing() {
    /// Orders published between two kills.
    const ORDERS_PER_KILL: usize = 300;
    let kills: usize = std::env::var("CHOREO_E2E_KILLS").ok().map_or(4, |kills| {
        kills.parse().expect("CHOREO_E2E_KILLS is a number")
    });
    let orders = (ORDERS_PER_KILL * (kills + 1)) as u64;
    // Each kill comes once the log holds this many orders.
    let kill_at = (0..kills).map(|kill| ORDERS_PER_KILL / 2 + kill * ORDERS_PER_KILL);
    let deadline = Instant::now() + DEADLINE * (kills as u32 / 4).max(1);
    let dirs = Dirs::create();
    deploy_choreography(&dirs);
    let mut server = Server::start(&dirs).await;
    // Restarts listen where the publishers send.
    let listen = server.addr.to_string();
    let publishers = {
        let api = server.api();
        tokio::spawn(async move { publish_orders_retrying(&api, 4, orders, deadline).await })
    };
    for (kill, at) in kill_at.enumerate() {
        eventually(
            &format!("the log holds {at} orders before kill {}", kill + 1),
            DEADLINE,
            async || {
                let logged = server.events("orders.created").await.len();
                if logged >= at {
                    Ok(())
                } else {
                    Err(format!("{logged} orders in the log"))
                }
            },
        )
        .await;
        server.kill();
        eprintln!(
            "kill {}: at least {at} orders in the log; publishers {}",
            kill + 1,
            if publishers.is_finished() {
                "done"
            } else {
                "still running"
            }
        );
        server = Server::start_with(&dirs, &["--listen", &listen], &[]).await;
    }
    publishers.await.unwrap();
    let processed = wait_and_verify(&server).await;
    assert_eq!(
        processed, orders as usize,
        "every order is in the log exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_serve_on_a_data_dir_in_use_exits_saying_why() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    let (root, data, deploy) = (
        dirs.root().to_owned(),
        dirs.data().display().to_string(),
        dirs.deploy().display().to_string(),
    );
    let second = tokio::task::spawn_blocking(move || {
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data,
            "--deploy-dir",
            &deploy,
        ];
        run_choreo(&root, &args, &[], DEADLINE)
    })
    .await
    .unwrap();
    assert!(
        !second.ok && second.stderr.contains("another process holds it"),
        "{second}"
    );
    // The first server still takes events.
    server
        .api()
        .publish("orders.created", &[], "{}")
        .await
        .unwrap();
}
