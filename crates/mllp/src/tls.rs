//! rustls (ring provider) configuration from PEM files.

use std::path::Path;
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::config::{TlsClientConfig, TlsServerConfig};
use crate::error::MllpError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, MllpError> {
    std::fs::read(path).map_err(|err| MllpError::Pem {
        what,
        path: path.to_owned(),
        reason: err.to_string(),
    })
}

fn load_certificates(
    what: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, MllpError> {
    let pem = read_file(what, path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| MllpError::Pem {
            what,
            path: path.to_owned(),
            reason: err.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(MllpError::Pem {
            what,
            path: path.to_owned(),
            reason: "no CERTIFICATE section found".into(),
        });
    }
    Ok(certificates)
}

fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, MllpError> {
    let what = "private key";
    let pem = read_file(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|err| MllpError::Pem {
        what,
        path: path.to_owned(),
        reason: match err {
            rustls::pki_types::pem::Error::NoItemsFound => {
                "no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY section found".into()
            }
            other => other.to_string(),
        },
    })
}

fn load_roots(what: &'static str, path: &Path) -> Result<RootCertStore, MllpError> {
    let mut roots = RootCertStore::empty();
    for certificate in load_certificates(what, path)? {
        roots.add(certificate).map_err(|err| MllpError::Pem {
            what,
            path: path.to_owned(),
            reason: format!("not a usable CA certificate: {err}"),
        })?;
    }
    Ok(roots)
}

fn tls_config_error(err: rustls::Error) -> MllpError {
    MllpError::TlsConfig(err.to_string())
}

/// Builds the acceptor of a TLS listener (mutual TLS when a client CA is set) from PEM
/// files; the engine's HTTPS port uses it too.
pub fn server_acceptor(config: &TlsServerConfig) -> Result<TlsAcceptor, MllpError> {
    let chain = load_certificates("server certificate", &config.cert_path)?;
    let key = load_private_key(&config.key_path)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?;
    let builder = match &config.client_ca_path {
        Some(ca_path) => {
            let roots = load_roots("client CA certificate", ca_path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|err| MllpError::TlsConfig(err.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server_config = builder.with_single_cert(chain, key).map_err(|err| {
        MllpError::TlsConfig(format!(
            "certificate {} and key {} do not form a usable pair: {err}",
            config.cert_path.display(),
            config.key_path.display()
        ))
    })?;
    Ok(TlsAcceptor::from(Arc::new(server_config)))
}

/// A client's TLS setup, loaded once and shared by every connection.
#[derive(Clone)]
pub(crate) struct ClientTls {
    pub connector: TlsConnector,
    pub server_name: Option<ServerName<'static>>,
}

pub(crate) fn client_tls(config: &TlsClientConfig) -> Result<ClientTls, MllpError> {
    let roots = load_roots("CA certificate", &config.ca_path)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(tls_config_error)?
        .with_root_certificates(roots);
    let client_config = match (&config.cert_path, &config.key_path) {
        (Some(cert_path), Some(key_path)) => {
            let chain = load_certificates("client certificate", cert_path)?;
            let key = load_private_key(key_path)?;
            builder.with_client_auth_cert(chain, key).map_err(|err| {
                MllpError::TlsConfig(format!(
                    "certificate {} and key {} do not form a usable pair: {err}",
                    cert_path.display(),
                    key_path.display()
                ))
            })?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(MllpError::TlsConfig(
                "a client certificate needs both cert_path and key_path".into(),
            ));
        }
    };
    let server_name = config
        .server_name
        .as_deref()
        .map(parse_server_name)
        .transpose()?;
    Ok(ClientTls {
        connector: TlsConnector::from(Arc::new(client_config)),
        server_name,
    })
}

pub(crate) fn parse_server_name(name: &str) -> Result<ServerName<'static>, MllpError> {
    let unbracketed = name.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(unbracketed.to_owned())
        .map_err(|_| MllpError::InvalidServerName(name.to_owned()))
}
