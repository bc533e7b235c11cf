//! What Corridor's tests need from outside the workspace: Python peers in
//! virtual environments, npm packages and a disk fault library, created under
//! the workspace's `target/` on first use and shared by every test binary.
//!
//! Test binaries run in parallel (and their tests in threads), so each
//! environment is made under an exclusive file lock: the first caller creates
//! it, the others wait and then find it ready. A half-made environment (a run
//! killed during `pip install`) is detected by its readiness probe and remade.

pub mod disk_fault;
pub mod fhir;
pub mod sshd;

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

/// The python of the virtual environment `target/py-venv-NAME`, with
/// `requirements` installed from PyPI. `probe` is Python code that succeeds
/// only when the environment is complete (for example
/// `import hl7; assert hl7.__version__ == ...`).
///
/// Panics, naming the step, when python3, venv or pip fail: a test that
/// needs a peer fails loudly rather than skipping.
pub fn python_venv(name: &str, requirements: &[&str], probe: &str) -> PathBuf {
    let venv = target().join(format!("py-venv-{name}"));
    let python = venv.join("bin/python");
    let ready = || succeeds(Command::new(&python).args(["-c", probe]));
    let _lock = Lock::take(&format!("py-venv-{name}"));
    if ready() {
        return python;
    }
    let status = Command::new("python3")
        .args(["-m", "venv", "--clear"])
        .arg(&venv)
        .status()
        .expect("python3 is needed for the tests that run Python peers");
    assert!(
        status.success(),
        "python3 -m venv {} failed",
        venv.display()
    );
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(requirements)
        .status()
        .unwrap_or_else(|e| panic!("{} cannot run: {e}", python.display()));
    assert!(
        status.success(),
        "pip install {} into {} failed",
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
pub fn npm_packages(name: &str, packages: &[&str], ready_file: &str) -> PathBuf {
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

/// Installs Debian's `chromium` and `chromium-driver` through
/// `scripts/browser-deps` when they are missing, under a lock: browser tests
/// run at once, and two `apt-get` runs together fail on apt's own lock.
pub fn browser_deps() {
    let _lock = Lock::take("browser-deps");
    let status = Command::new(workspace().join("scripts/browser-deps"))
        .status()
        .expect("scripts/browser-deps runs");
    assert!(
        status.success(),
        "scripts/browser-deps could not install chromium and chromium-driver"
    );
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
