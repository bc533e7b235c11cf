//! `--data DIR` / `--config FILE`: which data directory a command works on, as
//! `corridor run` would choose it.

use std::path::PathBuf;

/// The data directory options shared by commands that open the database.
#[derive(clap::Args)]
pub struct DataDirArgs {
    /// Data directory (the database), as given to `corridor run --data`.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Configuration file: its `[data] dir` is used.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl DataDirArgs {
    /// `--data`, else the configuration's `[data] dir`, else the default's.
    pub fn dir(&self) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.data {
            return Ok(dir.clone());
        }
        match &self.config {
            Some(path) => match engine::Config::load(path) {
                Ok(config) => Ok(config.data.dir),
                Err(errors) => anyhow::bail!("{errors}"),
            },
            None => Ok(engine::Config::default_config().data.dir),
        }
    }

    /// Opens the store in the data directory (creating it when missing).
    pub fn open_store(&self) -> anyhow::Result<store::Store> {
        let dir = self.dir()?;
        store::Store::open(&dir)
            .map_err(|e| anyhow::anyhow!("cannot open the data directory {}: {e}", dir.display()))
    }
}

/// A role given on the command line.
pub fn parse_role(text: &str) -> Result<access::Role, String> {
    text.parse().map_err(|e: access::UnknownRole| e.to_string())
}

/// Microseconds since the Unix epoch as RFC 3339, or `-` for none.
pub fn time_or_dash(micros: Option<i64>) -> String {
    micros.map_or_else(|| "-".to_owned(), access::audit::rfc3339)
}
