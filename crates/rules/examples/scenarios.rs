//! Writes a labelled scenario set as files (`scripts/rules-scenarios` runs it):
//!
//! ```text
//! cargo run -p rules --example scenarios -- OUT_DIR [PATIENTS] [SEED]
//! ```
//!
//! One `SYNnnnnn.hl7` per patient (its messages in the order they are sent, one
//! segment a line, messages separated by a blank line) and `expected.json`: for
//! each patient, the MRN, its events and the alerts (rule and condition key) that
//! must fire; every other alert must not.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .ok_or("usage: scenarios OUT_DIR [PATIENTS] [SEED]")?,
    );
    let patients: usize = args.next().map_or(Ok(100), |n| n.parse())?;
    let seed: u64 = args.next().map_or(Ok(0x5EED_2026), |n| n.parse())?;
    std::fs::create_dir_all(&out)?;
    let mut expected = Vec::new();
    for scenario in rules::scenario::generate(seed, patients) {
        let mrn = scenario.patient.0.trim_start_matches("E-").to_owned();
        let text: Vec<String> = scenario
            .messages
            .iter()
            .map(|m| m.trim_end_matches('\r').replace('\r', "\n"))
            .collect();
        std::fs::write(out.join(format!("{mrn}.hl7")), text.join("\n\n") + "\n")?;
        expected.push(serde_json::json!({
            "mrn": mrn,
            "events": scenario.events,
            "alerts": scenario.expected.iter().map(|a| serde_json::json!({
                "rule": a.rule.as_str(),
                "key": a.key,
            })).collect::<Vec<_>>(),
        }));
    }
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&serde_json::json!({ "seed": seed, "patients": expected }))?,
    )?;
    println!("{} patients written to {}", patients, out.display());
    Ok(())
}
