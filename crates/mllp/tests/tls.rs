//! MLLP over TLS and mutual TLS, with certificates made by rcgen.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mllp::{
    ConnectionInfo, MllpClient, MllpConnector, MllpError, MllpServer, MllpServerConfig,
    TlsClientConfig, TlsServerConfig, handler_fn,
};

/// Answers each frame with the client certificate subject ("-" when none).
fn subject_echo() -> impl mllp::FrameHandler {
    handler_fn(|_frame: Bytes, conn: &ConnectionInfo| {
        let subject = conn.client_subject.clone().unwrap_or_else(|| "-".into());
        let tls = conn.tls;
        async move { vec![Bytes::from(format!("tls={tls} subject={subject}"))] }
    })
}

fn tls_config(pki: &Pki, mutual: bool) -> MllpServerConfig {
    let server = pki.server();
    let mut config = test_config();
    config.tls = Some(TlsServerConfig {
        cert_path: server.cert_path,
        key_path: server.key_path,
        client_ca_path: mutual.then(|| pki.ca_path.clone()),
    });
    config
}

fn client_tls(pki: &Pki, client: Option<&Issued>) -> TlsClientConfig {
    TlsClientConfig {
        ca_path: pki.ca_path.clone(),
        cert_path: client.map(|c| c.cert_path.clone()),
        key_path: client.map(|c| c.key_path.clone()),
        server_name: None,
    }
}

/// Connects and sends one frame; a refused client fails at either step.
async fn try_round_trip(addr: &str, tls: TlsClientConfig) -> Result<Bytes, MllpError> {
    let mut client = MllpConnector::new(Some(tls))?
        .response_timeout(Duration::from_secs(3))
        .connect(addr)
        .await?;
    client.send(b"MSH|tls").await
}

#[tokio::test]
async fn tls_round_trip() {
    let pki = Pki::new("Test CA");
    let handle = start(tls_config(&pki, false), subject_echo()).await;
    let mut client = MllpClient::connect(&addr_of(&handle), Some(client_tls(&pki, None)))
        .await
        .unwrap();
    assert_eq!(client.send(b"MSH|1").await.unwrap(), "tls=true subject=-");
    assert_eq!(client.send(b"MSH|2").await.unwrap(), "tls=true subject=-");
    handle.shutdown().await;
}

#[tokio::test]
async fn tls_client_checks_server_name_given_explicitly() {
    let pki = Pki::new("Test CA");
    let handle = start(tls_config(&pki, false), subject_echo()).await;
    let mut tls = client_tls(&pki, None);
    tls.server_name = Some("localhost".into());
    assert!(try_round_trip(&addr_of(&handle), tls.clone()).await.is_ok());
    tls.server_name = Some("ehr.elsewhere.example".into());
    let err = try_round_trip(&addr_of(&handle), tls).await.unwrap_err();
    assert!(matches!(err, MllpError::TlsHandshake { .. }), "{err}");
    handle.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_reports_the_trusted_client_subject() {
    let pki = Pki::new("Test CA");
    let handle = start(tls_config(&pki, true), subject_echo()).await;
    let lab = pki.client("lab-1", "Hospital");
    let answer = try_round_trip(&addr_of(&handle), client_tls(&pki, Some(&lab)))
        .await
        .unwrap();
    assert_eq!(answer, "tls=true subject=CN=lab-1,O=Hospital");
    handle.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn mutual_tls_refuses_an_untrusted_client_certificate() {
    let (logs, _guard) = CapturedLogs::install();
    let pki = Pki::new("Test CA");
    let rogue_pki = Pki::new("Rogue CA");
    let handle = start(tls_config(&pki, true), subject_echo()).await;

    let rogue = rogue_pki.client("lab-1", "Hospital");
    // The client trusts the real server; only its own certificate is wrong.
    let mut tls = client_tls(&pki, Some(&rogue));
    tls.cert_path = Some(rogue.cert_path.clone());
    let result = try_round_trip(&addr_of(&handle), tls).await;
    assert!(result.is_err(), "untrusted client was served: {result:?}");

    assert!(
        eventually(Duration::from_secs(2), || handle
            .stats()
            .tls_handshake_failures
            == 1)
        .await
    );
    let lines = logs.lines_containing("TLS handshake failed");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(
        lines[0].contains("WARN") && lines[0].contains("127.0.0.1"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("UnknownIssuer"),
        "reason missing: {}",
        lines[0]
    );
    assert_eq!(handle.stats().frames_received, 0);

    // A trusted client is still served afterwards.
    let lab = pki.client("lab-2", "Hospital");
    let answer = try_round_trip(&addr_of(&handle), client_tls(&pki, Some(&lab))).await;
    assert_eq!(answer.unwrap(), "tls=true subject=CN=lab-2,O=Hospital");
    handle.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn mutual_tls_refuses_a_client_without_certificate() {
    let (logs, _guard) = CapturedLogs::install();
    let pki = Pki::new("Test CA");
    let handle = start(tls_config(&pki, true), subject_echo()).await;
    let result = try_round_trip(&addr_of(&handle), client_tls(&pki, None)).await;
    assert!(
        result.is_err(),
        "client without certificate was served: {result:?}"
    );
    assert!(
        eventually(Duration::from_secs(2), || handle
            .stats()
            .tls_handshake_failures
            == 1)
        .await
    );
    let lines = logs.lines_containing("TLS handshake failed");
    assert_eq!(lines.len(), 1, "{}", logs.text());
    assert!(
        lines[0].contains("WARN") && lines[0].contains("no certificates"),
        "{}",
        lines[0]
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn tls_handshake_that_never_starts_is_cut_by_read_timeout() {
    let pki = Pki::new("Test CA");
    let mut config = tls_config(&pki, false);
    config.read_timeout = Duration::from_millis(200);
    let handle = start(config, subject_echo()).await;
    let mut silent = tokio::net::TcpStream::connect(handle.local_addr())
        .await
        .unwrap();
    let mut scratch = [0u8; 16];
    let read = tokio::time::timeout(
        Duration::from_secs(3),
        tokio::io::AsyncReadExt::read(&mut silent, &mut scratch),
    )
    .await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert_eq!(handle.stats().tls_handshake_failures, 1);
    handle.shutdown().await;
}

#[tokio::test]
async fn plain_tcp_client_on_a_tls_listener_is_refused_without_harm() {
    let pki = Pki::new("Test CA");
    let handle = start(tls_config(&pki, false), subject_echo()).await;
    let mut plain = MllpConnector::new(None)
        .unwrap()
        .response_timeout(Duration::from_secs(2))
        .connect(&addr_of(&handle))
        .await
        .unwrap();
    assert!(plain.send(b"MSH|plain").await.is_err());
    assert!(
        eventually(Duration::from_secs(2), || handle
            .stats()
            .tls_handshake_failures
            == 1)
        .await
    );
    assert!(
        try_round_trip(&addr_of(&handle), client_tls(&pki, None))
            .await
            .is_ok()
    );
    handle.shutdown().await;
}

#[tokio::test]
async fn client_refuses_a_server_signed_by_an_unknown_ca() {
    let pki = Pki::new("Test CA");
    let other = Pki::new("Other CA");
    let handle = start(tls_config(&pki, false), subject_echo()).await;
    let err = try_round_trip(&addr_of(&handle), client_tls(&other, None))
        .await
        .unwrap_err();
    assert!(matches!(err, MllpError::TlsHandshake { .. }), "{err}");
    assert!(err.to_string().contains("UnknownIssuer"), "{err}");
    handle.shutdown().await;
}

#[tokio::test]
async fn unreadable_pem_files_are_named_in_the_error() {
    let pki = Pki::new("Test CA");
    let server = pki.server();
    let missing = pki.dir.path().join("no-such-cert.pem");
    let mut config = test_config();
    config.tls = Some(TlsServerConfig {
        cert_path: missing.clone(),
        key_path: server.key_path.clone(),
        client_ca_path: None,
    });
    let err = MllpServer::bind("tls", config.clone()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("server certificate") && text.contains("no-such-cert.pem"),
        "{text}"
    );

    // A key file holding a certificate instead of a key.
    config.tls = Some(TlsServerConfig {
        cert_path: server.cert_path.clone(),
        key_path: server.cert_path.clone(),
        client_ca_path: None,
    });
    let text = MllpServer::bind("tls", config)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("private key") && text.contains("server.pem"),
        "{text}"
    );

    let mut tls = TlsClientConfig::new(pki.dir.path().join("missing-ca.pem"));
    let text = MllpConnector::new(Some(tls.clone()))
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("CA certificate") && text.contains("missing-ca.pem"),
        "{text}"
    );

    tls.ca_path = pki.ca_path.clone();
    tls.cert_path = Some(server.cert_path.clone());
    let text = MllpConnector::new(Some(tls)).unwrap_err().to_string();
    assert!(text.contains("cert_path and key_path"), "{text}");
}
