//! Shared helpers of the integration tests: servers on 127.0.0.1 port 0, a
//! throw-away PKI made with rcgen, and log capture.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use mllp::{ConnectionInfo, FrameHandler, MllpServer, MllpServerConfig, ServerHandle};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};

/// Answers every frame with `ACK:` + the frame.
pub struct AckWithPrefix;

impl FrameHandler for AckWithPrefix {
    async fn on_frame(&self, frame: Bytes, _conn: &ConnectionInfo) -> Vec<Bytes> {
        vec![Bytes::from([&b"ACK:"[..], &frame[..]].concat())]
    }
}

pub fn test_config() -> MllpServerConfig {
    let mut config = MllpServerConfig::new("127.0.0.1:0");
    config.read_timeout = Duration::from_secs(5);
    config.idle_timeout = Duration::from_secs(10);
    config
}

pub async fn start(config: MllpServerConfig, handler: impl FrameHandler) -> ServerHandle {
    MllpServer::bind("test", config)
        .await
        .unwrap()
        .spawn(handler)
}

pub fn addr_of(handle: &ServerHandle) -> String {
    handle.local_addr().to_string()
}

/// Polls `condition` every 10 ms for at most `limit`.
pub async fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

/// Everything logged on this thread while the guard lives.
#[derive(Clone, Default)]
pub struct CapturedLogs(Arc<Mutex<Vec<u8>>>);

impl Write for CapturedLogs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLogs {
    /// Captures logs of the current thread (use a current-thread runtime).
    pub fn install() -> (CapturedLogs, tracing::subscriber::DefaultGuard) {
        let logs = CapturedLogs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        (logs, tracing::subscriber::set_default(subscriber))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    pub fn lines_containing(&self, needle: &str) -> Vec<String> {
        self.text()
            .lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

/// A certificate authority and the files of the certificates it issued.
pub struct Pki {
    pub dir: tempfile::TempDir,
    ca_cert: rcgen::Certificate,
    ca_key: KeyPair,
    pub ca_path: PathBuf,
}

/// Paths of a certificate and its key.
pub struct Issued {
    pub cert_path: PathBuf,
    pub key_path: PathBuf,
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

impl Pki {
    pub fn new(ca_name: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, ca_name);
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let ca_path = dir.path().join("ca.pem");
        write(&ca_path, &ca_cert.pem());
        Pki {
            dir,
            ca_cert,
            ca_key,
            ca_path,
        }
    }

    fn issue(&self, stem: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        let cert_path = self.dir.path().join(format!("{stem}.pem"));
        let key_path = self.dir.path().join(format!("{stem}.key"));
        write(&cert_path, &cert.pem());
        write(&key_path, &key.serialize_pem());
        Issued {
            cert_path,
            key_path,
        }
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "corridor-test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue("server", params)
    }

    /// A client certificate whose subject is `CN=<cn>,O=<org>`.
    pub fn client(&self, cn: &str, org: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        // Replace rcgen's default subject; RDNs are encoded in push order.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, org);
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(&format!("client-{cn}"), params)
    }
}
