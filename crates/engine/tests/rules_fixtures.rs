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
