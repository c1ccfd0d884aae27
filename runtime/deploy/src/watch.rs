//! Watching the deploy folder: file events in, debounced per stem, applied one at a
//! time, changes out.
//!
//! notify delivers raw events on its own thread; they are forwarded into the async
//! loop, mapped to stems (ignored names dropped), and each stem waits until it has been
//! quiet for the debounce time. A burst of writes to one file is therefore one load; a
//! file still being written when the timer fires fails to compile, is recorded as a
//! problem, and is tried again at its next write. Due stems are applied in the order
//! their last event arrived.
//!
//! Events that arrived between [`Deployer::scan`] and the start of the watch are not
//! lost: the watch begins by checking every stem once (an unchanged file costs one
//! read and hash). When notify reports that it dropped events, every known stem is
//! checked again.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::deployer::Deployer;
use crate::error::Error;
use crate::files::stem_of;
use crate::registry::Change;

/// How long the loop sleeps when nothing is pending; it wakes earlier on any event.
const IDLE_WAKE: Duration = Duration::from_secs(3600);

impl Deployer {
    /// Watches the folder until `shutdown` resolves, sending each change. File events
    /// are debounced per file. Returns early, with `Ok`, if `changes` is closed.
    ///
    /// A shutdown during a load abandons it: nothing is sent for it, and the next start
    /// loads the file again (from the cache).
    pub async fn watch(
        &self,
        changes: mpsc::Sender<Change>,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), Error> {
        let dir = self.inner.config.deploy_dir.clone();
        let debounce = self.inner.config.debounce;
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                // The receiver is gone only when the watch ended; nothing to tell then.
                let _ = events_tx.send(event);
            })
            .map_err(|source| Error::Watch {
                dir: dir.clone(),
                source,
            })?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(|source| Error::Watch {
                dir: dir.clone(),
                source,
            })?;
        tracing::info!(dir = %dir.display(), "watching the deploy folder");

        // stem → when it is due (last event + debounce).
        let mut pending: HashMap<String, Instant> = HashMap::new();
        let now = Instant::now();
        for stem in self.known_stems().await {
            pending.insert(stem, now);
        }
        tokio::pin!(shutdown);
        loop {
            let next_due = pending.values().min().copied();
            tokio::select! {
                () = &mut shutdown => return Ok(()),
                event = events.recv() => {
                    let event = event.expect("the watcher, which holds the sender, is alive");
                    match event {
                        Ok(event) if event.need_rescan() => {
                            tracing::warn!(dir = %dir.display(), "file events were lost; checking every file");
                            let due = Instant::now() + debounce;
                            for stem in self.known_stems().await {
                                pending.insert(stem, due);
                            }
                        }
                        Ok(event) => {
                            if is_content_event(&event.kind) {
                                // A file renamed into the folder is complete (that is how
                                // `choreo deploy` and careful tools write), so it is loaded at
                                // once; anything else waits for the writer to go quiet.
                                let due = if is_rename_into(&event.kind) {
                                    Instant::now()
                                } else {
                                    Instant::now() + debounce
                                };
                                for stem in event.paths.iter().filter_map(|p| stem_of(p)) {
                                    pending.insert(stem, due);
                                }
                            }
                        }
                        Err(err) => {
                            tracing::warn!(dir = %dir.display(), error = %err, "file watcher error; checking every file");
                            let due = Instant::now() + debounce;
                            for stem in self.known_stems().await {
                                pending.insert(stem, due);
                            }
                        }
                    }
                }
                () = tokio::time::sleep_until(next_due.unwrap_or_else(|| Instant::now() + IDLE_WAKE)),
                    if next_due.is_some() => {
                    let now = Instant::now();
                    let mut due: Vec<(Instant, String)> = pending
                        .iter()
                        .filter(|(_, at)| **at <= now)
                        .map(|(stem, at)| (*at, stem.clone()))
                        .collect();
                    due.sort();
                    let mut deployed = false;
                    for (_, stem) in due {
                        pending.remove(&stem);
                        let applied = tokio::select! {
                            () = &mut shutdown => return Ok(()),
                            applied = self.apply(&stem) => applied,
                        };
                        for change in applied {
                            deployed |= matches!(change, Change::Deployed(_));
                            if changes.send(change).await.is_err() {
                                tracing::debug!("change receiver closed; the watch ends");
                                return Ok(());
                            }
                        }
                    }
                    // After the changes are out, so housekeeping never delays serving.
                    if deployed {
                        self.prune_cache().await;
                    }
                }
            }
        }
    }
}

/// Whether an event is a rename whose destination is in the folder.
fn is_rename_into(kind: &EventKind) -> bool {
    matches!(
        kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
    )
}

/// Whether an event can mean new content or a removal. Opening or reading a file
/// (which the deployer itself does) cannot; closing it after writing can.
fn is_content_event(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}
