//! The audit file beside the database (`corridor.db.audit`): records written there
//! first, folded into `audit_log` behind, after a crash too, and tampering with lines
//! not yet folded found by `verify`.

use std::process::{Command, Stdio};
use std::time::Duration;

use access::audit::{ActionKind, Audit, AuditRecord, Outcome, file_of};
use access::{Actor, AuthMethod, Principal, Role};
use store::Store;

/// Long enough that the background fold never runs during a test.
const NEVER: Duration = Duration::from_secs(3600);

const CHILD_DIR: &str = "CORRIDOR_AUDIT_FILE_CHILD_DIR";

fn reader() -> Principal {
    Principal {
        actor: Actor::Token {
            id: 7,
            owner: "alice".into(),
        },
        roles: vec![Role::Analyst],
        scopes: None,
        method: AuthMethod::Token,
        address: Some("10.1.2.3:50123".parse().unwrap()),
        tls_identity: None,
    }
}

fn read_patient(patient: &str) -> AuditRecord {
    AuditRecord::by(&reader(), "fhir.read", ActionKind::Read, Outcome::Success)
        .resource(patient)
        .patients([patient])
}

/// Rows in `audit_log`, read through a connection of its own.
fn folded_rows(dir: &std::path::Path) -> i64 {
    let conn = store::rusqlite::Connection::open(dir.join(Store::DATABASE_FILE)).unwrap();
    conn.query_row("SELECT count(*) FROM audit_log", [], |row| row.get(0))
        .unwrap()
}

fn file_lines(dir: &std::path::Path) -> Vec<String> {
    let path = file_of(&dir.join(Store::DATABASE_FILE));
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(dir: &std::path::Path, lines: &[String]) {
    let path = file_of(&dir.join(Store::DATABASE_FILE));
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_record_is_in_the_file_once_appended_and_a_search_right_after_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    assert_eq!(audit.append(read_patient("Patient/p1")).wait().unwrap(), 1);
    // Written, not folded: the file holds it, the table not yet.
    let lines = file_lines(dir.path());
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].contains("\"resource\":\"Patient/p1\""),
        "{}",
        lines[0]
    );
    assert_eq!(folded_rows(dir.path()), 0);
    // A search right after the append folds first, so it sees the record.
    let found = audit.for_patient("Patient/p1", None, None).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].seq, 1);
    assert_eq!(
        found[0].record,
        read_patient("Patient/p1").clone_at(found[0].record.at)
    );
    assert_eq!(folded_rows(dir.path()), 1);
    // Folding again folds nothing twice.
    assert_eq!(audit.fold().unwrap(), 0);
    let verification = audit.verify().unwrap();
    assert_eq!((verification.records, verification.broken), (1, None));
}

/// The test's records differ only by their time.
trait At {
    fn clone_at(self, at: i64) -> AuditRecord;
}

impl At for AuditRecord {
    fn clone_at(mut self, at: i64) -> AuditRecord {
        self.at = at;
        self
    }
}

#[test]
fn the_background_fold_puts_records_in_the_table_without_a_search() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_blocking(Store::open(dir.path()).unwrap()).unwrap();
    for i in 1..=3 {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while folded_rows(dir.path()) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "not folded within 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(audit.verify().unwrap().broken, None);
}

#[test]
fn an_edited_record_not_yet_folded_is_named_and_not_folded() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    for i in 1..=3 {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
    }
    let mut lines = file_lines(dir.path());
    lines[1] = lines[1].replace("Patient/p2", "Patient/p9");
    write_lines(dir.path(), &lines);
    let verification = audit.verify().unwrap();
    let broken = verification.broken.unwrap();
    assert_eq!(broken.seq, 2);
    assert!(
        broken.problem.contains("not yet folded"),
        "{}",
        broken.problem
    );
    assert!(broken.problem.contains("edited"), "{}", broken.problem);
    // The line before it is folded; it and the one after are not.
    assert_eq!(folded_rows(dir.path()), 1);
}

#[test]
fn folds_from_memory_and_from_the_file_take_turns_without_a_gap_or_a_repeat() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    let append = |i: usize| {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
    };
    append(1);
    append(2);
    // `verify` folds lines 1 and 2 from the file; the copies kept in memory are then
    // behind the store's position and must not be folded again.
    assert_eq!(audit.verify().unwrap().broken, None);
    assert_eq!(folded_rows(dir.path()), 2);
    append(3);
    append(4);
    // A search's fold takes lines 3 and 4 from memory.
    assert_eq!(audit.fold().unwrap(), 2);
    assert_eq!(folded_rows(dir.path()), 4);
    append(5);
    let verification = audit.verify().unwrap();
    assert_eq!(verification.broken, None);
    assert_eq!(verification.records, 5);
    let mut seqs_and_patients = Vec::new();
    audit
        .for_each_since(0, |stored| {
            seqs_and_patients.push((stored.seq, stored.record.patients.join(" ")));
            Ok(())
        })
        .unwrap();
    assert_eq!(
        seqs_and_patients,
        (1..=5)
            .map(|i| (i as i64, format!("Patient/p{i}")))
            .collect::<Vec<_>>()
    );
}

#[test]
fn a_deleted_record_not_yet_folded_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    for i in 1..=3 {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
    }
    let mut lines = file_lines(dir.path());
    lines.remove(1);
    write_lines(dir.path(), &lines);
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 2);
    assert!(broken.problem.contains("deleted"), "{}", broken.problem);
}

#[test]
fn a_folded_line_deleted_from_the_file_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    for i in 1..=2 {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
    }
    assert_eq!(audit.fold().unwrap(), 2);
    let mut lines = file_lines(dir.path());
    lines.remove(0);
    write_lines(dir.path(), &lines);
    let broken = audit.verify().unwrap().broken.unwrap();
    assert!(broken.problem.contains("shorter"), "{}", broken.problem);
}

#[test]
fn records_of_a_process_that_crashed_before_folding_are_folded_at_the_next_start() {
    if let Ok(dir) = std::env::var(CHILD_DIR) {
        // The child: three reads recorded in the file, then killed before any fold.
        let audit =
            Audit::open_with_fold_delay(Store::open(std::path::Path::new(&dir)).unwrap(), NEVER)
                .unwrap();
        for i in 1..=3 {
            audit
                .append(read_patient(&format!("Patient/p{i}")))
                .wait()
                .unwrap();
        }
        std::process::abort();
    }
    let dir = tempfile::tempdir().unwrap();
    // Tables created (and closed) first, so the child finds them.
    drop(Audit::open_blocking(Store::open(dir.path()).unwrap()).unwrap());
    let status = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "records_of_a_process_that_crashed_before_folding_are_folded_at_the_next_start",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");
    assert_eq!(file_lines(dir.path()).len(), 3);
    assert_eq!(folded_rows(dir.path()), 0);
    // The next start folds them before anything else.
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    assert_eq!(folded_rows(dir.path()), 3);
    // And the chain goes on from the file's last line.
    assert_eq!(audit.append(read_patient("Patient/p4")).wait().unwrap(), 4);
    let verification = audit.verify().unwrap();
    assert_eq!((verification.records, verification.broken), (4, None));
}

#[test]
fn a_line_cut_short_by_a_power_loss_is_dropped_at_start() {
    let dir = tempfile::tempdir().unwrap();
    {
        let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
        audit.append(read_patient("Patient/p1")).wait().unwrap();
        assert_eq!(audit.fold().unwrap(), 1);
    }
    let path = file_of(&dir.path().join(Store::DATABASE_FILE));
    let mut text = std::fs::read_to_string(&path).unwrap();
    let whole = text.len();
    text.push_str("{\"n\":2,\"prev\":\"00");
    std::fs::write(&path, text).unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), whole as u64);
    assert_eq!(audit.append(read_patient("Patient/p2")).wait().unwrap(), 2);
    let verification = audit.verify().unwrap();
    assert_eq!((verification.records, verification.broken), (2, None));
}

#[test]
fn audits_of_one_database_in_one_process_share_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let first = Audit::open_with_fold_delay(store.clone(), NEVER).unwrap();
    let second = Audit::open_with_fold_delay(store, NEVER).unwrap();
    assert_eq!(first.append(read_patient("Patient/p1")).wait().unwrap(), 1);
    assert_eq!(second.append(read_patient("Patient/p2")).wait().unwrap(), 2);
    assert_eq!(first.append(read_patient("Patient/p3")).wait().unwrap(), 3);
    let verification = second.verify().unwrap();
    assert_eq!((verification.records, verification.broken), (3, None));
}

#[test]
fn another_process_holding_the_file_leaves_records_to_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let path = file_of(store.path());
    let held = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    // A lock of another open file description: as another process's would be.
    rustix::fs::flock(&held, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    let audit = Audit::open_with_fold_delay(store, NEVER).unwrap();
    audit.append(read_patient("Patient/p1")).wait().unwrap();
    assert_eq!(folded_rows(dir.path()), 1);
    assert!(file_lines(dir.path()).is_empty());
}

#[test]
fn folded_records_keep_their_lines_hash_among_records_committed_directly() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let audit = Audit::open_with_fold_delay(store.clone(), NEVER).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // A change audited in its own transaction (a user added, a token revoked).
    let direct = |what: &str| {
        let record = AuditRecord::cli("user.add", ActionKind::Create, what);
        runtime
            .block_on(store.write(move |conn| access::audit::append_in(conn, &record)))
            .unwrap()
    };
    let read = |i: usize| {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap()
    };
    assert_eq!(read(1), 1);
    assert_eq!(read(2), 2);
    // Committed before lines 1 and 2 are folded: it comes first in the table.
    assert_eq!(direct("user/a"), 1);
    assert_eq!(audit.fold().unwrap(), 2);
    assert_eq!(read(3), 3);
    assert_eq!(direct("user/b"), 4);
    assert_eq!(audit.fold().unwrap(), 1);
    let verification = audit.verify().unwrap();
    assert_eq!((verification.records, verification.broken), (5, None));

    // Each folded row has its line's number and the hash its line has in the file.
    let conn = store::rusqlite::Connection::open(dir.path().join(Store::DATABASE_FILE)).unwrap();
    let rows: Vec<(i64, Option<i64>, Vec<u8>)> = conn
        .prepare("SELECT seq, line, hash FROM audit_log ORDER BY seq")
        .unwrap()
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        rows.iter().map(|(_, line, _)| *line).collect::<Vec<_>>(),
        [None, Some(1), Some(2), None, Some(3)]
    );
    let lines = file_lines(dir.path());
    for (seq, line, hash) in &rows {
        let Some(line) = line else { continue };
        let written: serde_json::Value = serde_json::from_str(&lines[*line as usize - 1]).unwrap();
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(written["hash"], hex.as_str(), "record {seq}, line {line}");
    }

    // A folded record swapped with one committed directly is named where it moved.
    conn.execute_batch(
        "DROP TRIGGER audit_log_append_only;
         UPDATE audit_log SET seq = -3 WHERE seq = 3;
         UPDATE audit_log SET seq = 3 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = -3;",
    )
    .unwrap();
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 3, "{broken}");
}

#[test]
fn a_folded_record_whose_line_number_is_edited_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    for i in 1..=3 {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
    }
    assert_eq!(audit.fold().unwrap(), 3);
    let conn = store::rusqlite::Connection::open(dir.path().join(Store::DATABASE_FILE)).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_log_append_only;
         UPDATE audit_log SET line = 3 WHERE seq = 2;",
    )
    .unwrap();
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 2, "{broken}");
    assert!(broken.problem.contains("out of place"), "{broken}");
}

#[test]
fn records_folded_before_the_upgrade_and_after_it_verify_as_one_trail() {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_with_fold_delay(Store::open(dir.path()).unwrap(), NEVER).unwrap();
    for i in 1..=2 {
        audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
    }
    assert_eq!(audit.fold().unwrap(), 2);
    // Rows 1 and 2 as the fold wrote them before migration 4 (chained by sequence
    // number, which equalled the line number here; no `line`), and the anchor the
    // migration records from `audit_folded`.
    let conn = store::rusqlite::Connection::open(dir.path().join(Store::DATABASE_FILE)).unwrap();
    conn.execute_batch(
        "DROP TRIGGER audit_log_append_only;
         UPDATE audit_log SET line = NULL;
         DELETE FROM audit_line_anchor;
         INSERT INTO audit_line_anchor (id, line, hash)
             SELECT 1, line, hash FROM audit_folded WHERE id = 1;",
    )
    .unwrap();
    audit.append(read_patient("Patient/p3")).wait().unwrap();
    assert_eq!(audit.fold().unwrap(), 1);
    let verification = audit.verify().unwrap();
    assert_eq!((verification.records, verification.broken), (3, None));
    // Without the anchor, the first row folded after the upgrade is out of place.
    conn.execute("DELETE FROM audit_line_anchor", []).unwrap();
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 3, "{broken}");
}
