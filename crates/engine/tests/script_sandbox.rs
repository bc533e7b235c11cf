//! The script sandbox through a running engine, as issue 19 found its holes: real MLLP
//! senders, channels with scripts, file destinations, the journal read back.
//!
//! - one channel's script cannot change what another channel's script sees, nor can a
//!   script's changes reach its own next message;
//! - a regular expression that backtracks for minutes ends `errored` at the time limit,
//!   the channel goes on, shutdown does not wait, and a restart does not run it again;
//! - the message a script builds is bounded, by the script's memory limit and by the
//!   channel's `max_message_size`;
//! - limits out of range are refused by the configuration check, naming the key.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Api, rows, send_all, start_engine, wait_for};
use engine::{Config, Engine};
use store::Store;

/// An ADT^A08 with control id `control` and patient name `family^given`.
fn adt(control: &str, family: &str, given: &str) -> Vec<u8> {
    format!(
        "MSH|^~\\&|ADT|HOSP|EHR|HOSP|20240101120000||ADT^A08^ADT_A01|{control}|P|2.5.1\r\
         EVN|A08|20240101120000\r\
         PID|1||P1^^^HOSP^MR||{family}^{given}\r"
    )
    .into_bytes()
}

/// Each message's control id, state and reason, in journal order.
fn journal(store: &Store) -> Vec<(String, String, Option<String>)> {
    rows(
        store,
        "SELECT control_id, state, state_reason FROM journal ORDER BY id",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
}

/// The state and reason of the message with `control`.
fn state_of(store: &Store, control: &str) -> Option<(String, Option<String>)> {
    journal(store)
        .into_iter()
        .find(|(c, _, _)| c == control)
        .map(|(_, state, reason)| (state, reason))
}

/// Waits until the message with `control` has left `received`; returns its state and
/// reason.
async fn finished(store: &Store, control: &str, limit: Duration) -> (String, Option<String>) {
    wait_for(&format!("{control} to be processed"), limit, || {
        state_of(store, control).is_some_and(|(state, _)| state != "received")
    })
    .await;
    state_of(store, control).unwrap()
}

/// The messages a file destination wrote to `dir`, parsed.
fn written(dir: &Path) -> Vec<hl7v2::OwnedMessage> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    // The destination writes `.NAME.partial`, then renames it into place.
    entries
        .map(|e| e.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "hl7"))
        .map(|path| hl7v2::OwnedMessage::parse(&std::fs::read(path).unwrap()).unwrap())
        .collect()
}

fn get(m: &hl7v2::OwnedMessage, path: &str) -> String {
    m.get_text(&path.parse().unwrap()).unwrap_or_default()
}

/// Stops `engine`, failing the test if that takes longer than a generous bound.
async fn stop(engine: Engine) {
    tokio::time::timeout(Duration::from_secs(30), engine.shutdown())
        .await
        .expect("the engine did not shut down within 30 s");
}

const TAMPERING: &str = r#"
Object.prototype.injected = "yes";
String.prototype.toUpperCase = function () { return "TAMPERED"; };
globalThis.leaked = "yes";
const realSet = msg.set;
msg.set = function (path, value) { realSet("PID-5.1", "TAMPERED"); realSet(path, value); };
if (globalThis.__corridor_steps) {
    globalThis.__corridor_steps = new Proxy(globalThis.__corridor_steps, {
        get: () => function (m) { m.set("PID-5.1", "TAMPERED"); },
    });
}
"#;

const HONEST: &str = r#"
const seen = [];
if ({}.injected !== undefined) seen.push("prototype");
if (typeof leaked !== "undefined") seen.push("global");
if ("a".toUpperCase() !== "A") seen.push("string");
globalThis.runs = (globalThis.runs || 0) + 1;
msg.set("MSH-8", seen.join("+") || "clean");
msg.set("PID-5.2", msg.get("PID-5.2").toUpperCase());
msg.set("EVN-5", String(runs));
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_channels_script_cannot_change_what_another_channels_script_sees() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[channels.tamper]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
transforms = [ {{ script = '''{TAMPERING}''' }} ]
[[channels.tamper.destinations]]
name = "out"
type = "file"
path = "out-tamper"
file_name = "{{message_id}}.hl7"

[channels.honest]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
transforms = [ {{ script = '''{HONEST}''' }} ]
[[channels.honest.destinations]]
name = "out"
type = "file"
path = "out-honest"
file_name = "{{message_id}}.hl7"
"#
    );
    let engine = start_engine(dir.path(), "data", Api::Off, &toml).await;
    let address = |channel: &str| {
        engine
            .listeners()
            .iter()
            .find(|l| l.channel == channel)
            .unwrap()
            .addr
    };
    let (tamper, honest) = (address("tamper"), address("honest"));
    // Rounds of tampering, then honest messages, so the two channels' runs interleave
    // on whatever threads the engine runs them.
    for round in 0..5 {
        let tampering: Vec<Vec<u8>> = (0..4)
            .map(|i| adt(&format!("T{round}{i}"), "DOE", "jane"))
            .collect();
        send_all(tamper, &tampering).await;
        wait_for("the tampering messages", Duration::from_secs(30), || {
            written(&dir.path().join("out-tamper")).len() >= 4 * (round + 1)
        })
        .await;
        let plain: Vec<Vec<u8>> = (0..4)
            .map(|i| adt(&format!("H{round}{i}"), "DOE", "jane"))
            .collect();
        send_all(honest, &plain).await;
        wait_for("the honest messages", Duration::from_secs(30), || {
            written(&dir.path().join("out-honest")).len() >= 4 * (round + 1)
        })
        .await;
    }
    let delivered = written(&dir.path().join("out-honest"));
    assert_eq!(delivered.len(), 20);
    for m in &delivered {
        let control = get(m, "MSH-10");
        assert_eq!(
            get(m, "MSH-8"),
            "clean",
            "{control} saw another script's changes"
        );
        assert_eq!(get(m, "PID-5.1"), "DOE", "{control}");
        assert_eq!(get(m, "PID-5.2"), "JANE", "{control}");
        // Each message starts from fresh globals, even after its own channel's last one.
        assert_eq!(get(m, "EVN-5"), "1", "{control}");
    }
    stop(engine).await;
}

const BACKTRACKING: &str = r#"
if (/(a+)+$/.test(msg.get("PID-5.2"))) msg.set("MSH-8", "all a");
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backtracking_regular_expression_ends_errored_and_does_not_spin_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
transforms = [ {{ name = "check name", script = '''{BACKTRACKING}''', timeout_ms = 100 }} ]
[[channels.lab.destinations]]
name = "out"
type = "file"
path = "out"
file_name = "{{message_id}}.hl7"
"#
    );
    let engine = start_engine(dir.path(), "data", Api::Off, &toml).await;
    let to = engine.listeners()[0].addr;
    let limit = Duration::from_secs(30);

    // 25 characters backtracked for 3 s under a 100 ms limit, and the message went on.
    send_all(to, &[adt("R25", "DOE", &format!("{}!", "a".repeat(25)))]).await;
    let (state, reason) = finished(engine.store(), "R25", limit).await;
    assert_eq!(state, "errored", "{reason:?}");
    let reason = reason.unwrap();
    assert!(
        reason.contains("transformer check name") && reason.contains("ran longer than 100 ms"),
        "{reason}"
    );

    // 40 characters held the channel for minutes; now the message after it goes through.
    let spinning = adt("R40", "DOE", &format!("{}!", "a".repeat(40)));
    send_all(to, &[spinning, adt("OK1", "DOE", "aaaa")]).await;
    let (state, _) = finished(engine.store(), "R40", limit).await;
    assert_eq!(state, "errored");
    let (state, reason) = finished(engine.store(), "OK1", limit).await;
    assert_ne!(state, "errored", "{reason:?}");
    wait_for("the good message's file", limit, || {
        written(&dir.path().join("out")).len() == 1
    })
    .await;
    assert_eq!(get(&written(&dir.path().join("out"))[0], "MSH-8"), "all a");
    stop(engine).await;

    // After a restart the errored messages stay errored: nothing spins again.
    let engine = start_engine(dir.path(), "data", Api::Off, &toml).await;
    send_all(engine.listeners()[0].addr, &[adt("OK2", "DOE", "a")]).await;
    let (state, _) = finished(engine.store(), "OK2", limit).await;
    assert_ne!(state, "errored");
    let errored: Vec<String> = journal(engine.store())
        .into_iter()
        .filter(|(_, state, _)| state == "errored")
        .map(|(control, _, _)| control)
        .collect();
    assert_eq!(errored, ["R25", "R40"]);
    stop(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_one_runaway_script_not_for_the_rest_of_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
[channels.lab]
source = {{ type = "mllp", listen = "127.0.0.1:0" }}
transforms = [ {{ script = '''{BACKTRACKING}''', timeout_ms = 1000 }} ]
"#
    );
    let engine = start_engine(dir.path(), "data", Api::Off, &toml).await;
    let spinning: Vec<Vec<u8>> = (0..20)
        .map(|i| adt(&format!("S{i:02}"), "DOE", &format!("{}!", "a".repeat(40))))
        .collect();
    send_all(engine.listeners()[0].addr, &spinning).await;
    let store = engine.store().clone();
    finished(&store, "S00", Duration::from_secs(30)).await;
    // Each of the 20 takes its 1 s limit: the whole batch would hold shutdown 20 s.
    let started = std::time::Instant::now();
    stop(engine).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "shutdown took {took:?}");
    // Nothing is lost: what was not started is still `received`, for the next start.
    let states: Vec<String> = journal(&store).into_iter().map(|(_, s, _)| s).collect();
    assert_eq!(states.len(), 20);
    assert!(
        states.iter().all(|s| s == "errored" || s == "received"),
        "{states:?}"
    );
    assert!(states.iter().any(|s| s == "received"), "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_native_code_keeps_running_is_given_up_on_and_shutdown_does_not_wait() {
    let dir = tempfile::tempdir().unwrap();
    // QuickJS does not poll the interrupt in indexOf on an array-like: 2^53 lookups.
    let toml = r#"
[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
transforms = [ { script = 'if (msg.get("PID-5.2") === "spin") Array.prototype.indexOf.call({ length: 2 ** 53 }, 1);', timeout_ms = 100 } ]
"#;
    let engine = start_engine(dir.path(), "data", Api::Off, toml).await;
    let to = engine.listeners()[0].addr;
    send_all(
        to,
        &[adt("SPIN", "DOE", "spin"), adt("NEXT", "DOE", "jane")],
    )
    .await;
    let limit = Duration::from_secs(30);
    let (state, reason) = finished(engine.store(), "SPIN", limit).await;
    assert_eq!(state, "errored");
    assert!(
        reason
            .as_deref()
            .unwrap_or("")
            .contains("could not be stopped"),
        "{reason:?}"
    );
    let (state, _) = finished(engine.store(), "NEXT", limit).await;
    assert_eq!(state, "processed");
    stop(engine).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_a_script_builds_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let toml = r#"
[channels.big]
source = { type = "mllp", listen = "127.0.0.1:0" }
# Time enough for a debug build to copy the megabytes: this is about memory.
transforms = [ { name = "inflate", script = 'const s = "x".repeat(8 << 20); for (let i = 1; i <= 40; i++) msg.set("EVN-" + (i + 2), s);', timeout_ms = 10000 } ]

[channels.capped]
source = { type = "mllp", listen = "127.0.0.1:0" }
max_message_size = "64KiB"
transforms = [ { name = "pad", script = 'msg.set("EVN-3", "x".repeat(Number(msg.get("PID-5.2"))));' } ]
"#;
    let engine = start_engine(dir.path(), "data", Api::Off, toml).await;
    let address = |channel: &str| {
        engine
            .listeners()
            .iter()
            .find(|l| l.channel == channel)
            .unwrap()
            .addr
    };
    let limit = Duration::from_secs(60);
    // 40 strings of 8 MiB made a 335 MB message that was delivered.
    send_all(address("big"), &[adt("BIG", "DOE", "jane")]).await;
    let (state, reason) = finished(engine.store(), "BIG", limit).await;
    assert_eq!(state, "errored", "{reason:?}");
    assert!(
        reason
            .as_deref()
            .unwrap_or("")
            .contains("more than 32 MiB of memory"),
        "{reason:?}"
    );
    send_all(
        address("capped"),
        &[adt("PAD1", "DOE", "1000"), adt("PAD2", "DOE", "100000")],
    )
    .await;
    let (state, _) = finished(engine.store(), "PAD1", limit).await;
    assert_eq!(state, "processed");
    let (state, reason) = finished(engine.store(), "PAD2", limit).await;
    assert_eq!(state, "errored");
    assert!(
        reason
            .as_deref()
            .unwrap_or("")
            .contains("max_message_size of 65536 bytes"),
        "{reason:?}"
    );
    stop(engine).await;
}

/// What `Config::check` says about a channel `lab` with `rest` in its table.
fn problems(rest: &str) -> Vec<String> {
    let text =
        format!("[channels.lab]\nsource = {{ type = \"mllp\", listen = \"127.0.0.1:0\" }}\n{rest}");
    match Config::from_toml(&text) {
        Ok(config) => config.check().iter().map(|e| e.to_string()).collect(),
        Err(errors) => vec![errors.to_string()],
    }
}

#[test]
fn limits_out_of_range_are_refused_naming_the_key() {
    // memory_mb = 0 passed the check and removed the limit.
    for (rest, key) in [
        (
            "transforms = [ { script = 'msg.get(\"MSH-9\");', memory_mb = 0 } ]",
            "channels.lab.transforms[0].memory_mb",
        ),
        (
            "filters = [ { script = 'return true;', timeout_ms = 0 } ]",
            "channels.lab.filters[0].timeout_ms",
        ),
        ("max_message_size = 0", "channels.lab.max_message_size"),
        (
            "max_message_size = \"2GiB\"",
            "channels.lab.max_message_size",
        ),
    ] {
        let errors = problems(rest);
        assert!(
            errors
                .iter()
                .any(|e| e.contains(key) && e.contains("out of range")),
            "{rest}: {errors:?}"
        );
    }
    assert!(problems("max_message_size = \"1MiB\"").is_empty());
}
