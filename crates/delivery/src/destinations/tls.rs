//! TLS client settings for HTTPS destinations (MLLP destinations use the mllp crate's).

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsConfig;

/// Installs *ring* as rustls' process-wide provider unless one is installed. Libraries
/// that build their own TLS settings take it: mysql_async and async-nats call
/// `ClientConfig::builder()`, which finds no provider by itself once the tree also
/// builds aws-lc-rs (tiberius, the SQL Server driver, brings it in), and tiberius
/// falls back to aws-lc-rs without one. Called before each of them connects.
pub(crate) fn ring_as_process_default() {
    // An error means a provider is installed already, which is what is wanted.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A rustls client configuration from PEM files; errors name the file.
pub(crate) fn client_config(
    tls: &TlsConfig,
    base: &Path,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in read_certs(&base.join(&tls.ca), "CA certificates")? {
        roots
            .add(cert)
            .map_err(|e| format!("`tls.ca` {}: {e}", tls.ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(&base.join(cert), "certificate chain")?;
            let key = read_key(&base.join(key))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("`tls.cert`/`tls.key`: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("`tls.cert` and `tls.key` go together".into()),
    };
    Ok(Arc::new(config))
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let file =
        File::open(path).map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut BufReader::new(file))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read {what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let file = File::open(path).map_err(|e| format!("cannot read key {}: {e}", path.display()))?;
    rustls_pemfile::private_key(&mut BufReader::new(file))
        .map_err(|e| format!("cannot read key {}: {e}", path.display()))?
        .ok_or_else(|| format!("{} holds no PEM private key", path.display()))
}
