//! Disk faults injected under a real process: `disk_fault.c`, built into a
//! shared library with the system's C compiler and loaded with `LD_PRELOAD`,
//! makes the process's fsync/fdatasync or writes on one file fail with EIO
//! (or its writes with ENOSPC) while a flag file says so. The process runs its own unchanged code down to
//! libc; only the answer of the file operation changes, as on a failing disk.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{Lock, target};

const SOURCE: &str = include_str!("disk_fault.c");

/// The shared library, compiled once per change of its source.
pub fn library() -> PathBuf {
    let dir = target().join("disk-fault");
    let source = dir.join("disk_fault.c");
    let library = dir.join("libdiskfault.so");
    let _lock = Lock::take("disk-fault");
    let current = std::fs::read_to_string(&source).is_ok_and(|s| s == SOURCE);
    if current && library.exists() {
        return library;
    }
    std::fs::create_dir_all(&dir).expect("cannot create target/disk-fault");
    std::fs::write(&source, SOURCE).expect("cannot write target/disk-fault/disk_fault.c");
    let output = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1", "-Wall", "-o"])
        .arg(&library)
        .arg(&source)
        .arg("-ldl")
        .output()
        .expect("a C compiler (cc) is needed to build the disk fault library");
    assert!(
        output.status.success(),
        "cc failed to build {}: {}",
        library.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    library
}

/// What makes one process's disk fail: the flag file, its log and the file it targets.
pub struct DiskFault {
    flag: PathBuf,
    log: PathBuf,
    suffix: String,
}

impl DiskFault {
    /// Faults on files whose path ends with `suffix`, controlled from files in `dir`.
    pub fn new(dir: &Path, suffix: &str) -> DiskFault {
        DiskFault {
            flag: dir.join("disk-fault.flag"),
            log: dir.join("disk-fault.log"),
            suffix: suffix.to_owned(),
        }
    }

    /// The environment a process needs to be subject to these faults.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("LD_PRELOAD", library().into_os_string()),
            ("DISK_FAULT_FLAG", self.flag.clone().into_os_string()),
            ("DISK_FAULT_SUFFIX", OsString::from(&self.suffix)),
            ("DISK_FAULT_LOG", self.log.clone().into_os_string()),
        ]
    }

    /// From now on every fsync and fdatasync of the file fails.
    pub fn fail_syncs(&self) {
        self.set("sync");
    }

    /// From now on every write to the file fails.
    pub fn fail_writes(&self) {
        self.set("write");
    }

    /// From now on every write to the file fails as on a full disk (ENOSPC).
    pub fn fill_disk(&self) {
        self.set("full");
    }

    /// The disk works again.
    pub fn clear(&self) {
        match std::fs::remove_file(&self.flag) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("cannot remove {}: {e}", self.flag.display()),
        }
    }

    /// The calls made to fail so far, by name (`fdatasync`, `pwrite64`, ...).
    pub fn injected(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    fn set(&self, kinds: &str) {
        // Written whole then renamed: the library never reads a half-written flag.
        let partial = self.flag.with_extension("partial");
        std::fs::write(&partial, kinds).expect("cannot write the disk fault flag");
        std::fs::rename(&partial, &self.flag).expect("cannot set the disk fault flag");
    }
}
