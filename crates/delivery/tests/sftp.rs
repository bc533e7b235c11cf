//! The SFTP destination and `delivery::sftp` against a real OpenSSH `sshd` on a loopback
//! port (`test_support::sshd`).

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use delivery::EntryState;
use delivery::sftp::{SftpServer, SftpServerConfig};
use store::Store;
use test_support::sshd::Sshd;

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sftp_destination_writes_whole_files_and_a_server_that_is_down_holds_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let mut sshd = Sshd::start(&dir.path().join("sshd"));
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let store = Store::open(&dir.path().join("data")).unwrap();
    let configs = [config(&format!(
        "name = \"partner\"\ntype = \"sftp\"\npath = \"{}\"\nfile_name = \"{{message_id}}-{{control_id}}.hl7\"\n\
         server = {}\non_failure = \"wait\"\n\
         retry = {{ max_attempts = 1000, initial_backoff = \"100ms\", max_backoff = \"200ms\" }}",
        out.display(),
        sshd.server_toml()
    ))];
    let (delivery, router) = start(&store, &configs, dir.path()).await;
    let mut ids = Vec::new();
    for n in 1..=3 {
        ids.push(ingest(&store, &router, message(&format!("S{n}"), "P1"), None).await);
    }
    delivery.wake("lab");
    wait_for("three files", Duration::from_secs(20), || {
        count_in(&store, EntryState::Delivered) == 3
    })
    .await;
    for (n, id) in ids.iter().enumerate() {
        let control = format!("S{}", n + 1);
        let written = std::fs::read(out.join(format!("{}-{control}.hl7", id.0))).unwrap();
        assert_eq!(written, message(&control, "P1"));
    }
    assert_eq!(names_in(&out).len(), 3, "{:?}", names_in(&out));

    // The server goes away: the next messages wait in the queue, neither lost nor dead.
    sshd.stop();
    for n in 4..=5 {
        ids.push(ingest(&store, &router, message(&format!("S{n}"), "P1"), None).await);
    }
    delivery.wake("lab");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count_in(&store, EntryState::Delivered), 3);
    assert_eq!(count_in(&store, EntryState::DeadLettered), 0);
    let waiting = entries(&store, ids[3]);
    assert!(
        waiting[0].attempts >= 1,
        "the entry was tried while the server was down: {waiting:?}"
    );
    sshd.resume();
    wait_for("the held files", Duration::from_secs(30), || {
        count_in(&store, EntryState::Delivered) == 5
    })
    .await;
    let names = names_in(&out);
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
    let fifth = std::fs::read(out.join(format!("{}-S5.hl7", ids[4].0))).unwrap();
    assert_eq!(fifth, message("S5", "P1"));
    delivery.shutdown().await;
}

fn server_config(sshd: &Sshd, pin: &str) -> SftpServerConfig {
    toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nusername = \"{}\"\nprivate_key = \"{}\"\n{pin}",
        sshd.port,
        sshd.user,
        sshd.client_key.display()
    ))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_pinned_host_key_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let base = dir.path();

    // The right fingerprint: a session whose folder can be listed.
    let pinned = server_config(
        &sshd,
        &format!("host_key_fingerprint = \"{}\"", sshd.fingerprint),
    );
    let connection = SftpServer::new(&pinned, base)
        .unwrap()
        .connect()
        .await
        .unwrap();
    assert!(
        connection
            .sftp
            .read_dir(base.display().to_string())
            .await
            .is_ok()
    );

    // Another key's fingerprint (the client's own): refused before logging in.
    let other = std::process::Command::new("ssh-keygen")
        .arg("-lf")
        .arg(sshd.client_key.with_extension("pub"))
        .output()
        .unwrap();
    let other = String::from_utf8(other.stdout).unwrap();
    let other = other.split_whitespace().nth(1).unwrap();
    let wrong = server_config(&sshd, &format!("host_key_fingerprint = \"{other}\""));
    let err = SftpServer::new(&wrong, base)
        .unwrap()
        .connect()
        .await
        .err()
        .unwrap();
    assert!(err.contains("is not the pinned one"), "{err}");

    // A known_hosts file naming another key for this host: refused, naming the line.
    let client_public = std::fs::read_to_string(sshd.client_key.with_extension("pub")).unwrap();
    let mut words = client_public.split_whitespace();
    let stale = base.join("stale_known_hosts");
    std::fs::write(
        &stale,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.port,
            words.next().unwrap(),
            words.next().unwrap()
        ),
    )
    .unwrap();
    let changed = server_config(&sshd, &format!("known_hosts = \"{}\"", stale.display()));
    let err = SftpServer::new(&changed, base)
        .unwrap()
        .connect()
        .await
        .err()
        .unwrap();
    assert!(err.contains("differs from the one on line 1"), "{err}");

    // A known_hosts file without this host: unknown, refused.
    let empty = base.join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let unknown = server_config(&sshd, &format!("known_hosts = \"{}\"", empty.display()));
    let err = SftpServer::new(&unknown, base)
        .unwrap()
        .connect()
        .await
        .err()
        .unwrap();
    assert!(err.contains("is not the pinned one"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_password_is_reported_without_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let sshd = Sshd::start(&dir.path().join("sshd"));
    let secret = dir.path().join("password");
    std::fs::write(&secret, "surely-not-the-password-4711\n").unwrap();
    let config: SftpServerConfig = toml::from_str(&format!(
        "host = \"127.0.0.1\"\nport = {}\nusername = \"{}\"\npassword_file = \"password\"\nknown_hosts = \"{}\"",
        sshd.port,
        sshd.user,
        sshd.known_hosts.display()
    ))
    .unwrap();
    let server = SftpServer::new(&config, dir.path()).unwrap();
    assert!(!format!("{server:?}").contains("4711"));
    let err = server.connect().await.err().unwrap();
    assert!(err.contains("refused the login"), "{err}");
    assert!(!err.contains("4711"), "{err}");
}
