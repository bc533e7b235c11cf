//! The engine's terminology: the stored loads in force (`terminology::TerminologyService`),
//! the `[terminology] files` stored at start, and the poll that puts loads made by
//! another process (`corridor terminology load` against the data directory) in force
//! without a restart.

use std::time::Duration;

use store::Store;
use terminology::{LoadFile, TerminologyService};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::start_error::StartError;

/// Migrates the component's tables, stores each `[terminology] files` file that
/// changed since its last load (named by its path as written), and puts the newest
/// loads in force.
pub(crate) async fn open(config: &Config, store: &Store) -> Result<TerminologyService, StartError> {
    let failed = |key: String, reason: String| StartError::Terminology { key, reason };
    TerminologyService::migrate(store)
        .await
        .map_err(|e| failed("data.dir".to_owned(), e.to_string()))?;
    let service = TerminologyService::new(store.clone(), config.terminology.starter);
    for (i, file) in config.terminology.files.iter().enumerate() {
        let key = format!("terminology.files[{i}]");
        let path = config.base_dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| failed(key.clone(), format!("{}: {e}", path.display())))?;
        let name = file.display().to_string();
        let files = vec![LoadFile {
            name: name.clone(),
            text,
        }];
        service
            .ensure_loaded(&name, files, "configuration")
            .await
            .map_err(|e| failed(key, e.to_string()))?;
    }
    let refreshed = service.clone();
    tokio::task::spawn_blocking(move || refreshed.refresh())
        .await
        .map_err(|e| failed("terminology".to_owned(), e.to_string()))?
        .map_err(|e| failed("terminology".to_owned(), e.to_string()))?;
    Ok(service)
}

/// Looks for new loads every `interval`; a failed read is logged and tried again.
pub(crate) fn spawn_reload(service: TerminologyService, interval: Duration) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let service = service.clone();
            match tokio::task::spawn_blocking(move || service.refresh()).await {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => {
                    tracing::warn!(%error, "terminology reload failed; trying again");
                }
                Err(error) => tracing::warn!(%error, "terminology reload failed; trying again"),
            }
        }
    })
}
