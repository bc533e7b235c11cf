//! A real NATS server with JetStream for the NATS tests: Debian's `nats-server`
//! (installed by `scripts/nats-deps` when missing) run as the current user on a free
//! loopback port, its JetStream store in a folder the test owns, so it can be stopped
//! and started again on the same port with what it stored.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js`; killed when dropped.
pub struct NatsServer {
    child: Option<Child>,
    store: PathBuf,
    /// The loopback port it listens on.
    pub port: u16,
}

/// Starts a NATS server with JetStream on a free port, storing under `dir`.
pub fn nats_server(dir: &Path) -> NatsServer {
    NatsServer::start(dir)
}

fn binary() -> PathBuf {
    let debian = PathBuf::from("/usr/sbin/nats-server");
    if debian.exists() {
        return debian;
    }
    PathBuf::from("nats-server")
}

impl NatsServer {
    /// Installs the server if needed and starts it, storing under `dir`.
    pub fn start(dir: &Path) -> NatsServer {
        crate::apt_peer("nats");
        let store = dir.join("jetstream");
        std::fs::create_dir_all(&store).expect("the JetStream store folder");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = NatsServer {
            child: None,
            store,
            port,
        };
        server.resume();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and store after [`NatsServer::stop`].
    pub fn resume(&mut self) {
        let child = Command::new(binary())
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .arg("-sd")
            .arg(&self.store)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 4];
                if stream.read_exact(&mut banner).is_ok() && &banner == b"INFO" {
                    return;
                }
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("nats-server exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not answer on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGTERM: it closes its clients' connections and flushes its
    /// store, as in a restart for maintenance; SIGKILL after 10 seconds); the port is
    /// free until [`NatsServer::resume`].
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
