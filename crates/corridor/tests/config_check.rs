//! `corridor config check FILE` run as a process: every problem of a file is listed,
//! each with its line and key, not only the first the parser meets.

use std::process::{Command, Stdio};

#[test]
fn config_check_lists_every_problem_with_its_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corridor.toml");
    std::fs::write(
        &file,
        r#"[data]
dri = "corridor-data"

[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:2575", lisen = "0.0.0.0:2575" }
filters = [ { path = "MSH-9.1", in = ["ORU"] }, { path = "PID-", exists = true } ]

[[channels.lab.destinations]]
name = "ehr"
type = "mllp"
to = "127.0.0.1:2576"
timout = "30s"

[channels.lab.retention]
max_age = "soon"
"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["config", "check", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let name = file.display().to_string();
    let lines: Vec<&str> = stderr.lines().collect();
    let expected = [
        "line 2: data.dri: unknown field `dri`",
        "line 5: channels.lab.source.lisen: unknown field `lisen`",
        "line 6: channels.lab.filters[1].path: \"PID-\" is not a path",
        "line 12: channels.lab.destinations[0].timout: unknown field `timout`",
        "line 15: channels.lab.retention.max_age: \"soon\" is not a duration",
    ];
    assert_eq!(lines.len(), expected.len(), "{stderr}");
    for (line, expected) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(&format!("{name}: {expected}")),
            "{line:?} should start with {expected:?}\n{stderr}"
        );
    }
}

#[test]
fn a_key_its_step_does_nothing_with_is_named_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corridor.toml");
    std::fs::write(
        &file,
        r#"[channels.lab]
source = { type = "mllp", listen = "127.0.0.1:0" }
transforms = [
    { set = "MSH-5", value = "EHR" },
    { set = "MSH-6", value = "HOSP", to = "MSH-4" },
]

[[channels.lab.destinations]]
name = "ehr"
type = "file"
path = "out"
filters = [ { script = "return true;", equals = "ORU" } ]
"#,
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["config", "check", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let name = file.display().to_string();
    let expected = [
        // A step inside a multi-line array is placed at the array's line.
        format!("{name}: line 3: channels.lab.transforms[1].to: does nothing for set; remove it"),
        format!(
            "{name}: line 12: channels.lab.destinations[0].filters[0].equals: does nothing for a script filter; remove it"
        ),
    ];
    assert_eq!(stderr.lines().collect::<Vec<_>>(), expected, "{stderr}");
}

#[test]
fn a_script_that_does_not_compile_is_named_by_channel_step_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("corridor.toml");
    std::fs::write(
        &file,
        "[channels.lab]\nsource = { type = \"mllp\", listen = \"127.0.0.1:0\" }\n\
         transforms = [ { set = \"MSH-5\", value = \"EHR\" }, { script = \"const a = 1;\\nconst b = ;\" } ]\n",
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_corridor"))
        .args(["config", "check", file.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "line 3: channels.lab.transforms[1]: the script does not compile: Error: unexpected token"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("at line 2, column 10 of the script"),
        "{stderr}"
    );
    assert!(!stderr.contains("eval_script"), "{stderr}");
}
