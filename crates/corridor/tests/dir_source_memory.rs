//! `corridor run` with a directory source, as a process: a 200 MB junk file dropped in
//! its folder goes to `error` with a report while the process's peak memory stays far
//! below the file's size (the file is read in bounded pieces, never whole).

use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The junk: one MSH line, then lines of letters that never start another message, so
/// a reader that splits messages as they stream sees one message that never ends.
fn write_junk(path: &Path, size: usize) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    out.write_all(b"MSH|^~\\&|JUNK|JUNK|EHR|HOSP|20260101||ADT^A01|J1|P|2.5.1\r")
        .unwrap();
    let mut line = [b'a'; 100];
    let mut state: u32 = 12345;
    let mut written = 0;
    while written < size {
        for byte in line.iter_mut().take(99) {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *byte = b'a' + (state >> 16) as u8 % 26;
        }
        line[99] = b'\n';
        out.write_all(&line).unwrap();
        written += line.len();
    }
    out.flush().unwrap();
}

/// The peak resident memory of process `pid` in bytes (`VmHWM`).
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[test]
fn a_200_mb_junk_file_goes_to_error_without_being_held_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let inbox = dir.path().join("in");
    std::fs::create_dir_all(&inbox).unwrap();
    write_junk(&inbox.join("junk.hl7"), 200 << 20);
    let config = dir.path().join("corridor.toml");
    std::fs::write(
        &config,
        format!(
            "[data]\ndir = {:?}\n[http]\nenabled = false\n[channels.files]\n\
             source = {{ type = \"directory\", path = {:?}, poll_interval = \"100ms\" }}\n",
            dir.path().join("data").display().to_string(),
            inbox.display().to_string()
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["run", "--config", config.to_str().unwrap()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || for _ in BufReader::new(stderr).lines() {});

    let report = inbox.join("error/junk.hl7.error.txt");
    let moved = inbox.join("error/junk.hl7");
    let deadline = Instant::now() + Duration::from_secs(120);
    // The report is written first, then the file moved beside it.
    while !(report.exists() && moved.exists()) {
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            panic!("the junk file was not moved to error");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let peak = peak_memory(child.id());
    child.kill().unwrap();
    child.wait().unwrap();

    let text = std::fs::read_to_string(&report).unwrap();
    assert!(
        text.contains("junk.hl7: message 1 (line 1) is larger than max_frame_size (16777216 bytes); nothing was stored"),
        "{text}"
    );
    assert!(!inbox.join("junk.hl7").exists());
    // Generous: the engine itself, the database's cache and one message's worth of the
    // file, against 200 MB for the file alone.
    assert!(
        peak < 200 << 20,
        "peak memory {} MiB for a 200 MiB file",
        peak >> 20
    );
    eprintln!("peak memory (VmHWM) of corridor run: {} MiB", peak >> 20);
}
