//! A quick look at a script step's cost per message, without Criterion: runs the bench's
//! typical transformer on 10,000 messages (or the count given) and prints the mean.
//! Run: `cargo run --release -p steps --example script_cost [COUNT]`

use std::time::Instant;

use hl7v2::OwnedMessage;
use steps::{Limits, Script};

const ORU: &[u8] = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101120000||ORU^R01^ORU_R01|C1|P|2.5.1\rPID|1||123456^^^HOSP^MR||DOE^JANE^Q||19800101|F\rOBR|1|ORD1|FIL1|24323-8^CMP^LN\rOBX|1|NM|2345-7^Glucose^LN||95|mg/dL|70-99|N|||F\rOBX|2|NM|2160-0^Creatinine^LN||1.1|mg/dL|0.6-1.3|H|||F\r";

const TRANSFORMER: &str = r#"
    msg.set("PID-5.1", msg.get("PID-5.1").toUpperCase());
    if (msg.get("MSH-3") === "LAB") msg.set("MSH-5", "CHART");
    let abnormal = 0;
    for (let i = 1; i <= msg.count("OBX"); i++) {
        if (msg.get("OBX[" + i + "]-8") !== "N") abnormal++;
    }
    msg.set("ZLB-1", String(abnormal));
"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let count: u32 = std::env::args().nth(1).map_or(Ok(10_000), |n| n.parse())?;
    let message = OwnedMessage::parse(ORU)?;
    let script = Script::new(TRANSFORMER, Limits::default())?;
    let mut warm = message.clone();
    script.run(&mut warm)?;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    for _ in 0..count {
        let mut m = message.clone();
        script.run(&mut m)?;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_seconds() - cpu_before;
    println!(
        "{count} runs in {:.3} s: {:.1} us per message wall, {:.1} us CPU (all threads), {:.0} messages/s on one caller",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e6 / f64::from(count),
        cpu * 1e6 / f64::from(count),
        f64::from(count) / elapsed.as_secs_f64()
    );
    Ok(())
}

/// The process's user and system CPU time so far, from /proc (Linux; 0 elsewhere):
/// unlike wall time, it does not count the time other processes had the cores.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
