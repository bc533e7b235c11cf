//! FHIR R4 checks for the tests of the converter and the repository: Bundles
//! piped through the R4B models of `fhir.resources` (PyPI, venv `fhir`) and
//! the validator of the npm `fhir` package, both made on first use; and the
//! `fhirpy` client (venv `fhirpy`) for the repository's API. The
//! validation scripts are `crates/v2-fhir/tests/validate_bundles.{py,js}`,
//! found from the workspace root.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::workspace;

/// The venv with fhir.resources, created from PyPI on first use.
pub fn python_with_fhir_resources() -> PathBuf {
    crate::python_peer("fhir")
}

/// The venv with the fhirpy client (PyPI), created on first use: the
/// repository's API driven by a FHIR client library people use.
pub fn python_with_fhirpy() -> PathBuf {
    crate::python_peer("fhirpy")
}

/// A validation script of the converter's tests, by its file name.
fn script(name: &str) -> PathBuf {
    workspace().join("crates/v2-fhir/tests").join(name)
}

/// Runs `command` with one `label<TAB>json` line per Bundle on its input;
/// panics with its output unless it validated them all.
fn run_validator(mut command: Command, bundles: &[(String, String)], what: &str) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start the {what} validator: {e}"));
    {
        let mut stdin = child.stdin.take().expect("piped stdin");
        for (label, json) in bundles {
            writeln!(stdin, "{label}\t{json}").expect("the validator reads its input");
        }
    }
    let output = child
        .wait_with_output()
        .expect("the validator runs to its end");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "invalid FHIR Bundles ({what}):\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("validated {} bundles, 0 invalid", bundles.len())),
        "{stderr}"
    );
}

/// Validates (label, Bundle JSON) pairs with fhir.resources; panics naming
/// every invalid one.
pub fn assert_valid_r4(bundles: &[(String, String)]) {
    let mut command = Command::new(python_with_fhir_resources());
    command.arg(script("validate_bundles.py"));
    run_validator(command, bundles, "fhir.resources");
}

/// Validates (label, Bundle JSON) pairs with both validators; panics naming
/// every invalid one.
pub fn assert_valid_r4_both(bundles: &[(String, String)]) {
    assert_valid_r4(bundles);
    let modules = crate::npm_peer("fhir");
    let mut command = Command::new("node");
    command
        .arg(script("validate_bundles.js"))
        .env("NODE_PATH", modules);
    run_validator(command, bundles, "npm fhir");
}
