//! The audit trail's own retention (`[audit] retention`, default six years): a
//! background task drops the records older than that every `prune_interval`, keeping
//! the hash chain verifiable ([`access::audit::Audit::prune`]).
//!
//! It is apart from message retention on purpose: pruning a channel's messages never
//! touches the audit trail (HIPAA asks for its records to be kept for six years, far
//! longer than messages usually are), and the audit trail is pruned only here.

use std::time::Duration;

use access::audit::Audit;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The running audit retention task.
pub struct AuditRetention {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl AuditRetention {
    /// Prunes records older than `retention` now, and then every `interval`.
    pub fn spawn(audit: Audit, retention: Duration, interval: Duration) -> AuditRetention {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                match audit.prune(retention).await {
                    Ok(0) => debug!("audit retention: nothing to drop"),
                    Ok(dropped) => info!(
                        records = dropped,
                        retention_days = retention.as_secs() / 86_400,
                        "audit retention dropped records past the retention period"
                    ),
                    Err(err) => {
                        warn!(error = %err, "audit retention pass failed; trying again at the next interval")
                    }
                }
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = stopped.changed() => return,
                }
                if *stopped.borrow() {
                    return;
                }
            }
        });
        AuditRetention { stop, task }
    }

    /// Stops the task (after the pass in progress, if any).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}
