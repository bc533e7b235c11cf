//! Why the engine could not start: every part's start error, each naming its key
//! or part.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid.
    #[error("{0}")]
    Config(#[from] crate::config::ConfigErrors),
    /// The database could not be opened.
    #[error("cannot open the database in {dir}: {source}")]
    Store {
        /// The data directory.
        dir: PathBuf,
        /// What went wrong.
        source: store::Error,
    },
    /// A channel's destinations could not be started.
    #[error("{0}")]
    Delivery(#[from] delivery::StartError),
    /// A channel's steps could not be built.
    #[error("channels.{channel}: {reason}")]
    Steps {
        /// The channel.
        channel: String,
        /// What the step compiler said.
        reason: String,
    },
    /// The master patient index could not be opened.
    #[error("mpi: {0}")]
    PatientIndex(#[from] mpi::ServiceError),
    /// The open-file limit leaves no room for the listeners' connections.
    #[error("{0}")]
    OpenFiles(String),
    /// Access control could not be set up (its tables, the OIDC issuer's keys).
    #[error("{key}: {reason}")]
    Access {
        /// The configuration key concerned.
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// The alerts could not be started (a notifier's TLS file or password, the history).
    #[error("{0}")]
    Alerts(String),
    /// The terminology could not be loaded (a configured file, its tables).
    #[error("{key}: {reason}")]
    Terminology {
        /// The configuration key concerned (`terminology.files[0]`).
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// The clinical rules could not be built (the CDS Hooks services' rules from
    /// `[rules]`).
    #[error("{key}: {reason}")]
    Rules {
        /// The configuration key concerned (`rules.duplicate_test.tests[0]`).
        key: String,
        /// What went wrong.
        reason: String,
    },
    /// A listener could not be started.
    #[error("{key}: cannot listen on {addr}: {reason}")]
    Listen {
        /// The configuration key of the listener (`channels.lab.source.listen`).
        key: String,
        /// The address.
        addr: SocketAddr,
        /// What went wrong.
        reason: String,
    },
}
