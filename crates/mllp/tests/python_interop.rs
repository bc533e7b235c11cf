//! Interoperability with python-hl7's MLLP client and asyncio MLLP server,
//! an independent implementation widely used in the field. The test builds its
//! own venv under the workspace `target/` directory from PyPI.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use mllp::MllpConnector;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;
use tokio::time::timeout;

/// The venv's python, with python-hl7 installed from PyPI (once).
fn python_with_hl7() -> PathBuf {
    test_support::python_peer("hl7")
}

const PYTHON_CLIENT: &str = r#"
import sys, hl7.client
port = int(sys.argv[1])
with hl7.client.MLLPClient("127.0.0.1", port) as client:
    for i in range(3):
        answer = client.send_message("MSH|^~\\&|PY|LAB|||20240101||ORU^R01|MSG%d|P|2.5\r" % i)
        print(answer.hex(), flush=True)
"#;

#[tokio::test]
async fn python_hl7_client_is_answered_by_our_server() {
    let python = python_with_hl7();
    let handle = start(test_config(), AckWithPrefix).await;
    let output = timeout(
        Duration::from_secs(30),
        Command::new(&python)
            .args(["-c", PYTHON_CLIENT])
            .arg(handle.local_addr().port().to_string())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answers: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(answers.len(), 3);
    for (i, answer) in answers.iter().enumerate() {
        let expected = mllp::encode_frame(
            format!("ACK:MSH|^~\\&|PY|LAB|||20240101||ORU^R01|MSG{i}|P|2.5\r").as_bytes(),
        )
        .unwrap();
        let expected_hex: String = expected.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(answer, &expected_hex);
    }
    assert_eq!(handle.stats().frames_received, 3);
    handle.shutdown().await;
}

const PYTHON_SERVER: &str = r#"
import asyncio, hl7
from hl7.mllp import start_hl7_server

async def answer(reader, writer):
    try:
        while not writer.is_closing():
            message = await reader.readmessage()
            writer.writemessage(message.create_ack(ack_code="AA", message_id="PYACK"))
            await writer.drain()
    except asyncio.IncompleteReadError:
        pass
    finally:
        writer.close()

async def main():
    server = await start_hl7_server(answer, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"#;

#[tokio::test]
async fn our_client_is_answered_by_python_hl7_server() {
    let python = python_with_hl7();
    let mut server = Command::new(&python)
        .args(["-c", PYTHON_SERVER])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(server.stdout.take().unwrap());
    let mut port = String::new();
    timeout(Duration::from_secs(30), stdout.read_line(&mut port))
        .await
        .unwrap()
        .unwrap();
    let addr = format!("127.0.0.1:{}", port.trim());
    let mut client = MllpConnector::new(None)
        .unwrap()
        .response_timeout(Duration::from_secs(10))
        .connect(&addr)
        .await
        .unwrap();
    for control_id in ["C1", "C2"] {
        let message = format!(
            "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101083000||ORU^R01|{control_id}|P|2.5\rPID|1||12345\r"
        );
        let ack = client.send(message.as_bytes()).await.unwrap();
        let ack = String::from_utf8(ack.to_vec()).unwrap();
        assert!(ack.starts_with("MSH|^~\\&|EHR|HOSP|LAB|HOSP|"), "{ack}");
        assert!(ack.contains(&format!("\rMSA|AA|{control_id}")), "{ack}");
    }
    server.kill().await.unwrap();
}
