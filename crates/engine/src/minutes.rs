//! The per-minute history of each channel's volume and latency (`store::minutes`): a
//! background task writes the minute just ended once a minute, from what the store
//! observed in memory, so the dashboard's charts over hours and days read a few small
//! rows instead of the journal.

use std::time::Duration;

use store::Store;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

/// The running minute writer.
pub struct MinuteWriter {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// How long until `seconds` past the next full minute.
fn until_next_minute(seconds: u64) -> Duration {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let into = now.as_millis() % 60_000;
    Duration::from_millis((60_000 - into as u64) + seconds * 1_000)
}

impl MinuteWriter {
    /// Creates the table if needed, then writes each minute's rows a second after it
    /// ends. A write that fails is logged and that minute is left out of the charts.
    pub fn spawn(store: Store) -> MinuteWriter {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            if let Err(error) = store
                .migrate_component(store::minutes::COMPONENT, store::minutes::MIGRATIONS)
                .await
            {
                warn!(%error, "the per-minute history could not be created; the dashboard's charts stay empty");
                return;
            }
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(until_next_minute(1)) => {}
                    _ = stopped.changed() => return,
                }
                if *stopped.borrow() {
                    return;
                }
                let (minute, rows) = store.last_minute();
                // Redone from nothing if lost: no fsync of its own.
                if let Err(error) = store
                    .write_unsynced(move |conn| store::minutes::write_in(conn, minute, &rows))
                    .await
                {
                    warn!(%error, minute, "a minute of the per-minute history was not written");
                }
            }
        });
        MinuteWriter { stop, task }
    }

    /// Stops the task.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
