//! Custom rules: scripts in the channel scripts' sandbox, given the message and the
//! patient's record, returning alerts that carry the rule's name and the script's hash,
//! suppressed like the built-in rules' and stored with their version; errors name the
//! rule and the script's line.

use rules::custom::script_version;
use rules::{InMemoryHistory, PatientId, Rules, RulesConfig, Timestamp, extract};
use serde_json::json;

const LOW_K: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102103000||ORU^R01^ORU_R01|MSG2|P|2.5.1\r\
PID|1||123^^^HOSP^MR||DOE^JANE\r\
OBR|1||F2|2823-3^Potassium^LN|||20240102101500\r\
OBX|1|NM|2823-3^Potassium^LN||3.2|mmol/L|3.5-5.1|L|||F\r";

const NORMAL_K: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102113000||ORU^R01^ORU_R01|MSG3|P|2.5.1\r\
PID|1||123^^^HOSP^MR||DOE^JANE\r\
OBR|1||F3|2823-3^Potassium^LN|||20240102111500\r\
OBX|1|NM|2823-3^Potassium^LN||4.1|mmol/L|3.5-5.1|N|||F\r";

/// Low potassium in a patient on digoxin (a MedicationStatement-like resource in the
/// record): the script reads both `msg` and `record`.
const DIGOXIN_RULE: &str = r#"
var k = parseFloat(msg.get("OBX-5"));
if (!(k < 3.5)) return [];
var digoxin = record.resources.filter(function (r) {
  return r.resourceType === "MedicationRequest" && r.status === "active" &&
    JSON.stringify(r.medicationCodeableConcept).toLowerCase().indexOf("digoxin") >= 0;
});
if (digoxin.length === 0) return null;
return { key: "low-k-on-digoxin", severity: "critical",
         text: "Potassium " + k + " mmol/L in a patient on digoxin",
         evidence: [ { potassium: k }, digoxin[0] ] };
"#;

#[derive(Debug)]
struct Setup {
    _dir: tempfile::TempDir,
    rules: Rules,
}

fn setup(script: &str, extra: &str) -> Result<Setup, rules::ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rule.js"), script).unwrap();
    let config = RulesConfig::from_toml(&format!(
        "[[custom]]\nname = \"low-k-digoxin\"\nscript_file = \"rule.js\"\n{extra}"
    ))
    .unwrap();
    let rules = Rules::load(&config, dir.path())?;
    Ok(Setup { _dir: dir, rules })
}

fn run(
    rules: &Rules,
    message: &str,
    history: &InMemoryHistory,
    previous: &[rules::Alert],
) -> Result<Vec<rules::Alert>, rules::RuleError> {
    let parsed = hl7v2::Message::parse(message.as_bytes()).unwrap();
    let owned = hl7v2::OwnedMessage::parse(message.as_bytes()).unwrap();
    let now = Timestamp::parse_hl7("20240102103000").unwrap();
    rules.evaluate_message(
        &PatientId("E42".into()),
        &extract(&parsed),
        &owned,
        history,
        now,
        previous,
    )
}

fn on_digoxin() -> InMemoryHistory {
    let mut history = InMemoryHistory::new();
    history.add_resource(json!({
        "resourceType": "MedicationRequest", "id": "m1", "status": "active",
        "medicationCodeableConcept": { "text": "Digoxin 125 microgram tablet" }
    }));
    history
}

#[test]
fn fires_with_the_record_and_carries_the_script_hash() {
    let setup = setup(DIGOXIN_RULE, "").unwrap();
    let alerts = run(&setup.rules, LOW_K, &on_digoxin(), &[]).unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(alert.rule.as_str(), "low-k-digoxin");
    assert_eq!(alert.rule_version, script_version(DIGOXIN_RULE.as_bytes()));
    assert_eq!(alert.severity, rules::Severity::Critical);
    assert_eq!(alert.key, "low-k-on-digoxin");
    assert_eq!(
        alert.summary,
        "Potassium 3.2 mmol/L in a patient on digoxin"
    );
    assert_eq!(
        alert.evidence,
        [
            rules::Evidence::Custom(json!({ "potassium": 3.2 })),
            rules::Evidence::Custom(json!({
                "resourceType": "MedicationRequest", "id": "m1", "status": "active",
                "medicationCodeableConcept": { "text": "Digoxin 125 microgram tablet" }
            })),
        ]
    );
    assert_eq!(alert.patient, PatientId("E42".into()));
}

#[test]
fn does_not_fire_without_the_drug_or_with_a_normal_value() {
    let setup = setup(DIGOXIN_RULE, "").unwrap();
    assert_eq!(
        run(&setup.rules, LOW_K, &InMemoryHistory::new(), &[]).unwrap(),
        []
    );
    assert_eq!(run(&setup.rules, NORMAL_K, &on_digoxin(), &[]).unwrap(), []);
}

#[test]
fn the_same_condition_is_suppressed_within_its_window() {
    let setup = setup(DIGOXIN_RULE, "suppress_for = \"6h\"\n").unwrap();
    let first = run(&setup.rules, LOW_K, &on_digoxin(), &[]).unwrap();
    assert_eq!(first.len(), 1);
    let again = run(&setup.rules, LOW_K, &on_digoxin(), &first).unwrap();
    assert_eq!(again, []);
}

#[test]
fn the_record_and_message_are_read_only() {
    // Changing the record throws (it is frozen), at the line that tries.
    let script =
        "\nvar n = record.resources.length;\nrecord.patient = \"someone else\";\nreturn [];\n";
    let setup = setup(script, "").unwrap();
    let error = run(&setup.rules, LOW_K, &on_digoxin(), &[]).unwrap_err();
    assert_eq!(error.rule, "low-k-digoxin");
    assert!(error.problem.contains("read-only"), "{error}");
    assert!(error.problem.contains("line 3"), "{error}");

    let script = r#"
var tried = [];
try { record.resources.push({ resourceType: "Patient" }); } catch (e) { tried.push("record"); }
try { record.resources[0].status = "stopped"; } catch (e) { tried.push("resource"); }
try { msg.set("PID-5.1", "X"); } catch (e) { tried.push(String(e)); }
return { key: record.patient + "/" + record.resources.length + "/" + record.resources[0].status,
         severity: "info", text: tried.join(" | ") };
"#;
    let setup = self::setup(script, "").unwrap();
    let alerts = run(&setup.rules, LOW_K, &on_digoxin(), &[]).unwrap();
    assert_eq!(alerts[0].key, "E42/1/active");
    assert!(
        alerts[0]
            .summary
            .starts_with("record | resource | TypeError: msg is read-only"),
        "{alerts:?}"
    );
}

#[test]
fn errors_name_the_rule_and_the_line() {
    let setup = setup("var a = 1;\nvar b = null;\nb.key = a;\nreturn b;\n", "").unwrap();
    let error = run(&setup.rules, LOW_K, &on_digoxin(), &[]).unwrap_err();
    assert_eq!(error.rule, "low-k-digoxin");
    assert!(
        error.to_string().starts_with("custom rule low-k-digoxin: "),
        "{error}"
    );
    assert!(error.problem.contains("line 3"), "{error}");

    // What it returns must be alerts.
    for (script, says) in [
        ("return 42;", "a number"),
        (
            "return [{ key: \"k\", severity: \"loud\", text: \"t\" }];",
            "severity",
        ),
        (
            "return [{ severity: \"info\", text: \"t\" }];",
            "key is missing",
        ),
        (
            "return [{ key: \"k\", severity: \"info\" }];",
            "text is missing",
        ),
        (
            "return { rule: \"other\", key: \"k\", severity: \"info\", text: \"t\" };",
            "rule",
        ),
        (
            "var a = []; for (var i = 0; i < 101; i++) a.push({key: 'k' + i, severity: 'info', text: 't'}); return a;",
            "at most 100",
        ),
        ("while (true) {}", "ran longer than"),
    ] {
        let setup = self::setup(script, "timeout_ms = 50\n").unwrap();
        let error = run(&setup.rules, LOW_K, &on_digoxin(), &[]).unwrap_err();
        assert!(error.problem.contains(says), "{script}: {error}");
    }
}

#[test]
fn a_script_that_does_not_compile_is_refused_naming_the_key_and_line() {
    let error = setup("var a = 1;\nreturn (;\n", "").unwrap_err();
    assert!(error.0.starts_with("custom[0].script_file: "), "{error}");
    assert!(error.0.contains("low-k-digoxin"), "{error}");
    assert!(error.0.contains("line 2"), "{error}");

    let config =
        RulesConfig::from_toml("[[custom]]\nname = \"gone\"\nscript_file = \"no-such-file.js\"\n")
            .unwrap();
    let error = Rules::load(&config, std::path::Path::new("/nonexistent")).unwrap_err();
    assert!(
        error.0.starts_with("custom[0].script_file: cannot read"),
        "{error}"
    );

    let error = RulesConfig::from_toml(
        "[[custom]]\nname = \"a\"\nscript_file = \"a.js\"\n[[custom]]\nname = \"a\"\nscript_file = \"b.js\"\n",
    )
    .unwrap_err();
    assert!(error.0.contains("custom[1].name"), "{error}");
}

#[test]
fn enabled_false_turns_custom_rules_off_too() {
    let setup = setup(DIGOXIN_RULE, "").unwrap();
    assert!(setup.rules.has_custom());
    let dir = tempfile::tempdir().unwrap();
    let config = RulesConfig::from_toml(
        "enabled = false\n[[custom]]\nname = \"x\"\nscript_file = \"not-read.js\"\n",
    )
    .unwrap();
    let rules = Rules::load(&config, dir.path()).unwrap();
    assert!(!rules.has_custom());
    assert!(rules.kinds().is_empty());
}

/// The example rule in docs/rules.md runs as documented: it fires on a low potassium
/// that fell by 1 mmol/L or more from the record's latest potassium (an Observation
/// as the repository holds it), and not otherwise.
#[test]
fn the_documented_example_rule_works() {
    let doc = include_str!("../../../docs/rules.md");
    let start = doc.find("```js\n").unwrap() + "```js\n".len();
    let end = start + doc[start..].find("```").unwrap();
    let setup = setup(&doc[start..end], "").unwrap();
    let observation = |id: &str, value: f64, at: &str| {
        json!({
            "resourceType": "Observation", "id": id, "status": "final",
            "code": { "coding": [ { "system": "http://loinc.org", "code": "2823-3" } ] },
            "valueQuantity": { "value": value, "unit": "mmol/L" },
            "effectiveDateTime": at
        })
    };
    let mut falling = InMemoryHistory::new();
    falling.add_resource(observation("k1", 3.9, "2024-01-01T08:00:00+01:00"));
    falling.add_resource(observation("k2", 4.6, "2024-01-02T06:00:00-05:00"));
    let alerts = run(&setup.rules, LOW_K, &falling, &[]).unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].key, "2823-3:falling-low");
    assert_eq!(alerts[0].summary, "Potassium 3.2 mmol/L, down from 4.6");
    assert_eq!(alerts[0].evidence.len(), 2);

    // The latest earlier result was 3.9: a fall of 0.7, no alert.
    let mut steady = InMemoryHistory::new();
    steady.add_resource(observation("k1", 4.6, "2024-01-01T08:00:00Z"));
    steady.add_resource(observation("k2", 3.9, "2024-01-02T06:00:00Z"));
    assert_eq!(run(&setup.rules, LOW_K, &steady, &[]).unwrap(), []);
    assert_eq!(
        run(&setup.rules, LOW_K, &InMemoryHistory::new(), &[]).unwrap(),
        []
    );
    assert_eq!(run(&setup.rules, NORMAL_K, &falling, &[]).unwrap(), []);
}
