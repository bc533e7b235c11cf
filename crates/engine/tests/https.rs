//! HTTPS on the API port, over real sockets with a throw-away PKI: `[http] tls_cert`,
//! `tls_key` and `tls_client_ca` serve the API over TLS with client certificates, the
//! certificate's subject is the audit record's "from", answers carry HSTS, and a client
//! without a certificate gets no answer.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::{Api, config_text};
use engine::{Config, Engine};
use mllp::tokio_rustls::TlsConnector;
use mllp::tokio_rustls::rustls;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and the PEM files of what it issued, in `dir`.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: KeyPair,
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Pki {
            ca,
            ca_key,
            dir: dir.to_owned(),
        }
    }

    /// Issues `params`; writes `stem.pem` and `stem.key`.
    fn issue(&self, stem: &str, params: CertificateParams) {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        std::fs::write(self.dir.join(format!("{stem}.pem")), cert.pem()).unwrap();
        std::fs::write(self.dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
    }
}

/// An HTTP/1.1 GET over TLS, with the client certificate `client` (a stem) if given;
/// the raw answer, or the error that ended the connection.
async fn get(
    addr: std::net::SocketAddr,
    dir: &Path,
    client: Option<&str>,
    path: &str,
) -> Result<String, std::io::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(dir.join("ca.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let config = match client {
        Some(stem) => {
            let chain = CertificateDer::pem_file_iter(dir.join(format!("{stem}.pem")))
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(dir.join(format!("{stem}.key"))).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut answer = Vec::new();
    tls.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test]
async fn the_api_is_served_over_https_with_client_certificates_named_in_the_audit_trail() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut server = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    pki.issue("server", server);
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client.distinguished_name = rcgen::DistinguishedName::new();
    client
        .distinguished_name
        .push(DnType::OrganizationName, "General Hospital");
    client
        .distinguished_name
        .push(DnType::CommonName, "ehr-gateway");
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    pki.issue("client", client);

    // `[http]` is open in the header: the TLS keys go there (relative to `dir`).
    let text = config_text(
        dir.path(),
        "data",
        Api::On,
        "tls_cert = \"server.pem\"\ntls_key = \"server.key\"\ntls_client_ca = \"ca.pem\"\n\
         [channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    );
    let config = Config::from_toml_in(&text, dir.path()).unwrap();
    let engine = Engine::start(config).await.unwrap();
    let addr = engine.http_addr().unwrap();

    let answer = get(addr, dir.path(), Some("client"), "/api/messages")
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let head = answer.to_ascii_lowercase();
    assert!(
        head.contains("strict-transport-security: max-age="),
        "{answer}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{answer}");
    // The PHI read's audit record names the certificate (folded from the audit file).
    access::audit::Audit::open(engine.store().clone())
        .await
        .unwrap()
        .fold()
        .unwrap();
    let identities: Vec<String> = common::rows(
        engine.store(),
        "SELECT coalesce(tls_identity, '') FROM audit_log WHERE action = 'GET /api/messages'",
        [],
        |row| row.get(0),
    );
    assert_eq!(identities.len(), 1, "{identities:?}");
    assert!(
        identities[0].contains("CN=ehr-gateway") && identities[0].contains("O=General Hospital"),
        "{identities:?}"
    );

    // No client certificate: no answer (the handshake or the first read fails).
    let refused = get(addr, dir.path(), None, "/api/messages").await;
    assert!(
        refused
            .as_ref()
            .map_or(true, |answer| !answer.contains("HTTP/1.1")),
        "{refused:?}"
    );
    // Plain HTTP on the HTTPS port gets no HTTP answer either.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain
        .write_all(b"GET /api/messages HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = plain.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"));
    engine.shutdown().await;
}

#[test]
fn tls_settings_are_checked_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (http, key) in [
        (
            "tls_cert = \"missing.pem\"\ntls_key = \"missing.key\"\n",
            "http.tls_cert",
        ),
        ("tls_cert = \"missing.pem\"\n", "http.tls_key"),
        ("tls_client_ca = \"ca.pem\"\n", "http.tls_client_ca"),
        ("max_body = 10\n", "http.max_body"),
        ("[audit]\nretention = \"1h\"\n", "audit.retention"),
    ] {
        let text = config_text(
            dir.path(),
            "data",
            Api::On,
            &format!(
                "{http}[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n"
            ),
        );
        let errors = Config::from_toml_in(&text, dir.path())
            .unwrap_err()
            .to_string();
        assert!(errors.contains(key), "{http}: {errors}");
    }
}
