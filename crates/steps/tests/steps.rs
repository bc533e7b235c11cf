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
        other => panic!("expected an error: {other:?}"),
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
