//! Filters, transformers and the script sandbox, on real messages.

use std::path::Path as FsPath;

use hl7v2::OwnedMessage;
use steps::{Chain, FilterConfig, Outcome, TransformConfig};

const ORU: &[u8] = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240101||ORU^R01|C1|P|2.5.1\rPID|1||123^^^HOSP^MR||DOE^JANE||19800101|F\rOBR|1\rOBX|1|NM|WBC||7.5\rNTE|1||first\rOBX|2|NM|RBC||4.1\rNTE|1||second\rZPI|1|x\r";

fn msg() -> OwnedMessage {
    OwnedMessage::parse(ORU).unwrap()
}

fn chain(config: &str) -> Result<Chain, steps::StepError> {
    #[derive(serde::Deserialize)]
    struct Steps {
        #[serde(default)]
        filters: Vec<FilterConfig>,
        #[serde(default)]
        transforms: Vec<TransformConfig>,
    }
    let steps: Steps = toml::from_str(config).unwrap();
    Chain::compile(
        &steps.filters,
        &steps.transforms,
        FsPath::new(env!("CARGO_MANIFEST_DIR")),
    )
}

fn text(m: &OwnedMessage, path: &str) -> Option<String> {
    m.get_text(&path.parse().unwrap())
}

fn pass(outcome: Outcome) -> OwnedMessage {
    match outcome {
        Outcome::Pass(m) => m,
        other => panic!("expected the message to pass: {other:?}"),
    }
}

#[test]
fn filters_match_type_sender_paths_sets_and_regexes() {
    let keeps = |config: &str| matches!(chain(config).unwrap().run(msg()), Outcome::Pass(_));
    assert!(keeps(
        r#"filters = [ { path = "MSH-9.1", in = ["ORU", "ORM"] } ]"#
    ));
    assert!(!keeps(
        r#"filters = [ { path = "MSH-9.1", in = ["ADT"] } ]"#
    ));
    assert!(keeps(
        r#"filters = [ { message_type = "ORU" }, { trigger = ["R01"] }, { sender = "LAB" } ]"#
    ));
    assert!(!keeps(r#"filters = [ { facility = "ELSEWHERE" } ]"#));
    assert!(keeps(
        r#"filters = [ { path = "PID-7", matches = "^19[0-9]{6}$" } ]"#
    ));
    assert!(keeps(
        r#"filters = [ { path = "PID-8", not_in = ["M", "U"] } ]"#
    ));
    assert!(keeps(
        r#"filters = [ { path = "PID-19", exists = false } ]"#
    ));
    assert!(!keeps(
        r#"filters = [ { path = "PID-5.1", not_equals = "DOE" } ]"#
    ));
}

#[test]
fn filtered_message_names_the_filter() {
    let outcome =
        chain(r#"filters = [ { name = "labs only", path = "MSH-9.1", equals = "ADT" } ]"#)
            .unwrap()
            .run(msg());
    assert!(matches!(outcome, Outcome::Filtered { filter } if filter == "labs only"));
    let outcome = chain(r#"filters = [ { path = "MSH-9.1", equals = "ADT" } ]"#)
        .unwrap()
        .run(msg());
    assert!(matches!(outcome, Outcome::Filtered { filter } if filter == "MSH-9.1 = \"ADT\""));
}

#[test]
fn set_copy_clear_delete_rename() {
    let m = pass(
        chain(
            r#"transforms = [
                { set = "MSH-5", value = "EHR^X" },
                { copy = "PID-3.1", to = "PID-2" },
                { clear = "PID-8" },
                { delete_segments = "NTE" },
                { delete = "OBX[2]" },
                { rename_segment = "ZPI", to = "ZPD" },
            ]"#,
        )
        .unwrap()
        .run(msg()),
    );
    assert_eq!(text(&m, "MSH-5").as_deref(), Some("EHR^X"));
    assert_eq!(
        m.get(&"MSH-5".parse().unwrap()).unwrap().raw(),
        b"EHR\\S\\X"
    );
    assert_eq!(text(&m, "PID-2").as_deref(), Some("123"));
    assert_eq!(text(&m, "PID-8").as_deref(), Some(""));
    let names: Vec<_> = m
        .segment_names()
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert_eq!(names, ["MSH", "PID", "OBR", "OBX", "ZPD"]);
}

#[test]
fn map_through_a_csv_table() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("sex.csv"),
        "from,to\nF,female\n\"M\",\"male, adult\"\n",
    )
    .unwrap();
    let build = |extra: &str| {
        let t: TransformConfig =
            toml::from_str(&format!("map = \"PID-8\"\ntable = \"sex.csv\"\n{extra}")).unwrap();
        Chain::compile(&[], &[t], dir.path()).unwrap()
    };
    let m = pass(build("").run(msg()));
    assert_eq!(text(&m, "PID-8").as_deref(), Some("female"));
    let mut other = msg();
    other.set_text(&"PID-8".parse().unwrap(), "X").unwrap();
    assert_eq!(
        text(&pass(build("").run(other.clone())), "PID-8").as_deref(),
        Some("X")
    );
    assert_eq!(
        text(
            &pass(build("default = \"unknown\"").run(other.clone())),
            "PID-8"
        )
        .as_deref(),
        Some("unknown")
    );
    assert!(matches!(
        build("missing = \"error\"").run(other),
        Outcome::Error { .. }
    ));
}

#[test]
fn a_key_that_does_nothing_for_its_action_is_an_error_naming_it() {
    // Each action with every key it does not use.
    let strays: &[(&str, &[&str])] = &[
        (
            r#"set = "MSH-5", value = "X""#,
            &[
                "to = \"MSH-6\"",
                "table = \"t.csv\"",
                "missing = \"keep\"",
                "default = \"d\"",
                "timeout_ms = 50",
                "memory_mb = 8",
            ],
        ),
        (
            r#"copy = "MSH-5", to = "MSH-6""#,
            &[
                "value = \"X\"",
                "table = \"t.csv\"",
                "missing = \"keep\"",
                "default = \"d\"",
                "timeout_ms = 50",
                "memory_mb = 8",
            ],
        ),
        (
            r#"clear = "PID-8""#,
            &[
                "value = \"X\"",
                "to = \"PID-9\"",
                "table = \"t.csv\"",
                "timeout_ms = 50",
            ],
        ),
        (
            r#"delete = "PID-8""#,
            &[
                "value = \"X\"",
                "to = \"PID-9\"",
                "default = \"d\"",
                "memory_mb = 8",
            ],
        ),
        (
            r#"delete_segments = "NTE""#,
            &["value = \"X\"", "to = \"ZZZ\"", "missing = \"keep\""],
        ),
        (
            r#"map = "PID-8", table = "no-such-table.csv""#,
            &["value = \"X\"", "to = \"PID-9\"", "timeout_ms = 50"],
        ),
        (
            r#"rename_segment = "ZPI", to = "ZPX""#,
            &["value = \"X\"", "table = \"t.csv\"", "memory_mb = 8"],
        ),
        (
            r#"script = "msg.set('MSH-5', 'X');""#,
            &[
                "value = \"X\"",
                "to = \"PID-9\"",
                "table = \"t.csv\"",
                "missing = \"keep\"",
                "default = \"d\"",
            ],
        ),
    ];
    for (action, keys) in strays {
        match chain(&format!("transforms = [ {{ {action} }} ]")) {
            Ok(_) => {}
            // The map's table is not there: what matters is that its keys are not stray.
            Err(e) if action.starts_with("map") => {
                assert!(e.to_string().contains("table: cannot read"), "{e}")
            }
            Err(e) => panic!("{action} alone: {e}"),
        }
        for key in *keys {
            let e = chain(&format!("transforms = [ {{ {action}, {key} }} ]")).unwrap_err();
            let name = key.split(' ').next().unwrap();
            let words = e.to_string();
            assert!(
                words.starts_with(&format!("transforms[0]: {name}: does nothing for ")),
                "{action} with {key}: {words}"
            );
        }
    }
    // Filters: a script filter takes no subject or test, a path filter no script limits.
    for key in [
        "path = \"PID-8\"",
        "equals = \"F\"",
        "in = [\"F\"]",
        "exists = true",
        "message_type = \"ADT\"",
    ] {
        let e = chain(&format!(
            "filters = [ {{ script = \"return true;\", {key} }} ]"
        ))
        .unwrap_err();
        let name = key.split(' ').next().unwrap();
        assert!(
            e.to_string().starts_with(&format!(
                "filters[0]: {name}: does nothing for a script filter"
            )),
            "{key}: {e}"
        );
    }
    for key in ["timeout_ms = 50", "memory_mb = 8"] {
        let e = chain(&format!(
            "filters = [ {{ path = \"PID-8\", equals = \"F\", {key} }} ]"
        ))
        .unwrap_err();
        let name = key.split(' ').next().unwrap();
        assert!(
            e.to_string().starts_with(&format!(
                "filters[0]: {name}: does nothing for a filter without a script"
            )),
            "{key}: {e}"
        );
    }
    chain(r#"filters = [ { script = "return true;", timeout_ms = 50, memory_mb = 8 } ]"#).unwrap();
}

#[test]
fn configuration_errors_name_the_step_and_key() {
    let e = chain(r#"filters = [ { path = "MSH-9.1" } ]"#).unwrap_err();
    assert!(e.to_string().starts_with("filters[0]:"), "{e}");
    let e =
        chain(r#"transforms = [ { set = "MSH-5", value = "x" }, { set = "PID-0", value = "x" } ]"#)
            .unwrap_err();
    assert!(e.to_string().contains("transforms[1]: set:"), "{e}");
    let e = chain(r#"filters = [ { path = "PID-3", matches = "(" } ]"#).unwrap_err();
    assert!(e.to_string().contains("matches"), "{e}");
    let e = chain(r#"transforms = [ { map = "PID-8", table = "nope.csv" } ]"#).unwrap_err();
    assert!(e.to_string().contains("nope.csv"), "{e}");
    let e = chain(r#"transforms = [ { script = "this is not javascript (" } ]"#).unwrap_err();
    assert!(e.to_string().contains("does not compile"), "{e}");
    assert!(
        toml::from_str::<FilterConfig>("pth = \"PID-3\"")
            .unwrap_err()
            .to_string()
            .contains("pth")
    );
}

#[test]
fn scripts_read_and_change_the_message() {
    let m = pass(
        chain(
            r#"transforms = [ { script = '''
                const family = msg.get("PID-5.1");
                msg.set("PID-5.1", family.toLowerCase());
                msg.set("ZXX-1", String(msg.count("OBX")));
                if (msg.get("PID-99") !== null) throw new Error("absent values are null");
            ''' } ]"#,
        )
        .unwrap()
        .run(msg()),
    );
    assert_eq!(text(&m, "PID-5.1").as_deref(), Some("doe"));
    assert_eq!(text(&m, "ZXX-1").as_deref(), Some("2"));
}

#[test]
fn script_filters_return_booleans() {
    let keep = chain(r#"filters = [ { script = 'return msg.get("PID-8") === "F";' } ]"#).unwrap();
    assert!(matches!(keep.run(msg()), Outcome::Pass(_)));
    let drop =
        chain(r#"filters = [ { name = "males", script = 'return msg.get("PID-8") === "M";' } ]"#)
            .unwrap();
    assert!(matches!(drop.run(msg()), Outcome::Filtered { filter } if filter == "males"));
    let nothing = chain(r#"filters = [ { script = 'msg.get("PID-8");' } ]"#).unwrap();
    assert!(matches!(nothing.run(msg()), Outcome::Error { .. }));
}

fn script_error(source: &str) -> String {
    let config = format!(
        "transforms = [ {{ script = '''{source}''', timeout_ms = 2000, memory_mb = 16 }} ]"
    );
    match chain(&config).unwrap().run(msg()) {
        Outcome::Error { error, .. } => error.to_string(),
        // Not the message itself: it may be hundreds of megabytes.
        Outcome::Pass(_) => panic!("expected an error; the message passed"),
        Outcome::Filtered { filter } => panic!("expected an error; {filter} filtered it"),
    }
}

#[test]
fn endless_loop_is_stopped_with_a_clear_error() {
    let e = script_error("while (true) {}");
    assert!(e.contains("ran longer than 2000 ms"), "{e}");
    // The next message runs normally.
    let m = pass(
        chain(r#"transforms = [ { script = 'msg.set("MSH-5", "OK");' } ]"#)
            .unwrap()
            .run(msg()),
    );
    assert_eq!(text(&m, "MSH-5").as_deref(), Some("OK"));
}

#[test]
fn huge_allocation_is_stopped_with_a_clear_error() {
    let e = script_error("const a = []; for (;;) { a.push('x'.repeat(1 << 20)); }");
    assert!(e.contains("more than 16 MiB"), "{e}");
}

#[test]
fn scripts_cannot_reach_files_or_the_network() {
    for attempt in [
        "require('fs').readFileSync('/etc/passwd')",
        "std.loadFile('/etc/passwd')",
        "os.open('/etc/passwd')",
        "fetch('http://127.0.0.1/')",
        "new XMLHttpRequest()",
    ] {
        let e = script_error(attempt);
        assert!(
            e.contains("is not defined") || e.contains("not a function"),
            "{attempt}: {e}"
        );
    }
}

#[test]
fn deep_recursion_is_an_error_not_a_crash() {
    let e = script_error("function f(n) { return f(n + 1) + 1; } f(0);");
    assert!(e.contains("stack") || e.contains("ran longer"), "{e}");
}

#[test]
fn the_enterprise_id_reaches_set_values_and_scripts() {
    let steps = chain(
        r#"
        filters = [ { name = "linked", script = "return enterpriseId !== null;" } ]
        transforms = [
          { set = "PID-3[2].1", value = "{enterprise_id}" },
          { set = "PID-3[2].4", value = "CORRIDOR" },
          { script = "msg.set('ZPI-2', 'E:' + enterpriseId);" },
        ]
        "#,
    )
    .unwrap();
    let vars = steps::Vars {
        enterprise_id: Some("E42".into()),
    };
    let out = pass(steps.run_with(msg(), &vars));
    assert_eq!(text(&out, "PID-3[2].1").as_deref(), Some("E42"));
    assert_eq!(text(&out, "PID-3[2].4").as_deref(), Some("CORRIDOR"));
    assert_eq!(text(&out, "ZPI-2").as_deref(), Some("E:E42"));

    // Without an enterprise id the script filter stops the message.
    match steps.run_with(msg(), &steps::Vars::default()) {
        Outcome::Filtered { filter } => assert_eq!(filter, "linked"),
        other => panic!("expected the filter to stop it: {other:?}"),
    }
    // A set that needs it fails clearly.
    let set_only =
        chain(r#"transforms = [ { set = "PID-2", value = "{enterprise_id}" } ]"#).unwrap();
    match set_only.run(msg()) {
        Outcome::Error { error, .. } => {
            assert!(
                error.to_string().contains("{enterprise_id} is not known"),
                "{error}"
            )
        }
        other => panic!("expected an error: {other:?}"),
    }
}

/// Runs `chain` on a fresh copy of the test message and returns the changed message.
fn run_pass(chain: &Chain) -> OwnedMessage {
    pass(chain.run(msg()))
}

#[test]
fn nothing_a_script_does_to_globals_or_prototypes_reaches_the_next_message() {
    let tamper = chain(
        r#"transforms = [ { script = '''
            Object.prototype.injected = "yes";
            String.prototype.toUpperCase = function () { return "TAMPERED"; };
            Array.prototype.join = function () { return "TAMPERED"; };
            globalThis.leaked = "yes";
            const realSet = msg.set;
            msg.set = function (path, value) { realSet("PID-5.1", "TAMPERED"); realSet(path, value); };
            globalThis.msg = new Proxy(msg, { get: () => () => "TAMPERED" });
            if (globalThis.__corridor_steps) {
                globalThis.__corridor_steps = new Proxy(globalThis.__corridor_steps, {
                    get: () => function (m) { m.set("PID-5.1", "TAMPERED"); },
                });
            }
        ''' } ]"#,
    )
    .unwrap();
    let honest = chain(
        r#"transforms = [ { script = '''
            const seen = [];
            if ({}.injected !== undefined) seen.push("prototype");
            if (typeof leaked !== "undefined") seen.push("global");
            if ("a".toUpperCase() !== "A") seen.push("string");
            if (["a", "b"].join("-") !== "a-b") seen.push("array");
            globalThis.runs = (globalThis.runs || 0) + 1;
            msg.set("MSH-8", seen.join("+") || "clean");
            msg.set("PID-5.2", msg.get("PID-5.2").toLowerCase());
            msg.set("ZPI-2", String(runs));
        ''' } ]"#,
    )
    .unwrap();
    for round in 0..20 {
        run_pass(&tamper);
        let out = run_pass(&honest);
        assert_eq!(
            text(&out, "MSH-8").as_deref(),
            Some("clean"),
            "round {round}"
        );
        assert_eq!(
            text(&out, "PID-5.1").as_deref(),
            Some("DOE"),
            "round {round}"
        );
        assert_eq!(
            text(&out, "PID-5.2").as_deref(),
            Some("jane"),
            "round {round}"
        );
        // Not even the script's own globals carry over from its last message.
        assert_eq!(text(&out, "ZPI-2").as_deref(), Some("1"), "round {round}");
    }
}

fn regex_chain(timeout_ms: u64) -> Chain {
    chain(&format!(
        r#"transforms = [ {{ script = '''
            if (/(a+)+$/.test(msg.get("PID-5.2"))) msg.set("MSH-8", "matched");
        ''', timeout_ms = {timeout_ms} }} ]"#
    ))
    .unwrap()
}

fn with_given_name(name: &str) -> OwnedMessage {
    let mut m = msg();
    m.set_text(&"PID-5.2".parse().unwrap(), name).unwrap();
    m
}

#[test]
fn a_backtracking_regular_expression_is_stopped_by_the_time_limit() {
    let steps = regex_chain(100);
    for length in [25, 40] {
        let started = std::time::Instant::now();
        let outcome = steps.run(with_given_name(&format!("{}!", "a".repeat(length))));
        match outcome {
            Outcome::Error { error, .. } => assert!(
                error
                    .to_string()
                    .contains("ran longer than 100 ms and was stopped"),
                "{length}: {error}"
            ),
            _ => panic!("{length} characters: expected the time limit to stop the script"),
        }
        // Generous: the limit is 100 ms; without the interrupt this ran for minutes.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
    let out = pass(steps.run(with_given_name("aaaa")));
    assert_eq!(text(&out, "MSH-8").as_deref(), Some("matched"));
}

#[test]
fn native_work_that_ignores_the_interrupt_is_given_up_on_and_the_next_runs() {
    // QuickJS's indexOf on an array-like does not poll the interrupt: 2^53 lookups.
    let spin = chain(
        r#"transforms = [ { script = 'Array.prototype.indexOf.call({ length: 2 ** 53 }, 1);', timeout_ms = 100 } ]"#,
    )
    .unwrap();
    let before = steps::script::abandoned_threads();
    let started = std::time::Instant::now();
    match spin.run(msg()) {
        Outcome::Error { error, .. } => assert!(
            error
                .to_string()
                .contains("ran longer than 100 ms and could not be stopped"),
            "{error}"
        ),
        other => panic!("expected the run to be given up on: {other:?}"),
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(steps::script::abandoned_threads() > before);
    let next = chain(r#"transforms = [ { script = 'msg.set("MSH-5", "OK");' } ]"#).unwrap();
    assert_eq!(text(&run_pass(&next), "MSH-5").as_deref(), Some("OK"));
}

#[test]
fn a_script_that_runs_code_outside_its_function_is_refused_at_load() {
    let started = std::time::Instant::now();
    for source in [
        "}); while (true) {} (function (m) {",
        "}); globalThis.x = 1; (function (m) {",
        "}), (function (msg) {",
        "}); Function.prototype.toString = () => 'function (msg) {}'; (function (m) {",
        "}); Array.prototype.indexOf.call({ length: 2 ** 53 }, 1); (function (m) {",
    ] {
        let config = format!("transforms = [ {{ script = '''{source}''' }} ]");
        let e = chain(&config).unwrap_err().to_string();
        assert!(e.starts_with("transforms[0]: "), "{source}: {e}");
        assert!(
            e.contains("more than a function body") || e.contains("while loading"),
            "{source}: {e}"
        );
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    // Braces in strings, comments and regular expressions are the body's own.
    let fine = chain(
        r#"transforms = [ { script = '''
            // }); not the end
            const s = "})"; const r = /\}\)/; /* }) */
            msg.set("MSH-5", s + String(r.test("})")));
        ''' } ]"#,
    )
    .unwrap();
    assert_eq!(text(&run_pass(&fine), "MSH-5").as_deref(), Some("})true"));
}

#[test]
fn limits_out_of_range_are_refused_naming_the_key() {
    for (config, key) in [
        ("memory_mb = 0", "memory_mb: 0 is out of range"),
        ("memory_mb = 100000", "memory_mb: 100000 is out of range"),
        ("timeout_ms = 0", "timeout_ms: 0 is out of range"),
        (
            "timeout_ms = 3600000",
            "timeout_ms: 3600000 is out of range",
        ),
    ] {
        let e = chain(&format!(
            "transforms = [ {{ script = 'msg.get(\"MSH-9\");', {config} }} ]"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with(&format!("transforms[0]: {key}")), "{e}");
        let e = chain(&format!(
            "filters = [ {{ script = 'return true;', {config} }} ]"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.starts_with(&format!("filters[0]: {key}")), "{e}");
    }
}

#[test]
fn the_message_a_script_builds_counts_against_its_memory_limit() {
    let e = script_error(
        "const big = 'x'.repeat(8 << 20); for (let i = 1; i <= 40; i++) msg.set('ZPI-' + i, big);",
    );
    assert!(e.contains("more than 16 MiB"), "{e}");
    // Growth shares the limit with the heap: 12 MiB of message leave too little for 8 more.
    let e = script_error(
        "msg.set('ZPI-2', 'x'.repeat(12 << 20)); const more = 'y'.repeat(8 << 20); msg.set('ZPI-3', more);",
    );
    assert!(e.contains("more than 16 MiB"), "{e}");
}

#[test]
fn promise_reactions_run_with_the_message_and_under_the_limits() {
    let out = run_pass(
        &chain(r#"transforms = [ { script = 'Promise.resolve("LATER").then((v) => msg.set("MSH-5", v));' } ]"#)
            .unwrap(),
    );
    assert_eq!(text(&out, "MSH-5").as_deref(), Some("LATER"));
    let e = script_error("(function again() { Promise.resolve().then(again); })();");
    assert!(e.contains("ran longer than 2000 ms"), "{e}");
}

#[test]
fn a_step_may_not_grow_the_message_past_the_maximum_size() {
    let limited = |config: &str| chain(config).unwrap().with_max_message_size(4096);
    let grows = limited(
        r#"transforms = [ { set = "MSH-5", value = "EHR" }, { script = 'msg.set("ZPI-3", "x".repeat(5000));' } ]"#,
    );
    match grows.run(msg()) {
        Outcome::Error { step, error } => {
            assert_eq!(step, "transformer script");
            assert!(
                error
                    .to_string()
                    .contains("more than the channel's max_message_size of 4096 bytes"),
                "{error}"
            );
        }
        _ => panic!("expected the size check to stop the message"),
    }
    let filter_grows = limited(
        r#"filters = [ { name = "grower", script = 'msg.set("ZPI-3", "x".repeat(5000)); return true;' } ]"#,
    );
    assert!(
        matches!(filter_grows.run(msg()), Outcome::Error { step, .. } if step == "filter grower")
    );
    // Within the limit, and a message that came in larger but is not grown, pass.
    let fits = limited(r#"transforms = [ { script = 'msg.set("ZPI-3", "x".repeat(1000));' } ]"#);
    assert_eq!(text(&run_pass(&fits), "ZPI-3").map(|v| v.len()), Some(1000));
    let mut large = msg();
    large
        .set_text(&"NTE-3".parse().unwrap(), &"y".repeat(8000))
        .unwrap();
    let shrinks = limited(r#"transforms = [ { set = "MSH-5", value = "EHR" } ]"#);
    assert!(matches!(shrinks.run(large), Outcome::Pass(_)));
}

#[test]
fn paths_to_every_occurrence_are_refused_where_one_value_is_read_or_written() {
    // `[*]` parses as a path since `corridor get` prints every match; a filter or a
    // transformer taking only the first match would act on part of the message unseen.
    for config in [
        r#"filters = [ { path = "OBX[*]-5", equals = "x" } ]"#,
        r#"transforms = [ { set = "PID-3[*].1", value = "x" } ]"#,
        r#"transforms = [ { copy = "OBX[*]-3", to = "NTE-3" } ]"#,
    ] {
        let e = chain(config).unwrap_err().to_string();
        assert!(
            e.contains("[*]") && e.contains("one value"),
            "{config}: {e}"
        );
    }
    let e = script_error(r#"msg.set("OBX[*]-5", "x");"#);
    assert!(e.contains("[*]"), "{e}");
}

#[test]
fn script_errors_name_the_line_and_column_of_the_script_as_written() {
    let e = script_error("const a = 1;\nconst b = 2;\n    undefinedFunction(a + b);");
    assert!(e.contains("line 3, column 5 of the script"), "{e}");
    assert!(!e.contains("eval_script"), "{e}");
    let e = chain("transforms = [ { script = \"const a = 1;\\nconst b = ;\" } ]")
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not compile"), "{e}");
    assert!(e.contains("line 2, column"), "{e}");
    assert!(!e.contains("eval_script"), "{e}");
}

/// `Script::evaluate` (the clinical rules' custom rules): inputs as frozen globals, the
/// message read-only, what the script returns back as JSON text.
#[test]
fn evaluate_reads_frozen_inputs_and_the_message_and_returns_json() {
    let message = hl7v2::OwnedMessage::parse(
        b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5\rPID|1||123^^^H^MR\r",
    )
    .unwrap();
    let script = steps::Script::new(
        r#"var r = { a: input.a, pid: msg.get("PID-3.1") };
try { input.a = 2; } catch (e) { r.inputThrew = true; }
try { msg.set("PID-3.1", "x"); } catch (e) { r.setThrew = true; }
return r;"#,
        steps::Limits::default(),
    )
    .unwrap();
    let out = script
        .evaluate(
            &message,
            vec![("input".to_owned(), r#"{"a":1}"#.to_owned())],
        )
        .unwrap();
    assert_eq!(
        out.as_deref(),
        Some(r#"{"a":1,"pid":"123","inputThrew":true,"setThrew":true}"#)
    );
    let nothing = steps::Script::new("return;", steps::Limits::default()).unwrap();
    assert_eq!(nothing.evaluate(&message, Vec::new()).unwrap(), None);
    let function = steps::Script::new("return function () {};", steps::Limits::default()).unwrap();
    assert!(function.evaluate(&message, Vec::new()).is_err());
}
