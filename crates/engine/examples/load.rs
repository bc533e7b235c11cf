//! A quick load generator for an MLLP listener (e.g. `corridor run`): sends a
//! 1.5 KB ORU over N connections, each with up to W messages in flight, and
//! prints messages per second and ACK latency percentiles.
//!
//! ```sh
//! corridor run --data /tmp/load-data &
//! cargo run --release -p engine --example load -- 127.0.0.1:2575 8 40000 1
//! #                                               addr   connections count window
//! ```
//!
//! Window 1 is ping-pong (send, wait for the ACK, send the next). Every ACK's
//! MSA-1 must be AA or CA, or the run fails.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

fn oru(control_id: &str) -> Vec<u8> {
    let mut msg = format!(
        "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101120000||ORU^R01^ORU_R01|{control_id}|P|2.5.1\r\
         PID|1||12345^^^NORTH^MR~987654321^^^SSA^SS||DOE^JANE^Q||19800101|F|||1 MAIN ST^^SPRINGFIELD^IL^62701||5551234567\r\
         PV1|1|O|LAB^^^NORTH||||1234^WELBY^MARCUS\r\
         ORC|RE|ORD1|FIL1\r\
         OBR|1|ORD1|FIL1|CBC^Complete blood count^LN|||20260101110000|||||||||1234^WELBY^MARCUS||||||20260101115500|||F\r"
    );
    let mut i = 1;
    while msg.len() < 1450 {
        msg.push_str(&format!(
            "OBX|{i}|NM|6690-2^Leukocytes [#/volume] in Blood^LN||7.{i}|10*3/uL|4.0-11.0|N|||F|||20260101115500\r"
        ));
        i += 1;
    }
    msg.into_bytes()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let addr = args.first().cloned().unwrap_or("127.0.0.1:2575".into());
    let connections: usize = args.get(1).map_or(Ok(8), |s| s.parse())?;
    let count: usize = args.get(2).map_or(Ok(40_000), |s| s.parse())?;
    let window: usize = args.get(3).map_or(Ok(1), |s| s.parse())?;
    println!(
        "message size {} bytes, {connections} connections, {count} messages, window {window}",
        oru("LOAD-000000-00000000").len()
    );

    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let started = Instant::now();
    let mut tasks = Vec::new();
    let run_id = std::process::id();
    for c in 0..connections {
        let addr = addr.clone();
        let latencies = latencies.clone();
        let share = count / connections + usize::from(c < count % connections);
        tasks.push(tokio::spawn(async move {
            let client = mllp::MllpClient::connect(&addr, None).await?;
            let (mut writer, mut reader) = client.into_split();
            let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel::<Instant>(window.max(1));
            let send = tokio::spawn(async move {
                for i in 0..share {
                    let message = oru(&format!("LOAD-{run_id}-{c:02}-{i:08}"));
                    // The channel's capacity is the window: at most W unanswered.
                    if sent_tx.send(Instant::now()).await.is_err() {
                        break;
                    }
                    writer.send_frame(&message).await?;
                }
                Ok::<_, mllp::MllpError>(writer)
            });
            let mut mine = Vec::with_capacity(share);
            let mut pending = VecDeque::new();
            while mine.len() < share {
                let Some(frame) = reader.next_frame().await? else {
                    return Err("connection closed early".into());
                };
                let sent_at = match pending.pop_front() {
                    Some(t) => t,
                    None => sent_rx.recv().await.ok_or("no send time")?,
                };
                while let Ok(t) = sent_rx.try_recv() {
                    pending.push_back(t);
                }
                let text = String::from_utf8_lossy(&frame);
                if !(text.contains("\rMSA|AA|") || text.contains("\rMSA|CA|")) {
                    return Err(format!("negative or unexpected answer: {text:?}").into());
                }
                mine.push(sent_at.elapsed());
            }
            let _ = send.await;
            latencies.lock().await.extend(mine);
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        }));
    }
    for task in tasks {
        task.await?.map_err(|e| e.to_string())?;
    }
    let elapsed = started.elapsed();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{} messages in {:.2} s: {:.0} msgs/s; ACK latency p50 {:.0} us, p90 {:.0} us, p99 {:.0} us, max {:.0} us",
        latencies.len(),
        elapsed.as_secs_f64(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        us(at(0.50)),
        us(at(0.90)),
        us(at(0.99)),
        us(*latencies.last().unwrap_or(&Duration::ZERO)),
    );
    Ok(())
}
