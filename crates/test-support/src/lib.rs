//! What Corridor's tests need from outside the workspace: Python peers in
//! virtual environments, npm packages, Debian packages and a disk fault library,
//! created under the workspace's `target/` on first use and shared by every test
//! binary. The peers are listed once, in `tests/peers.txt`; `scripts/test-peers`
//! makes them ahead of time from the same list and under the same locks.
//!
//! Test binaries run in parallel (and their tests in threads), so each
//! environment is made under an exclusive file lock: the first caller creates
//! it, the others wait and then find it ready. A half-made environment (a run
//! killed during `pip install`) is detected by its readiness probe and remade.

pub mod disk_fault;
pub mod fhir;
pub mod nats;
pub mod postgres_cluster;
pub mod sshd;

pub use nats::{NatsServer, nats_server};

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root.
pub fn workspace() -> PathBuf {
    // Lexical parent of parent: python's venv records the path as given.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/test-support sits two levels below the workspace")
        .to_owned()
}

/// The directory environments live in: `<workspace>/target`.
pub fn target() -> PathBuf {
    let dir = workspace().join("target");
    std::fs::create_dir_all(&dir).expect("cannot create target/");
    dir
}

/// Holds an exclusive lock on `target/NAME.lock` while alive.
struct Lock(File);

impl Lock {
    fn take(name: &str) -> Lock {
        let path = target().join(format!("{name}.lock"));
        let file =
            File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        file.lock()
            .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
        Lock(file)
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn succeeds(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The peers' list, `tests/peers.txt`.
const PEERS: &str = include_str!("../../../tests/peers.txt");

/// The fields of the line `KIND NAME | ...` of [`PEERS`], after the name.
fn peer(kind: &str, name: &str) -> Vec<&'static str> {
    PEERS
        .lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| {
            let mut fields = line.split(" | ");
            let head = fields.next()?;
            (head.split_whitespace().collect::<Vec<_>>() == [kind, name])
                .then(|| fields.map(str::trim).collect())
        })
        .unwrap_or_else(|| panic!("tests/peers.txt lists no `{kind} {name}`"))
}

/// The python of the virtual environment `target/py-venv-NAME` of the
/// `python NAME` line of `tests/peers.txt`, made on first use.
///
/// Panics, naming the step, when python3, venv or pip fail: a test that
/// needs a peer fails loudly rather than skipping.
pub fn python_peer(name: &str) -> PathBuf {
    let fields = peer("python", name);
    let [requirements, probe] = fields[..] else {
        panic!("tests/peers.txt: `python {name}` needs `| REQUIREMENTS | PROBE`");
    };
    let requirements: Vec<&str> = requirements.split_whitespace().collect();
    python_venv(name, &requirements, probe)
}

/// The `node_modules` directory of `target/npm-NAME` of the `npm NAME` line of
/// `tests/peers.txt`, installed on first use.
pub fn npm_peer(name: &str) -> PathBuf {
    let fields = peer("npm", name);
    let [packages, ready_file] = fields[..] else {
        panic!("tests/peers.txt: `npm {name}` needs `| PACKAGES | READY_FILE`");
    };
    let packages: Vec<&str> = packages.split_whitespace().collect();
    npm_packages(name, &packages, ready_file)
}

/// Installs the Debian packages of the `apt NAME` line of `tests/peers.txt`
/// through its script when they are missing, under one lock for every such
/// script: two `apt-get` runs at once fail on apt's own lock.
pub fn apt_peer(name: &str) {
    let fields = peer("apt", name);
    let [script] = fields[..] else {
        panic!("tests/peers.txt: `apt {name}` needs `| SCRIPT`");
    };
    let _lock = Lock::take("apt");
    let path = workspace().join("scripts").join(script);
    let status = Command::new("bash")
        .arg(&path)
        .status()
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", path.display()));
    assert!(
        status.success(),
        "{} could not install what the `{name}` tests need",
        path.display()
    );
}

/// The python of the virtual environment `target/py-venv-NAME`, with
/// `requirements` installed from PyPI. `probe` is Python code that succeeds
/// only when the environment is complete (for example
/// `import hl7; assert hl7.__version__ == ...`).
fn python_venv(name: &str, requirements: &[&str], probe: &str) -> PathBuf {
    let venv = target().join(format!("py-venv-{name}"));
    let python = venv.join("bin/python");
    let ready = || succeeds(Command::new(&python).args(["-c", probe]));
    let _lock = Lock::take(&format!("py-venv-{name}"));
    if ready() {
        return python;
    }
    // Without pip of its own (ensurepip takes minutes on a busy machine): the base
    // interpreter's pip installs into it (`--python`, pip 22.3 and later).
    let status = Command::new("python3")
        .args(["-m", "venv", "--clear", "--without-pip"])
        .arg(&venv)
        .status()
        .expect("python3 is needed for the tests that run Python peers");
    assert!(
        status.success(),
        "python3 -m venv {} failed",
        venv.display()
    );
    let status = Command::new("python3")
        .args(["-m", "pip", "--python"])
        .arg(&python)
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(requirements)
        .status()
        .unwrap_or_else(|e| panic!("python3 -m pip cannot run: {e}"));
    assert!(
        status.success(),
        "pip install {} into {} failed (python3's pip must be 22.3 or later)",
        requirements.join(" "),
        venv.display()
    );
    assert!(
        ready(),
        "{} has {} installed but fails its probe: {probe}",
        venv.display(),
        requirements.join(" ")
    );
    python
}

/// The `node_modules` directory of `target/npm-NAME`, with `packages`
/// installed from the npm registry. `ready_file` is a path under
/// `node_modules` that exists only once the install finished.
fn npm_packages(name: &str, packages: &[&str], ready_file: &str) -> PathBuf {
    let dir = target().join(format!("npm-{name}"));
    let modules = dir.join("node_modules");
    let _lock = Lock::take(&format!("npm-{name}"));
    if modules.join(ready_file).exists() {
        return modules;
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    let status = Command::new("npm")
        .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
        .arg(&dir)
        .args(packages)
        .status()
        .expect("npm is needed for the tests that run Node.js peers");
    assert!(
        status.success(),
        "npm install {} into {} failed",
        packages.join(" "),
        dir.display()
    );
    assert!(
        modules.join(ready_file).exists(),
        "npm install {} left no {ready_file}",
        packages.join(" ")
    );
    modules
}

/// Raises this process's soft limit on open files (up to 4,096, within the hard
/// limit), which the processes it starts inherit, so a test can hold `needed`
/// descriptors where the common soft limit of 1,024 would stop it. Panics,
/// saying how to fix it, when the hard limit is lower than `needed`.
pub fn raise_open_file_limit(needed: u64) {
    let (soft, hard) = rlimit::Resource::NOFILE
        .get()
        .expect("cannot read the open-file limit (RLIMIT_NOFILE)");
    assert!(
        hard >= needed,
        "this test holds about {needed} open files, but the hard open-file limit is {hard}; \
         raise it (ulimit -Hn, or LimitNOFILE= for a service) and run again"
    );
    // Not the hard limit itself: it may be unlimited, which no soft limit can be.
    let wanted = hard.min(needed.max(4096));
    if soft < wanted {
        rlimit::Resource::NOFILE
            .set(wanted, hard)
            .unwrap_or_else(|e| {
                panic!("cannot raise the open-file limit from {soft} to {wanted}: {e}")
            });
    }
}

/// Makes sure PostgreSQL (127.0.0.1:5432, user postgres, trust) and MariaDB
/// (127.0.0.1:3306, root, no password) answer, running `scripts/database-services`
/// (which starts them from Debian's packages) when either does not. Panics naming
/// the server that still does not answer: a database test fails rather than skips.
pub fn database_services() {
    let answers = |port: u16| {
        std::net::TcpStream::connect_timeout(
            &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            std::time::Duration::from_secs(2),
        )
        .is_ok()
    };
    if answers(5432) && answers(3306) {
        return;
    }
    let _lock = Lock::take("database-services");
    if !(answers(5432) && answers(3306)) {
        let script = workspace().join("scripts/database-services");
        let status = Command::new(&script)
            .status()
            .unwrap_or_else(|e| panic!("{} cannot run: {e}", script.display()));
        assert!(status.success(), "{} failed", script.display());
    }
    assert!(
        answers(5432),
        "PostgreSQL does not answer on 127.0.0.1:5432"
    );
    assert!(answers(3306), "MariaDB does not answer on 127.0.0.1:3306");
}

/// Runs `sql` in the PostgreSQL database `url` with `psql` (Debian's postgresql-client)
/// and returns its output: rows one a line, columns separated by commas, no header.
/// Panics with psql's error when it fails.
pub fn psql(url: &str, sql: &str) -> String {
    let output = Command::new("psql")
        .args(["-qtA", "-F", ",", url, "-c", sql])
        .output()
        .expect("psql (Debian's postgresql-client) is needed for this test");
    assert!(
        output.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// A PostgreSQL database of the local server made for one test (`PREFIX_PID_SEED`),
/// dropped when the test ends, failed or not.
pub struct ScratchDatabase {
    name: String,
    /// Its URL, as user `postgres`.
    pub url: String,
}

/// The local server's maintenance database, where databases are made and dropped.
const POSTGRES_ADMIN: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl ScratchDatabase {
    /// Creates the database (the server must answer: see [`database_services`]).
    pub fn create(prefix: &str, seed: u64) -> ScratchDatabase {
        let name = format!("{prefix}_{}_{seed}", std::process::id());
        psql(POSTGRES_ADMIN, &format!("create database {name}"));
        let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
        ScratchDatabase { name, url }
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        // Not `psql`: a failed drop must not panic while a failed test unwinds.
        let _ = Command::new("psql")
            .args(["-qtA", POSTGRES_ADMIN, "-c"])
            .arg(format!(
                "drop database if exists {} with (force)",
                self.name
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The seed of a crash test: `CORRIDOR_CRASH_SEED` when set (to repeat a run), else
/// taken from the clock; printed with `what` so a failing run can be repeated.
pub fn crash_seed(what: &str) -> u64 {
    let seed = std::env::var("CORRIDOR_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_millis()))
        });
    eprintln!("{what} crash seed {seed}");
    seed
}
