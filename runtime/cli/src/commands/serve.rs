//! `choreo serve`: open the broker, load the components in the deploy folder, start
//! delivering, and serve the HTTP API until a signal.
//!
//! Startup order matters: the listener is bound first (so `listening on` names the real
//! address, port 0 included) and `/readyz` answers 503 until every component present at
//! startup is loaded and delivering. Shutdown on SIGINT/SIGTERM: stop accepting, let
//! in-flight deliveries finish within the grace period, flush the broker, exit 0. A
//! second signal exits at once — safe, because nothing is acknowledged before it is
//! durable.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use choreo_broker::{Broker, SledBroker};
use choreo_deploy::{Change, DeployConfig, Deployer};
use choreo_dispatch::{DispatchPlan, Dispatcher};
use choreo_host::Host;
use choreo_ingress::{AppState, Auth, IngressConfig, Telemetry};
use tokio::sync::{mpsc, watch};

use crate::config::{LogFormat, ServeConfig, ServeFlags};
use crate::open_files;

/// Arguments of `choreo serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    flags: ServeFlags,
}

/// Changes from the deploy watcher waiting to be applied.
const CHANGE_QUEUE: usize = 64;

/// Connections the kernel holds for the API before they are accepted (capped by
/// `net.core.somaxconn`): room for a burst of clients reconnecting at once, and for
/// newcomers while the connection limit is reached. The usual 128 drops the rest of a
/// burst's SYNs, which their clients resend only after a second.
const LISTEN_BACKLOG: u32 = 1024;

/// Binds the API's listener, with [`LISTEN_BACKLOG`].
fn bind(address: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if address.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // A restart can listen again at once, with the last run's connections in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let config = ServeConfig::resolve(args.flags)?;
    init_tracing(&config)?;

    let broker_dir = config.data_dir.join("broker");
    let mut broker_config = choreo_broker::Config::new(&broker_dir);
    broker_config.durability = config.durability;
    let broker: Arc<dyn Broker> = Arc::new(
        tokio::task::spawn_blocking(move || SledBroker::open(broker_config))
            .await
            .context("opening the broker panicked")?
            .with_context(|| format!("cannot open the broker in {}", broker_dir.display()))?,
    );
    let host = Host::new().context("cannot start the WebAssembly host")?;
    let deployer = Deployer::new(
        host,
        DeployConfig::new(&config.deploy_dir, config.data_dir.join("cache")),
    )
    .context("cannot set up the deploy folder")?;
    let dispatcher = Arc::new(Dispatcher::new(broker.clone()));

    let open_files = open_files::raise_limit();
    let max_connections = open_files::max_connections(
        config.max_connections,
        choreo_ingress::DEFAULT_MAX_CONNECTIONS,
        open_files,
    )?;
    if config.max_connections.is_none() && max_connections < choreo_ingress::DEFAULT_MAX_CONNECTIONS
    {
        tracing::warn!(
            open_files,
            max_connections,
            "the open-files limit leaves room for fewer HTTP connections than the default; \
             raise it (ulimit -n, or LimitNOFILE= under systemd) to serve more at once"
        );
    }
    let listener =
        bind(config.listen).with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let telemetry = Arc::new(Telemetry::default());
    let state = Arc::new(AppState::new(
        broker.clone(),
        deployer.registry(),
        dispatcher.clone(),
        IngressConfig {
            max_body_bytes: config.max_body_bytes,
            max_batch_events: config.max_batch_events,
            max_reply_waiters: config.max_reply_waiters,
            max_header_bytes: config.max_header_bytes,
            max_reply_timeout: config.max_reply_timeout,
            max_stream_clients: config.max_stream_clients,
            max_connections,
            idle_timeout: config.idle_timeout,
        },
        Auth::new(config.tokens.clone())
            .map_err(|e| anyhow::anyhow!("invalid tokens in the config file: {e}"))?,
        telemetry.clone(),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    // Started before the server answers, so metrics and the topics catalog miss no
    // event published through it.
    let tracker = tokio::spawn(choreo_ingress::track_log(
        broker.clone(),
        telemetry,
        stopped(stop_rx.clone()),
    ));
    let server = tokio::spawn(choreo_ingress::serve(
        listener,
        state.clone(),
        stopped(stop_rx.clone()),
    ));
    tracing::info!(
        durability = config.durability.as_str(),
        data_dir = %config.data_dir.display(),
        deploy_dir = %config.deploy_dir.display(),
        "listening on http://{address}"
    );

    for change in deployer.scan().await {
        apply(&dispatcher, change).await;
    }
    state.ready.store(true, Ordering::Release);
    tracing::info!(handlers = dispatcher.running().await.len(), "ready");

    let (changes_tx, mut changes) = mpsc::channel(CHANGE_QUEUE);
    let watcher = {
        let deployer = deployer.clone();
        let stop = stopped(stop_rx.clone());
        tokio::spawn(async move { deployer.watch(changes_tx, stop).await })
    };
    let applier = {
        let dispatcher = dispatcher.clone();
        tokio::spawn(async move {
            while let Some(change) = changes.recv().await {
                apply(&dispatcher, change).await;
            }
        })
    };

    wait_for_signal().await?;
    tracing::info!("stopping: no new requests; in-flight deliveries finish");
    tokio::spawn(async {
        // A second signal means "now": acknowledged events are already durable.
        if wait_for_signal().await.is_ok() {
            tracing::warn!("second signal: exiting at once");
            std::process::exit(130);
        }
    });
    let _ = stop_tx.send(true);
    if !dispatcher.shutdown(config.shutdown_grace).await {
        tracing::warn!(
            "some deliveries were still running at the end of the grace period; they will be redelivered"
        );
    }
    let _ = server.await;
    let _ = tracker.await;
    if let Ok(Err(err)) = watcher.await {
        tracing::warn!(error = %err, "the deploy watcher stopped with an error");
    }
    applier.abort();
    broker
        .close()
        .await
        .context("flushing the broker on shutdown failed")?;
    tracing::info!("stopped");
    Ok(())
}

/// Applies one deploy change to the dispatcher; a failure is logged, never fatal.
async fn apply(dispatcher: &Dispatcher, change: Change) {
    match change {
        Change::Deployed(deployment) => {
            let plan = DispatchPlan {
                concurrency: deployment.manifest.concurrency,
                start: deployment.manifest.start,
                retry: deployment.manifest.retry,
            };
            let name = deployment.name().clone();
            match dispatcher.deploy(deployment.handler.clone(), plan).await {
                Ok(()) => tracing::info!(
                    handler = %name,
                    version = %deployment.handler.info().version,
                    from_cache = deployment.from_cache,
                    load_ms = deployment.load_time.as_millis() as u64,
                    "handler deployed"
                ),
                Err(err) => {
                    tracing::error!(handler = %name, error = %err, "deploying the handler failed")
                }
            }
        }
        Change::Removed(name) => match dispatcher.undeploy(&name).await {
            Ok(()) => tracing::info!(handler = %name, "handler removed; its queue is kept"),
            Err(err) => {
                tracing::error!(handler = %name, error = %err, "removing the handler failed")
            }
        },
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}

fn init_tracing(config: &ServeConfig) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log)
        .with_context(|| format!("invalid log filter `{}`", config.log))?;
    use std::io::IsTerminal;
    // Colours only for a person at a terminal; files and pipes get plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|err| anyhow::anyhow!("cannot install the log subscriber: {err}"))
}
