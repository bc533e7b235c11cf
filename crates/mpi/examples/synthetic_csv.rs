//! Writes a synthetic patient population as a `corridor mpi load` CSV file, for load
//! runs: `patients.csv` with every person's record (id `E<n>`) and, for 30% of them, a
//! duplicate registration right after it (typos, nicknames, transposed dates, moved
//! addresses; id `L<n>`, the same `n`, so an export can be scored).
//!
//! ```text
//! cargo run --release -p mpi --example synthetic_csv -- PEOPLE OUT_DIR
//! ```

use mpi::rng::SplitMix64;
use mpi::synthetic::{SyntheticOptions, SyntheticPopulation};
use mpi::{PatientRecord, Sex};
use std::io::{BufWriter, Write};

fn field(s: &Option<String>) -> String {
    let s = s.as_deref().unwrap_or("");
    if s.contains([',', '"']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn row(out: &mut impl Write, r: &PatientRecord) -> std::io::Result<()> {
    let sex = r
        .sex
        .filter(|s| *s != Sex::Unknown)
        .map(|s| s.code().to_string());
    let cols = [
        Some(r.id.clone()),
        r.family.clone(),
        r.given.clone(),
        r.middle.clone(),
        r.birth_date.clone(),
        sex,
        r.street.clone(),
        r.street2.clone(),
        r.city.clone(),
        r.state.clone(),
        r.postcode.clone(),
        r.country.clone(),
        r.phone.clone(),
        r.ssn.clone(),
    ];
    let line: Vec<String> = cols.iter().map(field).collect();
    writeln!(out, "{}", line.join(","))
}

const HEADER: &str =
    "id,family,given,middle,birth_date,sex,street,street2,city,state,postcode,country,phone,ssn";

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let people: u64 = args
        .first()
        .and_then(|a| a.replace('_', "").parse().ok())
        .unwrap_or(770_000);
    let dir = std::path::PathBuf::from(args.get(1).map(String::as_str).unwrap_or("."));
    std::fs::create_dir_all(&dir)?;
    let pop = SyntheticPopulation::new(SyntheticOptions::default());
    let mut out = BufWriter::new(std::fs::File::create(dir.join("patients.csv"))?);
    writeln!(out, "{HEADER}")?;
    let mut rng = SplitMix64::new(99);
    let (mut n_ehr, mut n_lab) = (0, 0);
    for p in 0..people {
        row(&mut out, &pop.variant(p, "EHR", &format!("E{p}"), 1))?;
        n_ehr += 1;
        if rng.chance(0.3) {
            row(&mut out, &pop.variant(p, "LAB", &format!("L{p}"), 2))?;
            n_lab += 1;
        }
    }
    out.flush()?;
    println!(
        "{} records ({n_ehr} people, {n_lab} duplicates) in {}",
        n_ehr + n_lab,
        dir.join("patients.csv").display()
    );
    Ok(())
}
