//! The FHIR R4 checks shared by the tests: Bundles piped through the R4B
//! models of `fhir.resources` (PyPI, venv under target/py-venv-fhir) and the
//! validator of the npm `fhir` package (installed under target/npm-fhir),
//! both created on first use.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The venv with fhir.resources, created from PyPI on first use.
pub fn python_with_fhir_resources() -> PathBuf {
    let venv = workspace().join("target/py-venv-fhir");
    let python = venv.join("bin/python");
    let ready = python.exists()
        && Command::new(&python)
            .args(["-c", "import fhir.resources.R4B.bundle"])
            .status()
            .is_ok_and(|s| s.success());
    if !ready {
        let status = Command::new("python3")
            .arg("-m")
            .arg("venv")
            .arg(&venv)
            .status()
            .expect("python3 runs");
        assert!(
            status.success(),
            "python3 -m venv {} failed",
            venv.display()
        );
        let status = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "fhir.resources==8.3.0"])
            .status()
            .expect("pip runs");
        assert!(status.success(), "pip install fhir.resources failed");
    }
    python
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

/// The npm `fhir` package, installed under target/npm-fhir on first use.
fn npm_fhir_dir() -> PathBuf {
    let dir = workspace().join("target/npm-fhir");
    if !dir.join("node_modules/fhir/package.json").exists() {
        std::fs::create_dir_all(&dir).unwrap();
        let status = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg("fhir@4.12.0")
            .status()
            .expect("npm runs");
        assert!(status.success(), "npm install fhir failed");
    }
    dir
}

/// Validates (label, Bundle JSON) pairs with both validators; panics naming
/// every invalid one.
pub fn assert_valid_r4_both(bundles: &[(String, String)]) {
    assert_valid_r4(bundles);
    let dir = npm_fhir_dir();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/validate_bundles.js");
    let mut child = Command::new("node")
        .arg(script)
        .env("NODE_PATH", dir.join("node_modules"))
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
