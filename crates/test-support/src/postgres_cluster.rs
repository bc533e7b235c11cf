//! A PostgreSQL cluster of a test's own, for what the shared local server cannot show
//! (TLS, a `pg_hba.conf` of the test's choosing): Debian's `initdb` and `postgres` run
//! on a loopback port with the data under a folder the test owns, as the `postgres`
//! account when the tests run as root (PostgreSQL refuses to run as root). Stopped
//! (`pg_ctl stop -m immediate`) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running cluster; stopped when dropped.
pub struct PostgresCluster {
    data: PathBuf,
    bin: PathBuf,
    as_postgres: bool,
    child: Option<Child>,
    /// The loopback port it listens on.
    pub port: u16,
    /// The folder of its Unix socket (for `psql -h`).
    pub socket_dir: PathBuf,
}

/// The newest `/usr/lib/postgresql/N/bin` (Debian's server packages).
fn bin_dir() -> PathBuf {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL's server (Debian's postgresql package) is needed for this test")
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| bin.join("initdb").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, bin)| bin)
        .expect("no /usr/lib/postgresql/N/bin/initdb: install Debian's postgresql package")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

fn owner_ids() -> (u32, u32) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("id runs");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("the postgres account exists (Debian's postgresql package makes it)")
    };
    (id("-u"), id("-g"))
}

impl PostgresCluster {
    /// Makes a cluster under `dir` (trust authentication for user `postgres`), writes
    /// `files` (name, contents) into its data folder readable by the server only, puts
    /// `hba` in place of `pg_hba.conf` when given, and starts the server with `settings`
    /// (`-c name=value`). Waits until it accepts connections.
    pub fn start(
        dir: &Path,
        settings: &[(&str, &str)],
        files: &[(&str, &str)],
        hba: Option<&str>,
    ) -> PostgresCluster {
        use std::os::unix::fs::PermissionsExt;
        let bin = bin_dir();
        let as_postgres = is_root();
        let root = dir.join("postgres");
        let data = root.join("data");
        std::fs::create_dir_all(&root).expect("cluster folder");
        if as_postgres {
            // The server's account walks to its folder through the test's.
            let mut walk = Some(root.as_path());
            while let Some(folder) = walk {
                if let Ok(meta) = std::fs::metadata(folder) {
                    let mode = meta.permissions().mode() | 0o711;
                    let _ = std::fs::set_permissions(folder, std::fs::Permissions::from_mode(mode));
                }
                walk = folder.parent();
            }
            let (uid, gid) = owner_ids();
            std::os::unix::fs::chown(&root, Some(uid), Some(gid))
                .expect("chown the cluster folder");
        }
        let mut cluster = PostgresCluster {
            data: data.clone(),
            bin,
            as_postgres,
            child: None,
            port: 0,
            socket_dir: root.clone(),
        };
        cluster.run(
            &["initdb", "-D"],
            &[&data],
            &["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        );
        for (name, contents) in files {
            let path = data.join(name);
            std::fs::write(&path, contents).expect("a cluster file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                .expect("chmod a cluster file");
            if as_postgres {
                let (uid, gid) = owner_ids();
                std::os::unix::fs::chown(&path, Some(uid), Some(gid))
                    .expect("chown a cluster file");
            }
        }
        if let Some(hba) = hba {
            std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        }
        cluster.port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut command = cluster.command("postgres");
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &cluster.port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", root.display()))
            .args(["-c", "fsync=off"]);
        for (name, value) in settings {
            command.arg("-c").arg(format!("{name}={value}"));
        }
        let log_path = root.join("postgres.log");
        let log = std::fs::File::create(&log_path).expect("the server's log file");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("postgres starts");
        let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
        cluster.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new("pg_isready")
                .arg("-h")
                .arg(&root)
                .args(["-p", &cluster.port.to_string(), "-q"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return cluster;
            }
            if let Some(child) = cluster.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("postgres stopped at start ({status}): {}", log());
            }
            assert!(
                Instant::now() < deadline,
                "the scratch PostgreSQL did not answer on port {}: {}",
                cluster.port,
                log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `sql` with `psql` over the Unix socket (no TLS) and returns its output, as
    /// [`crate::psql`] does.
    pub fn psql(&self, sql: &str) -> String {
        crate::psql(
            &format!(
                "postgresql://postgres@/postgres?host={}&port={}",
                self.socket_dir.display(),
                self.port
            ),
            sql,
        )
    }

    /// A command for one of the server's programs, as the `postgres` account when root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        }
    }

    fn run(&self, program_and_args: &[&str], paths: &[&Path], rest: &[&str]) {
        let (program, args) = program_and_args.split_first().expect("a program");
        let output = self
            .command(program)
            .args(args)
            .args(paths)
            .args(rest)
            .output()
            .expect("the PostgreSQL program runs");
        assert!(
            output.status.success(),
            "{program} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PostgresCluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
