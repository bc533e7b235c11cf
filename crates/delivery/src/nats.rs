//! Connecting to a NATS server, shared by the `nats` destination and the engine's
//! `nats` source: `url` (`nats://host:port`, or `tls://host:port`), the credentials
//! (`user` with `password_env` or `password_file`, `token_env`, or a `.creds` file in
//! `credentials`) and `tls` (the CA the server's certificate chains to, and a client
//! certificate when the server asks for one).
//!
//! The client (async-nats) reconnects by itself after a lost connection; what is
//! published while it is away is sent once it is back, and what waits for an answer
//! meanwhile times out and is tried again by its caller.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::TlsConfig;

/// The keys naming a NATS server and how to log in to it.
#[derive(Debug, Clone, Copy)]
pub struct NatsServerKeys<'a> {
    /// `nats://host:port` (or `tls://host:port`); several separated by commas.
    pub url: Option<&'a str>,
    /// The user name, with `password_env` or `password_file`.
    pub user: Option<&'a str>,
    /// The environment variable holding the password.
    pub password_env: Option<&'a str>,
    /// A file whose first line is the password.
    pub password_file: Option<&'a Path>,
    /// The environment variable holding a token.
    pub token_env: Option<&'a str>,
    /// A NATS credentials file (`.creds`: a user JWT and its NKey seed).
    pub credentials: Option<&'a Path>,
    /// TLS towards the server.
    pub tls: Option<&'a TlsConfig>,
}

impl NatsServerKeys<'_> {
    /// Checks the keys without reading files or the environment; an error names its key
    /// in backquotes.
    pub fn check(&self) -> Result<(), String> {
        let url = self.url.ok_or("`url` is required (nats://host:port)")?;
        check_url(url)?;
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err("give `password_env` or `password_file`, not both".into());
        }
        let password = self.password_env.is_some() || self.password_file.is_some();
        if password != self.user.is_some() {
            return Err("`user` goes with `password_env` or `password_file`".into());
        }
        let ways = [
            self.user.is_some(),
            self.token_env.is_some(),
            self.credentials.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return Err("give one of `user`, `token_env` and `credentials`".into());
        }
        Ok(())
    }

    /// The client options the keys describe: the password, token, credentials file and
    /// TLS files are read now (errors name the key); relative paths start at `base`.
    pub async fn options(
        &self,
        base: &Path,
        name: &str,
    ) -> Result<async_nats::ConnectOptions, String> {
        self.check()?;
        // A `tls://` URL without `tls` has the client build its own TLS settings.
        crate::destinations::tls::ring_as_process_default();
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            // The client reconnects without limit by default: the queue (or the
            // consumer) waits meanwhile.
            .connection_timeout(Duration::from_secs(5));
        if let Some(user) = self.user {
            let password =
                crate::config::read_password(self.password_env, self.password_file, base, "")?
                    .unwrap_or_default();
            options = options.user_and_password(user.to_owned(), password);
        }
        if let Some(var) = self.token_env {
            let token = std::env::var(var)
                .map_err(|_| format!("`token_env`: the environment variable {var} is not set"))?;
            options = options.token(token);
        }
        if let Some(file) = self.credentials {
            let path: PathBuf = base.join(file);
            options = options
                .credentials_file(&path)
                .await
                .map_err(|e| format!("`credentials`: cannot read {}: {e}", path.display()))?;
        }
        if let Some(tls) = self.tls {
            let config = crate::destinations::tls::client_config(tls, base)
                .map_err(|e| format!("`tls`: {e}"))?;
            options = options
                .tls_client_config((*config).clone())
                .require_tls(true);
        }
        Ok(options)
    }

    /// Connects, waiting at most `timeout`; the error says why, without secrets.
    pub async fn connect(
        &self,
        base: &Path,
        name: &str,
        timeout: Duration,
    ) -> Result<async_nats::Client, String> {
        let options = self.options(base, name).await?;
        let url = self.url.unwrap_or_default();
        let servers: Vec<&str> = url.split(',').map(str::trim).collect();
        match tokio::time::timeout(timeout, options.connect(servers.as_slice())).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(e)) => Err(format!("cannot connect to NATS at {}: {e}", describe(url))),
            Err(_) => Err(format!(
                "cannot connect to NATS at {}: no answer within {timeout:?}",
                describe(url)
            )),
        }
    }
}

/// The server addresses of `url` without any user or password written into them.
pub fn describe(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            match (one.find("://"), one.rfind('@')) {
                (Some(scheme), Some(at)) if at > scheme => {
                    format!("{}{}", &one[..scheme + 3], &one[at + 1..])
                }
                _ => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks a `url`: one or more `nats://`/`tls://` addresses, no credentials in them.
pub fn check_url(url: &str) -> Result<(), String> {
    if url.trim().is_empty() {
        return Err("`url` is empty (nats://host:port)".into());
    }
    for one in url.split(',') {
        let one = one.trim();
        let Some((scheme, rest)) = one.split_once("://") else {
            return Err(format!("`url` {one:?} is not nats://host:port"));
        };
        if !matches!(scheme, "nats" | "tls") {
            return Err(format!(
                "`url` {:?}: the scheme must be nats:// or tls://",
                describe(one)
            ));
        }
        if rest.contains('@') {
            return Err(format!(
                "`url` {:?} holds credentials; use `user` with `password_env` or `password_file`, `token_env` or `credentials`",
                describe(one)
            ));
        }
        if rest.is_empty() || rest.starts_with(':') || rest.contains('/') {
            return Err(format!("`url` {one:?} is not nats://host:port"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(url: &str) -> NatsServerKeys<'_> {
        NatsServerKeys {
            url: Some(url),
            user: None,
            password_env: None,
            password_file: None,
            token_env: None,
            credentials: None,
            tls: None,
        }
    }

    #[test]
    fn urls_are_checked_and_never_show_a_password() {
        assert!(keys("nats://127.0.0.1:4222").check().is_ok());
        assert!(keys("nats://a:4222, nats://b:4222").check().is_ok());
        let error = keys("nats://me:secret@host:4222").check().unwrap_err();
        assert!(error.contains("holds credentials"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        assert!(
            keys("http://host:4222")
                .check()
                .unwrap_err()
                .contains("scheme")
        );
        assert!(keys("host:4222").check().is_err());
        let mut user = keys("nats://h:4222");
        user.user = Some("corridor");
        assert!(user.check().unwrap_err().contains("`user`"));
    }
}
