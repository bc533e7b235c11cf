//! The FHIR R4 checks shared by the tests: Bundles piped through the R4B
//! models of `fhir.resources` (PyPI, venv under target/py-venv-fhir) and the
//! validator of the npm `fhir` package (installed under target/npm-fhir),
//! both created on first use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The venv with fhir.resources, created from PyPI on first use.
pub fn python_with_fhir_resources() -> PathBuf {
    test_support::python_venv(
        "fhir",
        &["fhir.resources==8.3.0"],
        "import fhir.resources.R4B.bundle",
    )
}

/// Validates (label, Bundle JSON) pairs; panics naming every invalid one.
pub fn assert_valid_r4(bundles: &[(String, String)]) {
    let python = python_with_fhir_resources();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_bundles.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for (label, json) in bundles {
            writeln!(stdin, "{label}\t{json}").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "invalid FHIR Bundles:\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("validated {} bundles, 0 invalid", bundles.len())),
        "{stderr}"
    );
}

/// Validates (label, Bundle JSON) pairs with both validators; panics naming
/// every invalid one.
pub fn assert_valid_r4_both(bundles: &[(String, String)]) {
    assert_valid_r4(bundles);
    let modules = test_support::npm_packages("fhir", &["fhir@4.12.0"], "fhir/package.json");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_bundles.js");
    let mut child = Command::new("node")
        .arg(script)
        .env("NODE_PATH", modules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for (label, json) in bundles {
            writeln!(stdin, "{label}\t{json}").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "invalid FHIR Bundles (npm fhir):\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("validated {} bundles, 0 invalid", bundles.len())),
        "{stderr}"
    );
}
