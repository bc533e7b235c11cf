//! E-mail over SMTP, in one place: the `email` destination and the alert notifier
//! (`alerts` crate) both send through a [`Mailer`].
//!
//! The connection is STARTTLS (default, port 587), implicit TLS (`security = "tls"`,
//! port 465) or, to a loopback relay only, plain (`security = "none"`, port 25); TLS is
//! rustls with *ring*, trusting the Mozilla roots or, with `ca`, that CA alone. The
//! password comes from an environment variable or a file, is read once at start and is
//! never written to a log or an error.

use std::path::{Path, PathBuf};
use std::time::Duration;

use conf::duration;
use lettre::message::header::ContentType;
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use serde::Deserialize;

/// `smtp = { ... }`: how to reach the mail server.
///
/// ```
/// let smtp: delivery::smtp::SmtpConfig = toml::from_str(r#"
///     host = "smtp.example.org"
///     username = "corridor"
///     password_env = "CORRIDOR_SMTP_PASSWORD"
/// "#).unwrap();
/// assert_eq!(smtp.port(), 587);
/// ```
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// The server's host name (also the name its certificate must carry).
    pub host: String,
    /// Default 587 (`starttls`), 465 (`tls`) or 25 (`none`).
    #[serde(default)]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` (implicit TLS) or `none` (a loopback relay only).
    #[serde(default)]
    pub security: SmtpSecurity,
    /// The user name to log in with; needs `password_env` or `password_file`.
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// A file holding the password (its first line; relative to the configuration file).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// A CA certificate (PEM) to trust instead of the Mozilla roots.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// How long connecting and sending one mail may take (default 30s).
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS; refused if the server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No TLS: only for a relay on a loopback address.
    None,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl SmtpConfig {
    /// The port connected to.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.security {
            SmtpSecurity::Starttls => 587,
            SmtpSecurity::Tls => 465,
            SmtpSecurity::None => 25,
        })
    }

    /// What the types cannot check: each problem as (key under `smtp`, message).
    pub fn check(&self) -> Result<(), (String, String)> {
        if self.host.trim().is_empty() {
            return Err(("host".into(), "must not be empty".into()));
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err((
                "password_file".into(),
                "give `password_env` or `password_file`, not both".into(),
            ));
        }
        let has_password = self.password_env.is_some() || self.password_file.is_some();
        if self.username.is_some() != has_password {
            return Err((
                "username".into(),
                "`username` goes with `password_env` or `password_file`".into(),
            ));
        }
        if self.security == SmtpSecurity::None && !is_loopback(&self.host) {
            return Err((
                "security".into(),
                format!(
                    "\"none\" sends in clear and is allowed only to a loopback host, not {:?}",
                    self.host
                ),
            ));
        }
        if self.timeout.is_zero() {
            return Err(("timeout".into(), "must be longer than zero".into()));
        }
        Ok(())
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A file attached to a mail.
#[derive(Debug, Clone)]
pub struct MailAttachment {
    /// The file name the reader sees.
    pub file_name: String,
    /// Its MIME type (`x-application/hl7-v2+er7`).
    pub content_type: String,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

/// Why a mail was not sent.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{reason}")]
pub struct MailError {
    /// Whether trying again later may help (the server was unreachable or said 4xx).
    pub transient: bool,
    /// What happened, in words (no password, no mail content).
    pub reason: String,
}

/// Sends mail from one sender to fixed recipients through one server.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl std::fmt::Debug for Mailer {
    // The transport holds the credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer from `smtp`, sending as `from` to `to`. Reads the password and the CA
    /// file now; errors name the key (`smtp.password_env`, `from`, `to[1]`).
    pub fn new(
        smtp: &SmtpConfig,
        from: &str,
        to: &[String],
        base: &Path,
    ) -> Result<Mailer, String> {
        smtp.check()
            .map_err(|(key, m)| format!("`smtp.{key}`: {m}"))?;
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("`from` {from:?} is not a mail address: {e}"))?;
        if to.is_empty() {
            return Err("`to` must name at least one mail address".into());
        }
        let to = to
            .iter()
            .enumerate()
            .map(|(i, a)| {
                a.parse::<Mailbox>()
                    .map_err(|e| format!("`to[{i}]` {a:?} is not a mail address: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tls = match smtp.security {
            SmtpSecurity::None => Tls::None,
            security => {
                let mut params = TlsParameters::builder(smtp.host.clone());
                if let Some(ca) = &smtp.ca {
                    let path = base.join(ca);
                    let pem = std::fs::read(&path)
                        .map_err(|e| format!("`smtp.ca`: cannot read {}: {e}", path.display()))?;
                    let cert = Certificate::from_pem(&pem).map_err(|e| {
                        format!(
                            "`smtp.ca`: {} is not a PEM certificate: {e}",
                            path.display()
                        )
                    })?;
                    params = params
                        .certificate_store(CertificateStore::None)
                        .add_root_certificate(cert);
                }
                let params = params
                    .build_rustls()
                    .map_err(|e| format!("`smtp`: TLS settings: {e}"))?;
                if security == SmtpSecurity::Tls {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
            .port(smtp.port())
            .tls(tls)
            .timeout(Some(smtp.timeout));
        if let Some(user) = &smtp.username {
            builder = builder.credentials(Credentials::new(user.clone(), password(smtp, base)?));
        }
        Ok(Mailer {
            transport: builder.build(),
            server: format!("{}:{}", smtp.host, smtp.port()),
            from,
            to,
        })
    }

    /// Sends one mail with a plain-text `body`, and `attachment` when given; returns the
    /// server's answer to the message.
    pub async fn send(
        &self,
        subject: &str,
        body: &str,
        attachment: Option<MailAttachment>,
    ) -> Result<String, MailError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned());
        let built = match attachment {
            None => builder.singlepart(text),
            Some(file) => {
                let content_type =
                    ContentType::parse(&file.content_type).unwrap_or(ContentType::TEXT_PLAIN);
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(text)
                        .singlepart(Attachment::new(file.file_name).body(file.bytes, content_type)),
                )
            }
        };
        let message = built.map_err(|e| MailError {
            transient: false,
            reason: format!("cannot build the mail: {e}"),
        })?;
        match self.transport.send(message).await {
            Ok(response) => Ok(format!(
                "SMTP {} {}",
                response.code(),
                response.message().collect::<Vec<_>>().join(" ")
            )
            .trim_end()
            .to_owned()),
            Err(e) => Err(MailError {
                // A permanent (5xx) answer will not change by itself; anything else may.
                transient: !e.is_permanent(),
                reason: format!("sending mail through {} failed: {e}", self.server),
            }),
        }
    }
}

/// The password of `smtp`, from its environment variable or file.
fn password(smtp: &SmtpConfig, base: &Path) -> Result<String, String> {
    crate::config::read_password(
        smtp.password_env.as_deref(),
        smtp.password_file.as_deref(),
        base,
        "smtp.",
    )?
    .ok_or_else(|| "`smtp.username` needs `password_env` or `password_file`".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smtp(text: &str) -> SmtpConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn plain_smtp_is_refused_beyond_loopback() {
        let error = smtp("host = \"mail.example.org\"\nsecurity = \"none\"")
            .check()
            .unwrap_err();
        assert_eq!(error.0, "security");
        smtp("host = \"127.0.0.1\"\nsecurity = \"none\"")
            .check()
            .unwrap();
    }

    #[test]
    fn a_missing_password_variable_is_named_without_a_value() {
        let config = smtp(
            "host = \"127.0.0.1\"\nusername = \"u\"\npassword_env = \"CORRIDOR_TEST_SURELY_UNSET\"",
        );
        let error = Mailer::new(
            &config,
            "a@example.org",
            &["b@example.org".into()],
            Path::new("."),
        )
        .unwrap_err();
        assert!(
            error.contains("CORRIDOR_TEST_SURELY_UNSET is not set"),
            "{error}"
        );
    }

    #[test]
    fn bad_addresses_name_their_key() {
        let config = smtp("host = \"127.0.0.1\"");
        let error = Mailer::new(
            &config,
            "a@example.org",
            &["b@example.org".into(), "nope".into()],
            Path::new("."),
        )
        .unwrap_err();
        assert!(error.starts_with("`to[1]`"), "{error}");
    }
}
