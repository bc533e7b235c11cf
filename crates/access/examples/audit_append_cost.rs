//! What one audit record costs the request that writes it, for counting instructions
//! and system calls (timings on a shared machine mean nothing):
//!
//! ```sh
//! cargo build -p access --example audit_append_cost
//! valgrind --tool=callgrind --separate-threads=yes target/debug/examples/audit_append_cost file 2000
//! valgrind --tool=callgrind --separate-threads=yes target/debug/examples/audit_append_cost store 2000
//! strace -f -c target/debug/examples/audit_append_cost file 2000
//! ```
//!
//! For counts near the shipped binary's, the release build (`cargo build --release -p
//! access --example audit_append_cost`): in `file` mode callgrind's main thread
//! (`-01`) holds the appends (`Appender::append`), the store's writer thread (`-03`)
//! the folds (`fold_batch`); BENCHMARKS.md has the counts.
//!
//! `file` appends N records the way a PHI read does (one line of the audit file,
//! folded behind); `store` appends them as when another process holds the audit file:
//! each committed through the store's writer thread before it is answered (the path a
//! read took before the audit file). Both wait for each append before the next, as a
//! request does, and end with every record in `audit_log`.

use access::audit::{ActionKind, Audit, AuditRecord, Outcome};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "file".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = store::Store::open(dir.path()).expect("the store");
    // Held as another process would hold it: this process then commits each record.
    let _held = (mode == "store").then(|| {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(access::audit::file_of(store.path()))
            .expect("the audit file");
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
            .expect("its lock");
        file
    });
    let audit = Audit::open_blocking(store).expect("the audit trail");
    for i in 0..count {
        let record = AuditRecord::cli("GET /api/messages/{id}", ActionKind::Read, "x")
            .resource(format!("/api/messages/{i}"))
            .patients([format!("Patient/p{i}")]);
        let mut record = record;
        record.outcome = Outcome::Success;
        audit.append(record).wait().expect("appended");
    }
    audit.fold().expect("folded");
    let verification = audit.verify().expect("verified");
    assert_eq!(verification.broken, None);
    assert_eq!(verification.records, count as u64);
    println!("{mode}: {count} records appended and folded");
}
