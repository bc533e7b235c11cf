//! The load generator against a real MLLP listener on a loopback socket: every
//! message's ACK is judged, closed and open loop, and a NAK is counted as one.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hl7v2::{AckBuilder, AckCode, Message};
use loadgen::{Job, Origin, Outgoing, Plan};
use mllp::{ConnectionInfo, MllpConnector, MllpServer, MllpServerConfig, handler_fn};

const ORU: &[u8] =
    b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|ORIG|P|2.5.1\nPID|1\nOBX|1|NM|GLU||5.5\n";

fn plan(count: u64) -> Plan {
    let origin = Origin {
        file: "oru.hl7".into(),
        number: 1,
        line: 1,
    };
    let message = Outgoing::new(ORU, &origin).unwrap();
    Plan::new(vec![(message, origin)], Some(count)).unwrap()
}

/// Answers AA, or AE to the message whose control id ends in `-{nak}`.
async fn listener(nak: Option<u64>) -> mllp::ServerHandle {
    let server = MllpServer::bind("lab", MllpServerConfig::new("127.0.0.1:0"))
        .await
        .unwrap();
    server.spawn(handler_fn(
        move |frame: Bytes, _conn: &ConnectionInfo| async move {
            let message = Message::parse(&frame).unwrap();
            let refused = nak.is_some_and(|n| message.control_id().ends_with(&format!("-{n}")));
            let code = if refused { AckCode::AE } else { AckCode::AA };
            vec![Bytes::from(AckBuilder::new(&message, code).build())]
        },
    ))
}

fn job(plan: Plan, to: String, rate: Option<f64>) -> Arc<Job> {
    Arc::new(Job {
        plan,
        connector: MllpConnector::new(None).unwrap(),
        to,
        connections: 2,
        rate,
        timeout: Duration::from_secs(10),
        print_each: false,
    })
}

#[tokio::test]
async fn closed_loop_judges_every_ack() {
    let server = listener(None).await;
    let report = loadgen::send_all(job(plan(20), server.local_addr().to_string(), None))
        .await
        .unwrap();
    assert!(report.all_accepted(), "{}", report.failure_summary());
    let stats = report.stats(2, None);
    assert!(
        stats.starts_with("messages     20 over 2 connection(s)"),
        "{stats}"
    );
    assert!(
        stats.contains("outcomes     20 accepted, 0 negative"),
        "{stats}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn open_loop_counts_a_negative_ack() {
    let server = listener(Some(7)).await;
    let report = loadgen::send_all(job(plan(12), server.local_addr().to_string(), Some(2000.0)))
        .await
        .unwrap();
    assert!(!report.all_accepted());
    assert_eq!(
        report.failure_summary(),
        "1 of 12 messages were not acknowledged positively: 11 accepted, 1 negative, \
         0 mismatched, 0 unreadable, 0 timed out, 0 without ACK, 0 not sent"
    );
    assert!(
        report
            .stats(2, Some(2000.0))
            .contains("open loop at 2000 msgs/s")
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_listener_that_is_not_there_is_an_error_before_sending() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let to = unused.local_addr().unwrap().to_string();
    drop(unused);
    assert!(loadgen::send_all(job(plan(1), to, None)).await.is_err());
}
