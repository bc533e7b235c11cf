//! Users, tokens and the first start, against a real database file.

use std::time::{Duration, Instant};

use access::{Access, BadCredentials, Error, LoginError, Role, TokenRejected, VerifyTokenError};

fn open() -> (tempfile::TempDir, Access) {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::open_blocking(store::Store::open(dir.path()).unwrap()).unwrap();
    (dir, access)
}

const PASSWORD: &str = "correct horse battery";

#[test]
fn a_user_signs_in_with_its_password_and_not_another() {
    let (_dir, access) = open();
    access
        .add_user("alice", Role::Analyst, Some(PASSWORD), None)
        .wait()
        .unwrap();
    let user = access.verify_password("alice", PASSWORD).unwrap();
    assert_eq!((user.name.as_str(), user.role), ("alice", Role::Analyst));
    assert!(matches!(
        access.verify_password("alice", "wrong horse battery"),
        Err(LoginError::BadCredentials(BadCredentials))
    ));
    assert!(matches!(
        access.verify_password("nobody", PASSWORD),
        Err(LoginError::BadCredentials(BadCredentials))
    ));
}

#[test]
fn passwords_are_stored_as_argon2id_never_as_given() {
    let (dir, access) = open();
    access
        .add_user("alice", Role::Viewer, Some(PASSWORD), None)
        .wait()
        .unwrap();
    let conn = rusqlite_open(&dir);
    let hash: String = conn
        .query_row(
            "SELECT password_hash FROM access_users WHERE name = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{hash}"
    );
    assert!(!hash.contains(PASSWORD));
}

fn rusqlite_open(dir: &tempfile::TempDir) -> store::rusqlite::Connection {
    store::rusqlite::Connection::open(dir.path().join(store::Store::DATABASE_FILE)).unwrap()
}

#[test]
fn an_unknown_name_is_hashed_like_a_wrong_password() {
    let (_dir, access) = open();
    access
        .add_user("alice", Role::Viewer, Some(PASSWORD), None)
        .wait()
        .unwrap();
    // Warm the dummy hash. An unknown name that skipped hashing would answer in
    // microseconds; one Argon2id verification with 19 MiB takes milliseconds on any
    // machine, and a loaded machine only makes it slower, so the bound cannot flake.
    let _ = access.verify_password("nobody", PASSWORD);
    for name in ["nobody", "alice"] {
        let start = Instant::now();
        assert!(access.verify_password(name, "wrong horse battery").is_err());
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(2), "{name}: {took:?}");
    }
}

#[test]
fn bad_names_passwords_and_duplicates_are_refused() {
    let (_dir, access) = open();
    assert!(matches!(
        access.add_user("bad name", Role::Viewer, None, None).wait(),
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        access
            .add_user("bob", Role::Viewer, Some("short"), None)
            .wait(),
        Err(Error::PasswordLength { .. })
    ));
    access
        .add_user("bob", Role::Viewer, None, None)
        .wait()
        .unwrap();
    assert!(matches!(
        access.add_user("bob", Role::Admin, None, None).wait(),
        Err(Error::UserExists(_))
    ));
    // Without a password no password signs bob in.
    assert!(access.verify_password("bob", PASSWORD).is_err());
}

#[test]
fn a_disabled_user_cannot_sign_in_and_its_tokens_stop() {
    let (_dir, access) = open();
    access
        .add_user("alice", Role::Operator, Some(PASSWORD), None)
        .wait()
        .unwrap();
    let token = access
        .create_token("alice", None, None, None)
        .wait()
        .unwrap();
    assert!(access.verify_token(&token.secret).is_ok());
    let user = access.disable_user("alice", None).wait().unwrap();
    assert!(user.disabled);
    assert!(access.verify_password("alice", PASSWORD).is_err());
    assert!(matches!(
        access.verify_token(&token.secret),
        Err(VerifyTokenError::Rejected(TokenRejected::OwnerRefused))
    ));
    assert!(matches!(
        access.disable_user("nobody", None).wait(),
        Err(Error::NoSuchUser(_))
    ));
}

#[test]
fn a_new_password_replaces_the_old() {
    let (_dir, access) = open();
    access
        .add_user("alice", Role::Viewer, Some(PASSWORD), None)
        .wait()
        .unwrap();
    access
        .set_password("alice", "a different passphrase", None)
        .wait()
        .unwrap();
    assert!(access.verify_password("alice", PASSWORD).is_err());
    assert!(
        access
            .verify_password("alice", "a different passphrase")
            .is_ok()
    );
}

#[test]
fn tokens_are_prefixed_stored_hashed_and_listed_without_secret() {
    let (dir, access) = open();
    access
        .add_user("alice", Role::Admin, None, None)
        .wait()
        .unwrap();
    let token = access
        .create_token("alice", Some(30), None, None)
        .wait()
        .unwrap();
    assert!(token.secret.starts_with("crd_"));
    assert_eq!(token.secret.len(), 4 + 43);
    assert!(token.expires_at.is_some());
    let identity = access.verify_token(&token.secret).unwrap();
    assert_eq!(
        (identity.user.as_str(), identity.role),
        ("alice", Role::Admin)
    );

    let conn = rusqlite_open(&dir);
    let stored: Vec<u8> = conn
        .query_row("SELECT hash FROM access_tokens", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored.len(), 32);
    let dump: String = conn
        .query_row("SELECT group_concat(hint) FROM access_tokens", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(!dump.contains(&token.secret));

    let listed = access.list_tokens().unwrap();
    assert_eq!(listed.len(), 1);
    assert!(token.secret.starts_with(&listed[0].hint));
    assert!(listed[0].hint.len() < 16);
}

#[test]
fn a_token_may_narrow_its_owners_role_but_not_widen_it() {
    let (_dir, access) = open();
    access
        .add_user("alice", Role::Operator, None, None)
        .wait()
        .unwrap();
    let viewer = access
        .create_token("alice", None, Some(Role::Viewer), None)
        .wait()
        .unwrap();
    assert_eq!(
        access.verify_token(&viewer.secret).unwrap().role,
        Role::Viewer
    );
    assert!(matches!(
        access
            .create_token("alice", None, Some(Role::Admin), None)
            .wait(),
        Err(Error::RoleWiderThanOwner { .. })
    ));
    assert!(matches!(
        access.create_token("alice", Some(0), None, None).wait(),
        Err(Error::InvalidExpiry)
    ));
}

#[test]
fn revoked_forged_and_expired_tokens_are_refused() {
    let (dir, access) = open();
    access
        .add_user("alice", Role::Analyst, None, None)
        .wait()
        .unwrap();
    let token = access
        .create_token("alice", Some(1), None, None)
        .wait()
        .unwrap();
    let rejected = |secret: &str| match access.verify_token(secret) {
        Err(VerifyTokenError::Rejected(why)) => Some(why),
        _ => None,
    };
    assert_eq!(rejected("Bearer nonsense"), Some(TokenRejected::Malformed));
    let mut forged = token.secret.clone();
    forged.pop();
    forged.push(if token.secret.ends_with('A') {
        'B'
    } else {
        'A'
    });
    assert_eq!(rejected(&forged), Some(TokenRejected::Unknown));

    // Expire it in the database file, as time would.
    rusqlite_open(&dir)
        .execute("UPDATE access_tokens SET expires_at = 1", [])
        .unwrap();
    assert_eq!(rejected(&token.secret), Some(TokenRejected::Expired));

    let other = access
        .create_token("alice", None, None, None)
        .wait()
        .unwrap();
    access.revoke_token(other.id, None).wait().unwrap();
    assert_eq!(rejected(&other.secret), Some(TokenRejected::Revoked));
    assert!(matches!(
        access.revoke_token(999, None).wait(),
        Err(Error::NoSuchToken(999))
    ));
}

#[tokio::test]
async fn the_first_start_creates_an_admin_token_readable_only_by_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::open(store::Store::open(dir.path()).unwrap())
        .await
        .unwrap();
    let first = access
        .ensure_first_admin(dir.path())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.path, dir.path().join("admin-token"));
    let written = std::fs::read_to_string(&first.path).unwrap();
    assert_eq!(written.trim_end(), first.secret);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    }
    let identity = access.verify_token(&first.secret).unwrap();
    assert_eq!(
        (identity.user.as_str(), identity.role),
        ("admin", Role::Admin)
    );
    let audit = access::audit::Audit::open(access.store().clone())
        .await
        .unwrap();
    assert_eq!(
        audit.verify().unwrap().records,
        1,
        "the creation is audited"
    );
    // Users exist now: a second start creates nothing and leaves the file alone.
    assert!(
        access
            .ensure_first_admin(dir.path())
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(access.list_tokens().unwrap().len(), 1);
    assert_eq!(std::fs::read_to_string(&first.path).unwrap(), written);
}

#[test]
fn a_change_and_its_audit_record_are_written_together() {
    use access::audit::{ActionKind, Audit, AuditRecord};
    let (dir, access) = open();
    let record = || AuditRecord::cli("user.add", ActionKind::Create, "user/alice");
    access
        .add_user("alice", Role::Viewer, None, Some(record()))
        .wait()
        .unwrap();
    // A change that fails writes no record.
    assert!(
        access
            .add_user("alice", Role::Viewer, None, Some(record()))
            .wait()
            .is_err()
    );
    let audit = Audit::open_blocking(access.store().clone()).unwrap();
    let mut out = Vec::new();
    assert_eq!(
        audit
            .export(0, access::audit::ExportFormat::Json, &mut out)
            .unwrap(),
        1
    );

    // A record that cannot be written takes its change back with it.
    rusqlite_open(&dir)
        .execute_batch(
            "CREATE TRIGGER no_audit BEFORE INSERT ON audit_log
             BEGIN SELECT RAISE(ABORT, 'audit disk full'); END;",
        )
        .unwrap();
    let refused = access
        .add_user("bob", Role::Viewer, None, Some(record()))
        .wait();
    assert!(refused.is_err());
    assert_eq!(access.user("bob").unwrap(), None);
}

#[test]
fn a_verified_token_is_cached_until_this_process_revokes_it() {
    let (dir, access) = open();
    access
        .add_user("alice", Role::Analyst, None, None)
        .wait()
        .unwrap();
    let token = access
        .create_token("alice", None, None, None)
        .wait()
        .unwrap();
    assert!(access.verify_cached_token(&token.secret).is_none());
    assert_eq!(access.verify_token(&token.secret).unwrap().id, token.id);
    assert_eq!(access.cached_tokens(), 1);
    // Another process revokes it (the command line): this one's cache still trusts it,
    // for at most the cache's lifetime, while a process without the cache refuses it.
    rusqlite_open(&dir)
        .execute(
            "UPDATE access_tokens SET revoked_at = 1 WHERE id = ?1",
            [token.id],
        )
        .unwrap();
    let cached = access.verify_cached_token(&token.secret).unwrap();
    assert_eq!((cached.id, cached.role), (token.id, Role::Analyst));
    let other = Access::open_blocking(store::Store::open(dir.path()).unwrap()).unwrap();
    assert!(matches!(
        other.verify_token(&token.secret),
        Err(VerifyTokenError::Rejected(TokenRejected::Revoked))
    ));
    // Revoked (again) by this process: refused at once.
    access.revoke_token(token.id, None).wait().unwrap();
    assert_eq!(access.cached_tokens(), 0);
    assert!(access.verify_cached_token(&token.secret).is_none());
    assert!(matches!(
        access.verify_token(&token.secret),
        Err(VerifyTokenError::Rejected(TokenRejected::Revoked))
    ));
    // The cache holds hashes, never the secret; a wrong secret never hits it.
    let forged = format!("crd_{}", "B".repeat(43));
    assert!(access.verify_cached_token(&forged).is_none());
}

#[test]
fn a_session_ends_when_its_user_is_disabled_or_changes_password_from_any_process() {
    let (dir, access) = open();
    for name in ["alice", "bob"] {
        access
            .add_user(name, Role::Operator, Some(PASSWORD), None)
            .wait()
            .unwrap();
    }
    let sessions = access::Sessions::new(access::SessionPolicy::default());
    let session_of = |name: &str| {
        let new = sessions.create(name, Role::Operator, None).unwrap();
        sessions.get(&new.id).unwrap()
    };
    let alice = session_of("alice");
    let bob = session_of("bob");
    assert!(access.session_holder_current(&alice).unwrap());
    assert!(access.session_holder_current(&bob).unwrap());
    // Another process (the command line) changes alice's password and disables bob.
    let other = Access::open_blocking(store::Store::open(dir.path()).unwrap()).unwrap();
    other
        .set_password("alice", "a brand new passphrase", None)
        .wait()
        .unwrap();
    other.disable_user("bob", None).wait().unwrap();
    assert!(!access.session_holder_current(&alice).unwrap());
    assert!(!access.session_holder_current(&bob).unwrap());
    // A login after the new password holds again.
    assert!(access.session_holder_current(&session_of("alice")).unwrap());
    // A session claiming a wider role than its user's does not hold.
    let mut wider = session_of("alice");
    wider.role = Role::Admin;
    assert!(!access.session_holder_current(&wider).unwrap());
}
