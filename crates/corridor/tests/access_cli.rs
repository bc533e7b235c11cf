//! `corridor user`, `token` and `audit` as an administrator runs them: the real binary
//! on a real data directory.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn corridor(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .arg("--data")
        .arg(dir)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("corridor runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn database(dir: &Path) -> store::rusqlite::Connection {
    store::rusqlite::Connection::open(dir.join(store::Store::DATABASE_FILE)).unwrap()
}

#[test]
fn users_are_added_listed_disabled_and_given_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let password = "correct horse battery";
    ok(&corridor(
        dir,
        &[
            "user",
            "add",
            "alice",
            "--role",
            "analyst",
            "--password-stdin",
        ],
        Some(&format!("{password}\n")),
    ));
    ok(&corridor(
        dir,
        &["user", "add", "etl", "--role", "viewer", "--no-password"],
        None,
    ));

    let list = ok(&corridor(dir, &["user", "list"], None));
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines[0], "NAME\tROLE\tPASSWORD\tSTATE\tCREATED");
    assert!(
        lines[1].starts_with("alice\tanalyst\tset\tenabled\t"),
        "{list}"
    );
    assert!(
        lines[2].starts_with("etl\tviewer\tnone\tenabled\t"),
        "{list}"
    );

    // The password given on stdin is the one that signs in.
    let access = access::Access::open_blocking(store::Store::open(dir).unwrap()).unwrap();
    assert!(access.verify_password("alice", password).is_ok());
    drop(access);

    let again = corridor(
        dir,
        &["user", "add", "alice", "--role", "admin", "--no-password"],
        None,
    );
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("exists already"),
        "{}",
        stderr(&again)
    );

    let bad_role = corridor(dir, &["user", "add", "bob", "--role", "root"], None);
    assert_eq!(bad_role.status.code(), Some(2));
    assert!(
        stderr(&bad_role).contains("unknown role"),
        "{}",
        stderr(&bad_role)
    );

    let no_terminal = corridor(dir, &["user", "add", "bob", "--role", "viewer"], None);
    assert_eq!(no_terminal.status.code(), Some(1));
    assert!(stderr(&no_terminal).contains("--password-stdin"));

    let short = corridor(
        dir,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("short\n"),
    );
    assert_eq!(short.status.code(), Some(1));
    ok(&corridor(
        dir,
        &["user", "passwd", "alice", "--password-stdin"],
        Some("another long passphrase\n"),
    ));
    ok(&corridor(dir, &["user", "disable", "alice"], None));
    let list = ok(&corridor(dir, &["user", "list"], None));
    assert!(list.contains("alice\tanalyst\tset\tdisabled"), "{list}");
    assert_eq!(
        corridor(dir, &["user", "disable", "nobody"], None)
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn a_token_is_printed_once_listed_by_hint_and_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    ok(&corridor(
        dir,
        &["user", "add", "ops", "--role", "operator", "--no-password"],
        None,
    ));
    let created = corridor(
        dir,
        &[
            "token",
            "create",
            "--user",
            "ops",
            "--expires",
            "30",
            "--role",
            "viewer",
        ],
        None,
    );
    let secret = ok(&created).trim().to_owned();
    assert!(secret.starts_with("crd_") && secret.len() == 47, "{secret}");
    assert!(
        stderr(&created).contains("role viewer"),
        "{}",
        stderr(&created)
    );

    let access = access::Access::open_blocking(store::Store::open(dir).unwrap()).unwrap();
    let identity = access.verify_token(&secret).unwrap();
    assert_eq!(
        (identity.user.as_str(), identity.role),
        ("ops", access::Role::Viewer)
    );

    let list = ok(&corridor(dir, &["token", "list"], None));
    assert!(!list.contains(&secret), "the list shows the secret");
    let row = list.lines().nth(1).unwrap();
    let columns: Vec<&str> = row.split('\t').collect();
    assert_eq!(columns[1], "ops");
    assert!(secret.starts_with(columns[2].trim_end_matches("...")));
    assert_eq!(columns[6], "active");
    assert_eq!(columns[7], "-");

    let wider = corridor(
        dir,
        &["token", "create", "--user", "ops", "--role", "admin"],
        None,
    );
    assert_eq!(wider.status.code(), Some(1));

    // SMART scopes limit a token's FHIR reads; what is not a resource scope is refused.
    let scoped = corridor(
        dir,
        &[
            "token",
            "create",
            "--user",
            "ops",
            "--scopes",
            "system/Patient.read user/Observation.rs",
        ],
        None,
    );
    let scoped_secret = ok(&scoped).trim().to_owned();
    let scopes = access
        .verify_token(&scoped_secret)
        .unwrap()
        .scopes
        .expect("the token carries its scopes");
    assert!(scopes.allows("Patient", access::FhirAccess::Read));
    assert!(scopes.allows("Observation", access::FhirAccess::Read));
    assert!(!scopes.allows("Encounter", access::FhirAccess::Read));
    let bad = corridor(
        dir,
        &["token", "create", "--user", "ops", "--scopes", "openid"],
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("scopes"), "{}", stderr(&bad));

    // The list shows each token's scopes ("-" for none).
    let list = ok(&corridor(dir, &["token", "list"], None));
    assert!(list.lines().next().unwrap().ends_with("\tSCOPES"), "{list}");
    assert!(
        list.lines()
            .nth(1)
            .unwrap()
            .ends_with("\tsystem/Patient.read user/Observation.read"),
        "{list}"
    );

    ok(&corridor(dir, &["token", "revoke", columns[0]], None));
    // Refused by any process from now on, and by one that had verified it before
    // within its cache's lifetime (access::TOKEN_CACHE_LIFETIME).
    let fresh = access::Access::open_blocking(store::Store::open(dir).unwrap()).unwrap();
    assert!(fresh.verify_token(&secret).is_err());
    let list = ok(&corridor(dir, &["token", "list"], None));
    let revoked_row = list
        .lines()
        .find(|line| line.starts_with(&format!("{}\t", columns[0])))
        .unwrap();
    assert!(revoked_row.ends_with("\trevoked\t-"), "{list}");
    assert_eq!(
        corridor(dir, &["token", "revoke", "999"], None)
            .status
            .code(),
        Some(1)
    );
}

/// Three audited changes made through the command line.
fn audited_changes(dir: &Path) {
    ok(&corridor(
        dir,
        &["user", "add", "a1", "--role", "viewer", "--no-password"],
        None,
    ));
    ok(&corridor(
        dir,
        &["user", "add", "a2", "--role", "viewer", "--no-password"],
        None,
    ));
    ok(&corridor(dir, &["user", "disable", "a1"], None));
}

#[test]
fn audit_verify_passes_an_untouched_trail_and_names_an_edited_record() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    audited_changes(dir);
    let verified = ok(&corridor(dir, &["audit", "verify"], None));
    assert_eq!(verified.trim(), "3 audit records, chain intact");

    database(dir)
        .execute_batch(
            "DROP TRIGGER audit_log_append_only;
             UPDATE audit_log SET resource = 'user/someone-else' WHERE seq = 2;",
        )
        .unwrap();
    let failed = corridor(dir, &["audit", "verify"], None);
    assert_eq!(failed.status.code(), Some(1));
    let said = String::from_utf8_lossy(&failed.stdout);
    assert!(said.starts_with("audit record 2: "), "{said}");
    assert!(said.contains("edited"), "{said}");
}

#[test]
fn audit_verify_names_a_deleted_record() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    audited_changes(dir);
    database(dir)
        .execute("DELETE FROM audit_log WHERE seq = 1", [])
        .unwrap();
    let failed = corridor(dir, &["audit", "verify"], None);
    assert_eq!(failed.status.code(), Some(1));
    let said = String::from_utf8_lossy(&failed.stdout);
    assert!(said.starts_with("audit record 1: missing"), "{said}");
}

#[test]
fn audit_export_writes_json_and_csv() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    audited_changes(dir);
    let json = ok(&corridor(
        dir,
        &["audit", "export", "--since", "2000-01-01"],
        None,
    ));
    let records: serde_json::Value = serde_json::from_str(&json).unwrap();
    let actions: Vec<&str> = records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["user.add", "user.add", "user.disable"]);
    assert_eq!(records[2]["resource"], "user/a1");
    assert_eq!(records[0]["actor"], "cli");

    let csv = ok(&corridor(
        dir,
        &[
            "audit",
            "export",
            "--since",
            "2000-01-01T00:00:00Z",
            "--format",
            "csv",
        ],
        None,
    ));
    assert_eq!(csv.lines().count(), 4, "{csv}");
    assert!(csv.starts_with("seq,at,actor,"));
    let none = ok(&corridor(
        dir,
        &[
            "audit",
            "export",
            "--since",
            "2999-01-01",
            "--format",
            "csv",
        ],
        None,
    ));
    assert_eq!(none.lines().count(), 1);
    let bad = corridor(dir, &["audit", "export", "--since", "last week"], None);
    assert_eq!(bad.status.code(), Some(2));
}
