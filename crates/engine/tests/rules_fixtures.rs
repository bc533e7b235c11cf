//! `corridor test` fixtures assert the clinical alerts a message fires
//! (`expect.toml`: `alerts = [ { rule, key } ]`, exactly; `alerts = []` none).

use std::path::Path;

use engine::Config;
use engine::channel_test::run_cases;

const POTASSIUM: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102103000||ORU^R01^ORU_R01|MSG1|P|2.5.1\r\
PID|1||123^^^HOSP^MR||DOE^JANE\r\
OBR|1||F1|2823-3^Potassium^LN|||20240102101500\r\
OBX|1|NM|2823-3^Potassium^LN||6.4|mmol/L|3.5-5.1|HH|||F\r";

fn case(root: &Path, name: &str, expect: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.hl7"), POTASSIUM).unwrap();
    std::fs::write(dir.join("expect.toml"), expect).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixtures_assert_the_alerts_a_message_fires() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("cases");
    case(
        &root,
        "fires",
        "state = \"processed\"\nalerts = [ { rule = \"critical-value\", key = \"2823-3:high\" } ]\n",
    );
    case(&root, "says-none", "state = \"processed\"\nalerts = []\n");
    case(
        &root,
        "wrong-key",
        "state = \"processed\"\nalerts = [ { rule = \"critical-value\", key = \"2823-3:low\" } ]\n",
    );
    case(&root, "not-compared", "state = \"processed\"\n");
    let config = Config::from_toml_in(
        "[http]\nenabled = false\n[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nfhir = { repository = true }\n",
        dir.path(),
    )
    .unwrap();
    let reports = run_cases(&config, &root).await.unwrap();
    let by_name = |name: &str| reports.iter().find(|r| r.name == name).unwrap();
    assert!(by_name("fires").passed(), "{:?}", by_name("fires"));
    assert!(
        by_name("not-compared").passed(),
        "{:?}",
        by_name("not-compared")
    );
    assert_eq!(
        by_name("says-none").failures,
        ["alerts: expected [], got [critical-value 2823-3:high]"]
    );
    assert_eq!(
        by_name("wrong-key").failures,
        ["alerts: expected [critical-value 2823-3:low], got [critical-value 2823-3:high]"]
    );
}

/// A custom rule: a potassium below 3.5 mmol/L (above the built-in critical limit of
/// 3.0, so only this rule sees it). It reads `msg` and `record` and returns an array:
/// empty when nothing is low.
const CUSTOM_RULE: &str = r#"// Hypokalaemia: potassium below 3.5 mmol/L.
var alerts = [];
for (var i = 1; i <= msg.count("OBX"); i++) {
  if (msg.get("OBX[" + i + "]-3.1") !== "2823-3") continue;
  var value = parseFloat(msg.get("OBX[" + i + "]-5"));
  if (value < 3.5) {
    alerts.push({
      key: "2823-3:below-3.5",
      severity: "warning",
      text: "Potassium " + value + " mmol/L, below 3.5",
      evidence: [ { obx: i, value: value, record_resources: record.resources.length,
                    patient_known: typeof record.patient === "string" } ]
    });
  }
}
return alerts;
"#;

const LOW_POTASSIUM: &str = "MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102103000||ORU^R01^ORU_R01|MSG2|P|2.5.1\r\
PID|1||123^^^HOSP^MR||DOE^JANE\r\
OBR|1||F2|2823-3^Potassium^LN|||20240102101500\r\
OBX|1|NM|2823-3^Potassium^LN||3.2|mmol/L|3.5-5.1|L|||F\r";

fn case_with(root: &Path, name: &str, message: &str, expect: &str) {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("in.hl7"), message).unwrap();
    std::fs::write(dir.join("expect.toml"), expect).unwrap();
}

const CHANNEL: &str = "[http]\nenabled = false\n[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\nfhir = { repository = true }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_rule_fires_on_low_potassium_and_not_on_high() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/low-k.js"), CUSTOM_RULE).unwrap();
    let root = dir.path().join("cases");
    case_with(
        &root,
        "low-fires",
        LOW_POTASSIUM,
        "state = \"processed\"\nalerts = [ { rule = \"low-potassium\", key = \"2823-3:below-3.5\" } ]\n",
    );
    // 6.4: the built-in critical value fires, the custom rule does not.
    case_with(
        &root,
        "high-does-not",
        POTASSIUM,
        "state = \"processed\"\nalerts = [ { rule = \"critical-value\", key = \"2823-3:high\" } ]\n",
    );
    let config = Config::from_toml_in(
        &format!(
            "{CHANNEL}[[rules.custom]]\nname = \"low-potassium\"\nscript_file = \"rules/low-k.js\"\n"
        ),
        dir.path(),
    )
    .unwrap();
    let reports = run_cases(&config, &root).await.unwrap();
    for report in &reports {
        assert!(report.passed(), "{report:?}");
    }
    assert_eq!(reports.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_custom_rule_errors_the_message_naming_the_rule_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("broken.js"),
        "var k = msg.get(\"OBX-5\");\nnoSuchFunction(k);\nreturn [];\n",
    )
    .unwrap();
    let root = dir.path().join("cases");
    case_with(
        &root,
        "errored",
        LOW_POTASSIUM,
        "state = \"errored\"\nreason = \"custom rule broken-rule\"\n",
    );
    case_with(
        &root,
        "line",
        LOW_POTASSIUM,
        "state = \"errored\"\nreason = \"line 2\"\n",
    );
    let config = Config::from_toml_in(
        &format!(
            "{CHANNEL}[[rules.custom]]\nname = \"broken-rule\"\nscript_file = \"broken.js\"\n"
        ),
        dir.path(),
    )
    .unwrap();
    let reports = run_cases(&config, &root).await.unwrap();
    for report in &reports {
        assert!(report.passed(), "{report:?}");
    }
}

#[test]
fn a_custom_rule_that_does_not_compile_is_refused_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.js"), "var a = 1;\nreturn (;\n").unwrap();
    let error = Config::from_toml_in(
        &format!("{CHANNEL}[[rules.custom]]\nname = \"bad\"\nscript_file = \"bad.js\"\n"),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("rules.custom[0].script_file"), "{error}");
    assert!(error.contains("line 2"), "{error}");
    let error = Config::from_toml_in(
        &format!("{CHANNEL}[[rules.custom]]\nname = \"gone\"\nscript_file = \"missing.js\"\n"),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(error.contains("rules.custom[0].script_file"), "{error}");
    let error = Config::from_toml_in(
        &format!(
            "{CHANNEL}[[channels.lab.rules.custom]]\nname = \"critical-value\"\nscript_file = \"bad.js\"\n"
        ),
        dir.path(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("channels.lab.rules.custom[0].name"),
        "{error}"
    );
}
