//! SFTP destinations: one file per message in a folder on an SFTP server
//! ([`crate::sftp`] connects, pins the host key and logs in).
//!
//! Each message is written under a temporary name (`.NAME.partial`), synced when the
//! server offers `fsync@openssh.com`, closed, and only then renamed to its name, so a
//! reader of the folder never sees half a file. Redelivery after a crash rewrites the
//! same name when the template holds `{message_id}` or `{entry_id}`: the old file is
//! removed and the new one renamed in its place (SFTP's rename does not replace), so
//! the folder holds each message once. A server that cannot be reached, refuses the
//! login or fails a write is a transient failure: the entry stays queued and is tried
//! again, as for every destination. The connection is kept between deliveries and made
//! again after a failure.

use std::path::Path;

use russh_sftp::protocol::OpenFlags;
use serde::Deserialize;
use store::UnixMicros;
use tokio::io::AsyncWriteExt;

use super::file::NameTemplate;
use super::{Delivered, DeliveryMeta, Destination, DestinationConfig, Outgoing};
use crate::error::{ConfigError, DeliveryError};
use crate::sftp::{SftpConnection, SftpServer, SftpServerConfig};

/// `type = "sftp"`: an SFTP destination's own keys (the keys every destination takes are
/// in [`DestinationConfig`]).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SftpDestinationConfig {
    /// The server and how to log in (required).
    #[serde(default)]
    pub server: Option<SftpServerConfig>,
    /// The folder on the server files are written to (required; it must exist).
    #[serde(default)]
    pub path: Option<String>,
    /// The file name template, as for a file destination (default
    /// `{channel}-{message_id}-{control_id}.hl7`).
    #[serde(default)]
    pub file_name: Option<String>,
}

impl SftpDestinationConfig {
    /// Checks the keys; an error names its key in backquotes.
    pub(crate) fn check(&self) -> Result<(), String> {
        let Some(server) = &self.server else {
            return Err(
                "sftp destinations need `server = { host = ..., username = ..., ... }`".into(),
            );
        };
        server
            .check()
            .map_err(|(key, words)| format!("`server.{key}`: {words}"))?;
        match &self.path {
            None => return Err("sftp destinations need `path` (the folder on the server)".into()),
            Some(path) if path.trim().is_empty() => {
                return Err("`path` must not be empty".into());
            }
            Some(_) => {}
        }
        if let Some(template) = &self.file_name {
            NameTemplate::parse(template)?;
        }
        Ok(())
    }
}

/// Writes messages into a folder on an SFTP server.
pub struct SftpDestination {
    server: SftpServer,
    dir: String,
    template: NameTemplate,
    connection: Option<SftpConnection>,
}

impl SftpDestination {
    /// From a validated `type = "sftp"` configuration: the credentials and the host key
    /// pin are read now; the server is not reached until the first delivery.
    pub fn new(
        config: &DestinationConfig,
        sftp: &SftpDestinationConfig,
        base: &Path,
    ) -> Result<SftpDestination, ConfigError> {
        let fail = |reason: String| ConfigError::Invalid {
            destination: config.name.clone(),
            reason,
        };
        let server = sftp
            .server
            .as_ref()
            .ok_or_else(|| fail("sftp destinations need `server`".into()))?;
        let server = SftpServer::new(server, base).map_err(fail)?;
        let dir = sftp
            .path
            .clone()
            .ok_or_else(|| fail("sftp destinations need `path`".into()))?;
        let template = NameTemplate::parse(
            sftp.file_name
                .as_deref()
                .unwrap_or("{channel}-{message_id}-{control_id}.hl7"),
        )
        .map_err(fail)?;
        Ok(SftpDestination {
            server,
            dir: dir.trim_end_matches('/').to_owned(),
            template,
            connection: None,
        })
    }

    fn remote(&self, name: &str) -> String {
        if self.dir.is_empty() {
            format!("/{name}")
        } else {
            format!("{}/{name}", self.dir)
        }
    }

    /// Writes one message under a temporary name and renames it into place.
    async fn write(&mut self, message: &Outgoing, meta: &DeliveryMeta) -> Result<String, String> {
        if self.connection.is_none() {
            self.connection = Some(self.server.connect().await?);
        }
        let name = self.template.render(message, meta);
        let path = self.remote(&name);
        let temporary = self.remote(&format!(".{name}.partial"));
        let Some(connection) = &self.connection else {
            return Err("no SFTP session".into());
        };
        let sftp = &connection.sftp;
        let at = self.server.address();
        let mut file = sftp
            .open_with_flags(
                temporary.clone(),
                OpenFlags::CREATE | OpenFlags::TRUNCATE | OpenFlags::WRITE,
            )
            .await
            .map_err(|e| {
                format!(
                    "SFTP server {at}: cannot create a file in {}: {e}",
                    self.dir
                )
            })?;
        file.write_all(&message.payload)
            .await
            .map_err(|e| format!("SFTP server {at}: cannot write into {}: {e}", self.dir))?;
        // Without the extension the server writes when it closes the file.
        let _ = file.sync_all().await;
        file.shutdown()
            .await
            .map_err(|e| format!("SFTP server {at}: cannot close a file in {}: {e}", self.dir))?;
        if let Err(first) = sftp.rename(temporary.clone(), path.clone()).await {
            // SFTP's rename does not replace: a redelivery finds its earlier copy there.
            if sftp.try_exists(path.clone()).await.unwrap_or(false) {
                sftp.remove_file(path.clone()).await.map_err(|e| {
                    format!(
                        "SFTP server {at}: cannot replace a file in {}: {e}",
                        self.dir
                    )
                })?;
                sftp.rename(temporary, path.clone()).await.map_err(|e| {
                    format!(
                        "SFTP server {at}: cannot rename a file in {}: {e}",
                        self.dir
                    )
                })?;
            } else {
                return Err(format!(
                    "SFTP server {at}: cannot rename a file in {}: {first}",
                    self.dir
                ));
            }
        }
        Ok(path)
    }
}

impl Destination for SftpDestination {
    async fn deliver(
        &mut self,
        message: &Outgoing,
        meta: &DeliveryMeta,
    ) -> Result<Delivered, DeliveryError> {
        match self.write(message, meta).await {
            Ok(path) => Ok(Delivered {
                answer: format!("written to {path} on {}", self.server.address()),
                answered_at: UnixMicros::now(),
            }),
            Err(reason) => {
                // Made again at the next attempt: the session may be what failed.
                self.connection = None;
                Err(DeliveryError::transient(reason))
            }
        }
    }

    async fn disconnect(&mut self) {
        // The SSH session ends when dropped.
        self.connection = None;
    }
}
