//! `corridor db check` and `corridor run` with `[data] check_at_start`, run as processes
//! against a real `corridor.db` holding many messages, sound and then damaged in the
//! middle (pages overwritten with junk, as a bad disk sector or a stray write leaves
//! them).

use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use store::Store;
use store::rusqlite::Connection;

fn corridor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A data directory whose database holds `count` messages of about 600 bytes, with the
/// WAL copied into the file so every row lives in `corridor.db` itself.
fn database_with_messages(dir: &Path, count: usize) {
    let store = Store::open(dir).unwrap();
    store
        .write_blocking(move |conn| {
            let mut journal = conn.prepare(
                "INSERT INTO journal (channel, received_at, stored_at, peer, sending_application,
                     sending_facility, message_type, control_id, version, state, state_changed_at, size)
                 VALUES ('lab', ?1, ?1, 'test', 'LAB', 'NORTH', 'ORU^R01', ?2, '2.5.1', 'received', ?1, ?3)",
            )?;
            let mut raw = conn.prepare("INSERT INTO journal_raw (id, raw) VALUES (?1, ?2)")?;
            for i in 0..count {
                let message = format!(
                    "MSH|^~\\&|LAB|NORTH|EHR|NORTH|20260101||ORU^R01|C{i}|P|2.5.1\rOBX|1|ST|NOTE||{}\r",
                    "x".repeat(500)
                );
                journal.execute((i as i64, format!("C{i}"), message.len() as i64))?;
                raw.execute((conn.last_insert_rowid(), message.as_bytes()))?;
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    let conn = Connection::open(dir.join(Store::DATABASE_FILE)).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
}

/// Overwrites eight pages in the middle of the database file with junk.
fn damage_the_middle(dir: &Path) {
    let path = dir.join(Store::DATABASE_FILE);
    let length = std::fs::metadata(&path).unwrap().len();
    let page = 4096;
    let middle = (length / 2) / page * page;
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.seek(SeekFrom::Start(middle)).unwrap();
    let junk: Vec<u8> = (0..8 * page).map(|i| (i * 7 + 13) as u8).collect();
    file.write_all(&junk).unwrap();
    file.sync_all().unwrap();
}

/// A configuration with one MLLP channel on a free port, no HTTP, data in `data`.
fn config(dir: &Path, data: &Path, check: &str) -> String {
    let path = dir.join(format!("corridor-{check}.toml"));
    std::fs::write(
        &path,
        format!(
            "[data]\ndir = {:?}\ncheck_at_start = {check:?}\n[http]\nenabled = false\n\
             [channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n",
            data.display().to_string()
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn db_check_passes_a_sound_database_and_names_the_damage_in_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    database_with_messages(&data, 20_000);
    let data_arg = data.to_str().unwrap();

    let sound = corridor(&["db", "check", "--data", data_arg]);
    assert_eq!(sound.status.code(), Some(0), "{}", text(&sound.stderr));
    assert!(text(&sound.stdout).ends_with("corridor.db: ok\n"));

    damage_the_middle(&data);
    for extra in [&[][..], &["--quick"][..]] {
        let mut args = vec!["db", "check", "--data", data_arg];
        args.extend_from_slice(extra);
        let damaged = corridor(&args);
        let stderr = text(&damaged.stderr);
        assert_eq!(damaged.status.code(), Some(1), "{extra:?}: {stderr}");
        assert!(
            stderr.contains("corridor.db: the database is damaged:"),
            "{stderr}"
        );
        // SQLite's own words name the damaged pages.
        assert!(
            stderr.to_lowercase().contains("page "),
            "{extra:?}: {stderr}"
        );
        assert!(stderr.contains(".recover"), "{stderr}");
    }

    // The same through a configuration file's [data] dir.
    let with_config = corridor(&["db", "check", "--config", &config(dir.path(), &data, "off")]);
    assert_eq!(with_config.status.code(), Some(1));
}

#[test]
fn db_check_of_a_directory_without_a_database_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = corridor(&["db", "check", "--data", dir.path().to_str().unwrap()]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no database here"));
    assert!(
        !dir.path().join("corridor.db").exists(),
        "nothing is created"
    );
}

#[test]
fn run_with_check_at_start_refuses_a_damaged_database_and_starts_on_a_sound_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    database_with_messages(&data, 20_000);

    // Sound: the check passes and the engine listens (stopped once it says so).
    let mut sound = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["run", "--config", &config(dir.path(), &data, "full")])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut log = std::io::BufReader::new(sound.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("corridor is listening") {
        let before = seen.len();
        std::io::BufRead::read_line(&mut log, &mut seen).unwrap();
        assert!(seen.len() > before, "corridor stopped: {seen}");
    }
    assert!(seen.contains("database check passed"), "{seen}");
    sound.kill().unwrap();
    sound.wait().unwrap();

    damage_the_middle(&data);
    for check in ["quick", "full"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
            .args(["run", "--config", &config(dir.path(), &data, check)])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("corridor run started on a damaged database ({check})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{check}: {stderr}");
        assert!(stderr.contains("the database is damaged"), "{stderr}");
        assert!(
            stderr.contains("the database failed its check at start; nothing was started"),
            "{stderr}"
        );
        assert!(!stderr.contains("corridor is listening"), "{stderr}");
    }
}

/// `corridor ARGS` run from `cwd`.
fn corridor_in(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn data_dir_in_a_file_is_relative_to_the_file_from_any_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("conf");
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    database_with_messages(&conf.join("data"), 10);
    std::fs::write(
        conf.join("corridor.toml"),
        "[data]\ndir = \"data\"\n[http]\nenabled = false\n\
         [channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n",
    )
    .unwrap();

    for (cwd, file) in [
        (dir.path(), "conf/corridor.toml"),
        (elsewhere.as_path(), "../conf/corridor.toml"),
        (conf.as_path(), "corridor.toml"),
    ] {
        let checked = corridor_in(cwd, &["db", "check", "--config", file]);
        assert_eq!(
            checked.status.code(),
            Some(0),
            "from {}: {}",
            cwd.display(),
            text(&checked.stderr)
        );
        let stdout = text(&checked.stdout);
        assert!(stdout.ends_with("data/corridor.db: ok\n"), "{stdout}");
    }
    // No other database was made beside the working directories.
    assert!(!dir.path().join("data").exists());
    assert!(!elsewhere.join("data").exists());

    // `--data` on the command line stays relative to the working directory.
    let by_flag = corridor_in(&conf, &["db", "check", "--data", "data"]);
    assert_eq!(by_flag.status.code(), Some(0), "{}", text(&by_flag.stderr));
    let missing = corridor_in(&elsewhere, &["db", "check", "--data", "data"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no database here"));
}
