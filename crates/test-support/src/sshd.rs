//! A real OpenSSH server for the SFTP tests: Debian's `sshd` (installed by
//! `scripts/sshd-deps` when missing) run as the current user on a loopback port, with
//! its own configuration, host key and `authorized_keys` in a folder the test owns, and
//! the SFTP subsystem served in process (`internal-sftp`).

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `sshd`; killed when dropped.
pub struct Sshd {
    child: Option<Child>,
    config: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
    /// The account to log in as (the current user).
    pub user: String,
    /// The private key `authorized_keys` accepts (OpenSSH format, no passphrase).
    pub client_key: PathBuf,
    /// A `known_hosts` file holding the server's key for `[127.0.0.1]:PORT`.
    pub known_hosts: PathBuf,
    /// The server key's fingerprint, `SHA256:...`.
    pub fingerprint: String,
}

fn run(command: &mut Command) -> String {
    let output = command.output().expect("the command runs");
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl Sshd {
    /// Makes keys and a configuration under `dir` and starts the server.
    pub fn start(dir: &Path) -> Sshd {
        crate::apt_peer("sshd");
        std::fs::create_dir_all(dir).expect("sshd folder");
        // Run as root, sshd wants its privilege separation folder.
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_key = dir.join("host_key");
        let client_key = dir.join("client_key");
        for key in [&host_key, &client_key] {
            if !key.exists() {
                run(Command::new("ssh-keygen")
                    .args(["-q", "-t", "ed25519", "-N", "", "-C", "corridor-test", "-f"])
                    .arg(key));
            }
        }
        let authorized = dir.join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &authorized).expect("authorized_keys");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let config = dir.join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile {}\n\
                 AuthorizedKeysFile {}\nPubkeyAuthentication yes\nPasswordAuthentication yes\n\
                 KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nPermitRootLogin yes\n\
                 Subsystem sftp internal-sftp\nLogLevel ERROR\n",
                host_key.display(),
                dir.join("sshd.pid").display(),
                authorized.display(),
            ),
        )
        .expect("sshd_config");
        let public = std::fs::read_to_string(host_key.with_extension("pub")).expect("host key");
        let mut words = public.split_whitespace();
        let (kind, body) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let known_hosts = dir.join("known_hosts");
        std::fs::write(&known_hosts, format!("[127.0.0.1]:{port} {kind} {body}\n"))
            .expect("known_hosts");
        let listed = run(Command::new("ssh-keygen")
            .arg("-lf")
            .arg(host_key.with_extension("pub")));
        let fingerprint = listed
            .split_whitespace()
            .nth(1)
            .expect("a fingerprint")
            .to_owned();
        let user = run(Command::new("id").arg("-un")).trim().to_owned();
        let mut sshd = Sshd {
            child: None,
            config,
            port,
            user,
            client_key,
            known_hosts,
            fingerprint,
        };
        sshd.resume();
        sshd
    }

    /// Starts the server again on the same port after [`Sshd::stop`].
    pub fn resume(&mut self) {
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&self.config)
            .stdin(Stdio::null())
            .spawn()
            .expect("sshd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"SSH-" {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server and every session it serves (the port is free until
    /// [`Sshd::resume`]).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Each session is a process of its own session id (sshd calls setsid), so
            // its descendants are found by parent, then killed with it.
            let mut tree = vec![child.id()];
            let mut i = 0;
            while i < tree.len() {
                tree.extend(children_of(tree[i]));
                i += 1;
            }
            for pid in tree.iter().skip(1) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stderr(Stdio::null())
                    .status();
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `server = { ... }` keys for Corridor: this server, logging in with the client key,
    /// its host key pinned by `known_hosts`.
    pub fn server_toml(&self) -> String {
        format!(
            "{{ host = \"127.0.0.1\", port = {}, username = \"{}\", private_key = \"{}\", known_hosts = \"{}\" }}",
            self.port,
            self.user,
            self.client_key.display(),
            self.known_hosts.display()
        )
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The processes whose parent is `pid` (from `/proc/*/stat`).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| {
            let e = e.ok()?;
            let child: u32 = e.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            // `pid (name) state ppid ...`: the name may hold spaces, so read after ')'.
            let after = &stat[stat.rfind(')')? + 1..];
            let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}
