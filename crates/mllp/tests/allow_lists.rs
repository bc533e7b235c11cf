//! Per-listener allow lists: client addresses (CIDR) and, under mutual TLS, certificate
//! subjects. Real sockets, certificates made by rcgen.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::*;
use mllp::{
    ConnectionInfo, MllpConnector, MllpError, MllpServerConfig, TlsClientConfig, TlsServerConfig,
    handler_fn,
};

fn echo() -> impl mllp::FrameHandler {
    handler_fn(|frame: Bytes, _conn: &ConnectionInfo| async move { vec![frame] })
}

async fn round_trip(addr: &str, tls: Option<TlsClientConfig>) -> Result<Bytes, MllpError> {
    let mut client = MllpConnector::new(tls)?
        .response_timeout(Duration::from_secs(3))
        .connect(addr)
        .await?;
    client.send(b"MSH|allow").await
}

#[tokio::test]
async fn an_address_outside_allow_from_is_closed_unread_and_counted() {
    let mut config = test_config();
    config.allow_from = vec![
        "10.0.0.0/8".parse().unwrap(),
        "192.0.2.0/24".parse().unwrap(),
    ];
    let handle = start(config, echo()).await;
    assert!(round_trip(&addr_of(&handle), None).await.is_err());
    assert!(round_trip(&addr_of(&handle), None).await.is_err());
    let stats = handle.stats();
    assert_eq!(stats.connections_not_allowed, 2);
    assert_eq!(stats.connections_accepted, 0);
    assert_eq!(stats.frames_received, 0);
    handle.shutdown().await;
}

#[tokio::test]
async fn an_address_inside_allow_from_is_served() {
    let mut config = test_config();
    config.allow_from = vec![
        "10.0.0.0/8".parse().unwrap(),
        "127.0.0.0/8".parse().unwrap(),
    ];
    let handle = start(config, echo()).await;
    assert_eq!(
        round_trip(&addr_of(&handle), None).await.unwrap(),
        "MSH|allow"
    );
    assert_eq!(handle.stats().connections_not_allowed, 0);
    handle.shutdown().await;
}

#[test]
fn ipv4_clients_of_a_dual_stack_listener_match_ipv4_blocks() {
    let mut config = MllpServerConfig::new("[::]:0");
    config.allow_from = vec!["10.1.0.0/16".parse().unwrap()];
    assert!(config.allows_address("::ffff:10.1.2.3".parse().unwrap()));
    assert!(config.allows_address("10.1.2.3".parse().unwrap()));
    assert!(!config.allows_address("10.2.0.1".parse().unwrap()));
    assert!(!config.allows_address("::1".parse().unwrap()));
    assert!(MllpServerConfig::new("x").allows_address("203.0.113.9".parse().unwrap()));
}

fn mutual_tls(pki: &Pki, allow_subjects: &[&str]) -> MllpServerConfig {
    let server = pki.server();
    let mut config = test_config();
    config.tls = Some(TlsServerConfig {
        cert_path: server.cert_path,
        key_path: server.key_path,
        client_ca_path: Some(pki.ca_path.clone()),
    });
    config.allow_subjects = allow_subjects.iter().map(|s| s.to_string()).collect();
    config
}

fn client_tls(pki: &Pki, client: &Issued) -> TlsClientConfig {
    TlsClientConfig {
        ca_path: pki.ca_path.clone(),
        cert_path: Some(client.cert_path.clone()),
        key_path: Some(client.key_path.clone()),
        server_name: None,
    }
}

#[tokio::test]
async fn only_allowed_certificate_subjects_stay_connected() {
    let pki = Pki::new("Test CA");
    let handle = start(mutual_tls(&pki, &["CN=lab-1,O=Hospital"]), echo()).await;
    let lab1 = pki.client("lab-1", "Hospital");
    let lab2 = pki.client("lab-2", "Hospital");
    let addr = addr_of(&handle);
    assert_eq!(
        round_trip(&addr, Some(client_tls(&pki, &lab1)))
            .await
            .unwrap(),
        "MSH|allow"
    );
    assert!(
        round_trip(&addr, Some(client_tls(&pki, &lab2)))
            .await
            .is_err()
    );
    let stats = handle.stats();
    assert_eq!(stats.connections_not_allowed, 1);
    assert_eq!(stats.frames_received, 1, "only lab-1's frame was read");
    handle.shutdown().await;
}

#[test]
fn allow_subjects_without_mutual_tls_is_refused_naming_the_key() {
    let mut config = test_config();
    config.allow_subjects = vec!["CN=lab-1".into()];
    let error = config.validate().unwrap_err().to_string();
    assert!(error.contains("allow_subjects"), "{error}");
}

#[test]
fn allow_lists_read_from_toml_and_bad_blocks_are_errors() {
    let config: MllpServerConfig = toml::from_str(
        r#"
        listen = "0.0.0.0:2575"
        allow_from = ["10.0.0.0/8", "2001:db8::/32"]
    "#,
    )
    .unwrap();
    assert_eq!(config.allow_from.len(), 2);
    let error = toml::from_str::<MllpServerConfig>(
        r#"
        listen = "0.0.0.0:2575"
        allow_from = ["10.0.0.0/33"]
    "#,
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("allow_from"), "{error}");
}
