//! The one place SFTP connections are made (russh and russh-sftp: SSH in pure Rust on
//! tokio, with *ring* for its cryptography): the `sftp` destination and the engine's
//! SFTP source both connect through [`SftpServer`].
//!
//! The server's host key is pinned, never learned: `known_hosts` names an OpenSSH
//! `known_hosts` file (the line for `host`, or `[host]:port` off port 22) or
//! `host_key_fingerprint` the key's SHA-256 fingerprint as `ssh-keygen -lf` prints it
//! (`SHA256:...`). A key that is not pinned ends the connection before any credential is
//! sent. The client logs in with a private key (`private_key`, OpenSSH format) or a
//! password (`password_env` or `password_file`), read once at start and never logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKey, PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use russh_sftp::client::SftpSession;
use serde::Deserialize;

/// The SFTP client crate, for the engine's source (its file types and open flags).
pub use russh_sftp;

/// `server = { host = "...", ... }`: where an SFTP source or destination connects and how
/// it proves who it is and checks who the server is.
///
/// ```
/// let server: delivery::sftp::SftpServerConfig = toml::from_str(r#"
///     host = "sftp.lab.example.org"
///     username = "corridor"
///     private_key = "keys/corridor_ed25519"
///     host_key_fingerprint = "SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s"
/// "#).unwrap();
/// assert_eq!(server.port, 22);
/// assert!(server.check().is_ok());
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SftpServerConfig {
    /// The server's host name or address.
    pub host: String,
    /// Its port (default 22).
    #[serde(default = "default_port")]
    pub port: u16,
    /// The account to log in as.
    pub username: String,
    /// An OpenSSH `known_hosts` file holding the server's key (relative to the
    /// configuration file).
    #[serde(default)]
    pub known_hosts: Option<PathBuf>,
    /// The server key's SHA-256 fingerprint, `SHA256:` and unpadded base64.
    #[serde(default)]
    pub host_key_fingerprint: Option<String>,
    /// A private key file in OpenSSH format (relative to the configuration file).
    #[serde(default)]
    pub private_key: Option<PathBuf>,
    /// The environment variable holding the password (or the private key's passphrase
    /// with `private_key`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file whose first line is the password (or the private key's passphrase).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// How long connecting and logging in may take (default `"15s"`).
    #[serde(default = "default_connect_timeout", with = "conf::duration")]
    pub connect_timeout: Duration,
}

fn default_port() -> u16 {
    22
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(15)
}

impl SftpServerConfig {
    /// Checks the keys without reading a file; an error is (key under `server.`, words).
    pub fn check(&self) -> Result<(), (String, String)> {
        let fail = |key: &str, words: &str| Err((key.to_owned(), words.to_owned()));
        if self.host.trim().is_empty() {
            return fail("host", "must not be empty");
        }
        if self.username.trim().is_empty() {
            return fail("username", "must not be empty");
        }
        match (&self.known_hosts, &self.host_key_fingerprint) {
            (None, None) => {
                return fail(
                    "known_hosts",
                    "the server's key must be pinned: give `known_hosts` or `host_key_fingerprint`",
                );
            }
            (Some(_), Some(_)) => {
                return fail(
                    "host_key_fingerprint",
                    "give `known_hosts` or `host_key_fingerprint`, not both",
                );
            }
            (None, Some(fingerprint)) => {
                if parse_fingerprint(fingerprint).is_none() {
                    return fail(
                        "host_key_fingerprint",
                        "must be a SHA-256 fingerprint as `ssh-keygen -lf` prints it (`SHA256:` and 43 base64 characters)",
                    );
                }
            }
            (Some(_), None) => {}
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return fail(
                "password_file",
                "give `password_env` or `password_file`, not both",
            );
        }
        if self.private_key.is_none() && self.password_env.is_none() && self.password_file.is_none()
        {
            return fail(
                "private_key",
                "give `private_key`, `password_env` or `password_file` to log in with",
            );
        }
        if self.connect_timeout.is_zero() {
            return fail("connect_timeout", "must be longer than zero");
        }
        Ok(())
    }
}

/// The 32 bytes of a `SHA256:...` fingerprint.
fn parse_fingerprint(text: &str) -> Option<String> {
    let encoded = text.strip_prefix("SHA256:")?.trim_end_matches('=');
    (encoded.len() == 43
        && encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'))
    .then(|| encoded.to_owned())
}

/// How the server's key is checked.
#[derive(Debug, Clone)]
enum HostKeyPin {
    KnownHosts(PathBuf),
    Fingerprint(String),
}

/// How the client logs in.
#[derive(Clone)]
enum Login {
    Key(Arc<PrivateKey>),
    Password(String),
}

/// A server to connect to, its credentials read: what sources and destinations keep.
#[derive(Clone)]
pub struct SftpServer {
    host: String,
    port: u16,
    username: String,
    pin: HostKeyPin,
    login: Login,
    connect_timeout: Duration,
}

impl std::fmt::Debug for SftpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No credential, ever.
        f.debug_struct("SftpServer")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl SftpServer {
    /// Reads the credentials and checks the pin's file now; errors name the key
    /// (`server.password_env`, `server.known_hosts`). Relative paths start at `base`.
    pub fn new(config: &SftpServerConfig, base: &Path) -> Result<SftpServer, String> {
        config
            .check()
            .map_err(|(key, words)| format!("`server.{key}`: {words}"))?;
        let pin = match (&config.known_hosts, &config.host_key_fingerprint) {
            (Some(file), _) => {
                let path = base.join(file);
                std::fs::metadata(&path).map_err(|e| {
                    format!("`server.known_hosts`: cannot read {}: {e}", path.display())
                })?;
                HostKeyPin::KnownHosts(path)
            }
            (None, Some(fingerprint)) => HostKeyPin::Fingerprint(
                parse_fingerprint(fingerprint)
                    .ok_or("`server.host_key_fingerprint`: not a SHA-256 fingerprint")?,
            ),
            (None, None) => {
                return Err("`server.known_hosts`: the server's key must be pinned".into());
            }
        };
        let secret = secret(config, base)?;
        let login = match &config.private_key {
            Some(file) => {
                let path = base.join(file);
                let key = russh::keys::load_secret_key(&path, secret.as_deref()).map_err(|e| {
                    format!(
                        "`server.private_key`: cannot read the key in {}: {e}",
                        path.display()
                    )
                })?;
                Login::Key(Arc::new(key))
            }
            None => Login::Password(secret.ok_or("`server.password_env`: no password given")?),
        };
        Ok(SftpServer {
            host: config.host.clone(),
            port: config.port,
            username: config.username.clone(),
            pin,
            login,
            connect_timeout: config.connect_timeout,
        })
    }

    /// `host:port`, for messages.
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// Connects, checks the host key, logs in and opens the SFTP subsystem, within
    /// `connect_timeout`. The error names the server, never a credential.
    pub async fn connect(&self) -> Result<SftpConnection, String> {
        match tokio::time::timeout(self.connect_timeout, self.connect_now()).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "SFTP server {}: no session within {:?}",
                self.address(),
                self.connect_timeout
            )),
        }
    }

    async fn connect_now(&self) -> Result<SftpConnection, String> {
        let address = self.address();
        let refused = Arc::new(Mutex::new(None));
        let checker = HostKeyCheck {
            host: self.host.clone(),
            port: self.port,
            pin: self.pin.clone(),
            refused: Arc::clone(&refused),
        };
        let config = Arc::new(client::Config {
            inactivity_timeout: Some(Duration::from_secs(300)),
            ..Default::default()
        });
        let mut handle =
            match client::connect(config, (self.host.as_str(), self.port), checker).await {
                Ok(handle) => handle,
                Err(err) => {
                    let why = refused
                        .lock()
                        .ok()
                        .and_then(|mut r| r.take())
                        .unwrap_or_else(|| err.to_string());
                    return Err(format!("SFTP server {address}: {why}"));
                }
            };
        let fail = |e: russh::Error| format!("SFTP server {address}: {e}");
        let accepted = match &self.login {
            Login::Key(key) => {
                let hash = handle
                    .best_supported_rsa_hash()
                    .await
                    .map_err(fail)?
                    .flatten();
                handle
                    .authenticate_publickey(
                        self.username.clone(),
                        PrivateKeyWithHashAlg::new(Arc::clone(key), hash),
                    )
                    .await
                    .map_err(fail)?
            }
            Login::Password(password) => handle
                .authenticate_password(self.username.clone(), password.clone())
                .await
                .map_err(fail)?,
        };
        if !accepted.success() {
            return Err(format!(
                "SFTP server {address}: the server refused the login of {}",
                self.username
            ));
        }
        let channel = handle.channel_open_session().await.map_err(fail)?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(fail)?;
        let sftp = SftpSession::new(channel.into_stream())
            .await
            .map_err(|e| format!("SFTP server {address}: the SFTP subsystem failed: {e}"))?;
        sftp.set_timeout(self.connect_timeout.as_secs().max(1));
        Ok(SftpConnection {
            sftp,
            _handle: handle,
        })
    }
}

/// The secret of `config`: the password, or the private key's passphrase.
fn secret(config: &SftpServerConfig, base: &Path) -> Result<Option<String>, String> {
    if let Some(var) = &config.password_env {
        return std::env::var(var).map(Some).map_err(|_| {
            format!("`server.password_env`: the environment variable {var} is not set")
        });
    }
    if let Some(file) = &config.password_file {
        let path = base.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "`server.password_file`: cannot read {}: {e}",
                path.display()
            )
        })?;
        return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
    }
    Ok(None)
}

/// An open SFTP session; dropping it closes the connection.
pub struct SftpConnection {
    /// The SFTP operations.
    pub sftp: SftpSession,
    _handle: client::Handle<HostKeyCheck>,
}

/// The russh handler: checks the server's key against the pin and nothing else.
struct HostKeyCheck {
    host: String,
    port: u16,
    pin: HostKeyPin,
    /// Why the key was refused, for the connection's error.
    refused: Arc<Mutex<Option<String>>>,
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_public_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = server_public_key else {
            self.refuse(
                "the server offered a host certificate; only pinned host keys are accepted".into(),
            );
            return Ok(false);
        };
        let shown = key.fingerprint(HashAlg::Sha256).to_string();
        let accepted = match &self.pin {
            HostKeyPin::Fingerprint(pinned) => {
                shown
                    .strip_prefix("SHA256:")
                    .map(|s| s.trim_end_matches('='))
                    == Some(pinned)
            }
            HostKeyPin::KnownHosts(path) => {
                match russh::keys::check_known_hosts_path(&self.host, self.port, key, path) {
                    Ok(found) => found,
                    Err(russh::keys::Error::KeyChanged { line }) => {
                        self.refuse(format!(
                            "the host key {shown} differs from the one on line {line} of {}",
                            path.display()
                        ));
                        return Ok(false);
                    }
                    Err(err) => {
                        self.refuse(format!("cannot read {}: {err}", path.display()));
                        return Ok(false);
                    }
                }
            }
        };
        if !accepted {
            self.refuse(format!(
                "the host key {shown} is not the pinned one; the connection was closed before logging in"
            ));
        }
        Ok(accepted)
    }
}

impl HostKeyCheck {
    fn refuse(&self, why: String) {
        if let Ok(mut refused) = self.refused.lock() {
            *refused = Some(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> SftpServerConfig {
        toml::from_str(&format!("host = \"127.0.0.1\"\nusername = \"u\"\n{extra}")).unwrap()
    }

    #[test]
    fn an_unpinned_server_is_refused_naming_the_key() {
        let err = config("password_env = \"X\"").check().unwrap_err();
        assert_eq!(err.0, "known_hosts");
    }

    #[test]
    fn a_malformed_fingerprint_is_named() {
        let err = config("password_env = \"X\"\nhost_key_fingerprint = \"MD5:aa:bb\"")
            .check()
            .unwrap_err();
        assert_eq!(err.0, "host_key_fingerprint");
    }

    #[test]
    fn a_missing_password_variable_is_named_without_a_value() {
        let c = config(
            "password_env = \"CORRIDOR_TEST_SURELY_UNSET\"\nhost_key_fingerprint = \"SHA256:uNiVztksCsDhcc0u9e8BujQXVUpKZIDTMczCvj3tD2s\"",
        );
        let err = SftpServer::new(&c, Path::new(".")).unwrap_err();
        assert!(err.starts_with("`server.password_env`"), "{err}");
    }
}
