//! The audit trail against a real database file: appends, the chain, and tampering.

use std::time::Duration;

use access::audit::{ActionKind, Audit, AuditRecord, ExportFormat, Outcome, to_audit_event};
use access::{Actor, AuthMethod, Principal, Role};

fn open() -> (tempfile::TempDir, Audit) {
    let dir = tempfile::tempdir().unwrap();
    let audit = Audit::open_blocking(store::Store::open(dir.path()).unwrap()).unwrap();
    (dir, audit)
}

fn alice_token() -> Principal {
    Principal {
        actor: Actor::Token {
            id: 7,
            owner: "alice".into(),
        },
        roles: vec![Role::Analyst],
        scopes: None,
        method: AuthMethod::Token,
        address: Some("10.1.2.3:50123".parse().unwrap()),
        tls_identity: Some("CN=ward-pc-7".into()),
    }
}

fn read_patient(patient: &str) -> AuditRecord {
    AuditRecord::by(
        &alice_token(),
        "fhir.read",
        ActionKind::Read,
        Outcome::Success,
    )
    .resource(patient)
    .patients([patient])
}

/// Writes five records, folds them into the table and opens the database for tampering
/// outside Corridor.
fn five_records() -> (tempfile::TempDir, Audit, store::rusqlite::Connection) {
    let (dir, audit) = open();
    for i in 1..=5 {
        let seq = audit
            .append(read_patient(&format!("Patient/p{i}")))
            .wait()
            .unwrap();
        assert_eq!(seq, i);
    }
    // Folded from the audit file into `audit_log`, where the tampering below happens.
    assert_eq!(audit.fold().unwrap(), 5);
    let conn =
        store::rusqlite::Connection::open(dir.path().join(store::Store::DATABASE_FILE)).unwrap();
    (dir, audit, conn)
}

#[test]
fn an_untouched_chain_verifies() {
    let (_dir, audit, _conn) = five_records();
    let verification = audit.verify().unwrap();
    assert_eq!(verification.records, 5);
    assert_eq!(verification.broken, None);
}

#[test]
fn updating_a_record_is_refused_by_the_database() {
    let (_dir, _audit, conn) = five_records();
    let error = conn
        .execute(
            "UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3",
            [],
        )
        .unwrap_err();
    assert!(error.to_string().contains("append-only"), "{error}");
}

#[test]
fn an_edited_record_is_named() {
    let (_dir, audit, conn) = five_records();
    conn.execute_batch(
        "DROP TRIGGER audit_log_append_only;
         UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 3;",
    )
    .unwrap();
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 3);
    assert!(broken.problem.contains("edited"), "{broken}");
}

#[test]
fn a_deleted_record_is_named() {
    let (_dir, audit, conn) = five_records();
    conn.execute("DELETE FROM audit_log WHERE seq = 2", [])
        .unwrap();
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 2);
    assert!(broken.problem.contains("deleted"), "{broken}");
}

#[test]
fn a_deleted_newest_record_is_named() {
    let (_dir, audit, conn) = five_records();
    conn.execute("DELETE FROM audit_log WHERE seq = 5", [])
        .unwrap();
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 5);
    assert!(broken.problem.contains("missing"), "{broken}");
}

#[test]
fn reordered_records_are_named() {
    let (_dir, audit, conn) = five_records();
    // Swap records 2 and 3, hashes and all, so each row is self-consistent but in the
    // wrong place.
    conn.execute_batch(
        "DROP TRIGGER audit_log_append_only;
         UPDATE audit_log SET seq = -2 WHERE seq = 2;
         UPDATE audit_log SET seq = 2 WHERE seq = 3;
         UPDATE audit_log SET seq = 3 WHERE seq = -2;",
    )
    .unwrap();
    let broken = audit.verify().unwrap().broken.unwrap();
    assert_eq!(broken.seq, 2, "{broken}");
}

#[test]
fn records_answer_who_read_a_patient_as_audit_events() {
    let (_dir, audit) = open();
    audit.append(read_patient("Patient/p1")).wait().unwrap();
    audit.append(read_patient("Patient/p2")).wait().unwrap();
    let refused = AuditRecord::by(
        &alice_token(),
        "fhir.read",
        ActionKind::Read,
        Outcome::Denied,
    )
    .resource("Patient/p1")
    .patients(["Patient/p1"])
    .detail("missing scope");
    audit.append(refused).wait().unwrap();

    let records = audit.for_patient("Patient/p1", None, None).unwrap();
    assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 3]);
    let later = audit
        .for_patient("Patient/p1", Some(records[1].record.at), None)
        .unwrap();
    assert_eq!(later.len(), 1);

    let event = to_audit_event(&records[0]);
    assert_eq!(event["resourceType"], "AuditEvent");
    assert_eq!(event["action"], "R");
    assert_eq!(event["outcome"], "0");
    assert_eq!(event["agent"][0]["who"]["identifier"]["value"], "token:7");
    assert_eq!(event["agent"][0]["network"]["address"], "10.1.2.3");
    assert_eq!(event["agent"][0]["altId"], "CN=ward-pc-7");
    assert_eq!(event["agent"][1]["who"]["identifier"]["value"], "alice");
    assert_eq!(event["entity"][0]["what"]["reference"], "Patient/p1");
    assert_eq!(event["entity"][0]["role"]["code"], "1");
    let recorded = event["recorded"].as_str().unwrap();
    assert!(recorded.parse::<jiff::Timestamp>().is_ok(), "{recorded}");
    let denied = to_audit_event(&records[1]);
    assert_eq!(denied["outcome"], "4");
    assert_eq!(denied["outcomeDesc"], "missing scope");
}

#[test]
fn export_writes_json_and_csv_since_a_time() {
    let (_dir, audit, _conn) = five_records();
    let mut json = Vec::new();
    assert_eq!(audit.export(0, ExportFormat::Json, &mut json).unwrap(), 5);
    let parsed: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(parsed.as_array().unwrap().len(), 5);
    assert_eq!(parsed[0]["actor"], "token:7");
    assert_eq!(parsed[0]["owner"], "alice");
    assert_eq!(parsed[4]["patients"][0], "Patient/p5");

    let mut csv = Vec::new();
    let future = i64::MAX;
    assert_eq!(
        audit.export(future, ExportFormat::Csv, &mut csv).unwrap(),
        0
    );
    assert_eq!(String::from_utf8(csv).unwrap().lines().count(), 1);
    let mut csv = Vec::new();
    audit.export(0, ExportFormat::Csv, &mut csv).unwrap();
    let text = String::from_utf8(csv).unwrap();
    assert!(text.starts_with("seq,at,actor,owner,"), "{text}");
    assert_eq!(text.lines().count(), 6);
}

#[test]
fn pruning_keeps_the_rest_of_the_chain_verifiable() {
    let (_dir, audit) = open();
    let mut old = read_patient("Patient/p1");
    old.at = 1_000_000; // 1970
    audit.append(old.clone()).wait().unwrap();
    audit.append(old).wait().unwrap();
    audit.append(read_patient("Patient/p2")).wait().unwrap();
    let dropped = audit.prune(Duration::from_secs(86_400)).wait().unwrap();
    assert_eq!(dropped, 2);
    assert_eq!(audit.verify().unwrap().broken, None);
    assert!(
        audit
            .for_patient("Patient/p1", None, None)
            .unwrap()
            .is_empty()
    );
    audit.append(read_patient("Patient/p3")).wait().unwrap();
    let verification = audit.verify().unwrap();
    assert_eq!((verification.records, verification.broken), (2, None));
}

#[test]
fn since_reads_times_and_dates() {
    use access::audit::parse_since;
    assert_eq!(parse_since("1970-01-02"), Ok(86_400_000_000));
    assert_eq!(parse_since("1970-01-01T00:00:01Z"), Ok(1_000_000));
    assert!(parse_since("yesterday").is_err());
}

#[test]
fn filters_select_their_records_page_newest_first_and_use_an_index() {
    use access::audit::AuditFilter;
    let (_dir, audit, _conn) = five_records();
    let admin = Principal {
        actor: Actor::User { name: "ada".into() },
        roles: vec![Role::Admin],
        scopes: None,
        method: AuthMethod::Session,
        address: None,
        tls_identity: None,
    };
    audit
        .append(
            AuditRecord::by(&admin, "user.add", ActionKind::Create, Outcome::Denied)
                .resource("user/bob"),
        )
        .wait()
        .unwrap();
    let seqs = |filter: &AuditFilter, before: Option<i64>, limit: usize| {
        let (records, next) = audit.page(filter, before, limit).unwrap();
        (records.iter().map(|r| r.seq).collect::<Vec<_>>(), next)
    };
    // Pages newest first; the last says there is no next.
    let all = AuditFilter::default();
    assert_eq!(seqs(&all, None, 4), (vec![6, 5, 4, 3], Some(3)));
    assert_eq!(seqs(&all, Some(3), 4), (vec![2, 1], None));
    // Who: a user's name finds the tokens they own; an actor as recorded finds itself.
    let who = |w: &str| AuditFilter {
        who: Some(w.into()),
        ..AuditFilter::default()
    };
    assert_eq!(seqs(&who("alice"), None, 50).0, vec![5, 4, 3, 2, 1]);
    assert_eq!(seqs(&who("token:7"), None, 50).0.len(), 5);
    assert_eq!(seqs(&who("ada"), None, 50).0, vec![6]);
    assert!(seqs(&who("user:alice"), None, 50).0.is_empty());
    let one = |filter: AuditFilter| seqs(&filter, None, 50).0;
    assert_eq!(
        one(AuditFilter {
            patient: Some("Patient/p2".into()),
            ..AuditFilter::default()
        }),
        vec![2]
    );
    assert_eq!(
        one(AuditFilter {
            outcome: Some(Outcome::Denied),
            ..AuditFilter::default()
        }),
        vec![6]
    );
    assert_eq!(
        one(AuditFilter {
            kind: Some(ActionKind::Read),
            action: Some("fhir.read".into()),
            resource: Some("Patient/p4".into()),
            ..AuditFilter::default()
        }),
        vec![4]
    );
    assert!(
        one(AuditFilter {
            to: Some(0),
            ..AuditFilter::default()
        })
        .is_empty()
    );
    // The filtered export writes the same records, oldest first.
    let mut csv = Vec::new();
    let count = audit
        .export_filtered(&who("alice"), ExportFormat::Csv, &mut csv)
        .unwrap();
    assert_eq!(count, 5);
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.lines().nth(1).unwrap().starts_with("1,"), "{csv}");

    // Each filter is answered from an index, not a scan of the whole trail.
    for filter in [
        who("alice"),
        who("token:7"),
        AuditFilter {
            action: Some("fhir.read".into()),
            ..AuditFilter::default()
        },
        AuditFilter {
            outcome: Some(Outcome::Denied),
            ..AuditFilter::default()
        },
        AuditFilter {
            resource: Some("user/bob".into()),
            ..AuditFilter::default()
        },
        AuditFilter {
            patient: Some("Patient/p2".into()),
            ..AuditFilter::default()
        },
    ] {
        let plan = audit.page_plan(&filter).unwrap();
        assert!(
            plan.iter()
                .all(|step| !step.starts_with("SCAN audit_log") || step.contains("INDEX")),
            "{filter:?}: {plan:?}"
        );
        assert!(
            plan.iter().any(|step| step.contains("INDEX")
                || step.contains("PRIMARY KEY")
                || step.contains("audit_patients")),
            "{filter:?}: {plan:?}"
        );
    }
}
