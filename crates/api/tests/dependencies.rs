//! The dependency rules of ARCHITECTURE.md ("Allowed dependencies"), checked against
//! `cargo metadata`: each workspace crate depends (for its build, not its tests) only on
//! the workspace crates its row allows, and HTTP frameworks are reachable only from the
//! crates that serve or send HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Each workspace crate and the workspace crates it may depend on directly. Keep in
/// step with ARCHITECTURE.md.
const ALLOWED: &[(&str, &[&str])] = &[
    ("datetime", &[]),
    ("csvfile", &[]),
    ("conf", &[]),
    ("hl7v2", &["datetime"]),
    ("hl7v2-spec", &["hl7v2"]),
    ("mllp", &["conf"]),
    ("store", &[]),
    ("steps", &["hl7v2", "csvfile"]),
    ("terminology", &["hl7v2", "csvfile", "store"]),
    ("profile", &["hl7v2", "hl7v2-spec", "terminology"]),
    ("rules", &["hl7v2", "datetime", "store", "steps"]),
    ("v2-fhir", &["hl7v2", "datetime"]),
    ("loadgen", &["hl7v2", "mllp"]),
    ("access", &["csvfile", "datetime", "store"]),
    (
        "delivery",
        &[
            "conf", "datetime", "hl7v2", "mllp", "steps", "store", "v2-fhir",
        ],
    ),
    ("alerts", &["conf", "datetime", "delivery", "store"]),
    ("quarantine", &["hl7v2", "hl7v2-spec", "store"]),
    ("console", &["datetime", "hl7v2", "hl7v2-spec"]),
    ("mpi", &["csvfile", "hl7v2", "store", "v2-fhir"]),
    ("fhir-repo", &["datetime", "store", "v2-fhir"]),
    (
        "api",
        &[
            "access",
            "alerts",
            "store",
            "delivery",
            "quarantine",
            "mpi",
            "fhir-repo",
            "rules",
            "terminology",
            "profile",
            "datetime",
            "console",
        ],
    ),
    (
        "engine",
        &[
            "access",
            "alerts",
            "api",
            "conf",
            "datetime",
            "delivery",
            "fhir-repo",
            "hl7v2",
            "hl7v2-spec",
            "mllp",
            "mpi",
            "quarantine",
            "rules",
            "steps",
            "store",
            "terminology",
            "profile",
            "v2-fhir",
        ],
    ),
    (
        "corridor",
        &[
            "engine",
            "access",
            "alerts",
            "api",
            "conf",
            "csvfile",
            "datetime",
            "loadgen",
            "delivery",
            "fhir-repo",
            "hl7v2",
            "hl7v2-spec",
            "mllp",
            "mpi",
            "quarantine",
            "rules",
            "steps",
            "store",
            "terminology",
            "profile",
            "v2-fhir",
        ],
    ),
    // Helpers for tests only: a dev-dependency, never a build one.
    ("test-support", &[]),
];

/// HTTP server and client frameworks.
const HTTP_FRAMEWORKS: &[&str] = &[
    "axum",
    "axum-core",
    "hyper",
    "hyper-util",
    "tower",
    "tower-service",
    "tower-http",
    "http",
    "http-body",
    "http-body-util",
];

/// The crates that serve or send HTTP, and so may reach an HTTP framework: the API,
/// the engine (its HTTP source and the server under both), delivery (HTTP and FHIR
/// destinations), access (it fetches an OpenID Connect issuer's keys), alerts (its
/// webhook posts through delivery's HTTP client) and the binary above them.
const SPEAKS_HTTP: &[&str] = &["access", "alerts", "api", "engine", "delivery", "corridor"];

/// The crates that talk to NATS JetStream directly: delivery (the `nats` destination and
/// the connection keys in `delivery::nats`) and the engine (the `nats` source).
const SPEAKS_NATS: &[&str] = &["delivery", "engine"];

struct Graph {
    /// Workspace crate names.
    members: BTreeSet<String>,
    /// Package name -> the names of its normal (build) dependencies.
    normal: BTreeMap<String, BTreeSet<String>>,
}

/// The triple of the machine running the test, as rustc names it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// The graph, read once for every test of this file (`cargo metadata` takes seconds).
fn metadata() -> &'static Graph {
    static GRAPH: std::sync::OnceLock<Graph> = std::sync::OnceLock::new();
    GRAPH.get_or_init(read_metadata)
}

fn read_metadata() -> Graph {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // Only this platform's packages: offline, cargo cannot read the manifests of
    // platform-specific crates a build here never downloaded (Windows console crates).
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--offline",
            "--filter-platform",
        ])
        .arg(host_triple())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let meta: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata is JSON");
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    let members = meta["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| name_of[id.as_str().unwrap()].to_owned())
        .collect();
    let mut normal: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().unwrap() {
        let name = name_of[node["id"].as_str().unwrap()].to_owned();
        let deps = node["deps"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["dep_kinds"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|k| k["kind"].is_null())
            })
            .map(|d| name_of[d["pkg"].as_str().unwrap()].to_owned())
            .collect();
        // Versions of one crate share a name: their dependencies are unioned.
        normal
            .entry(name)
            .or_default()
            .extend::<BTreeSet<String>>(deps);
    }
    Graph { members, normal }
}

impl Graph {
    /// Every crate `name` builds with, directly or not.
    fn reachable(&self, name: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![name.to_owned()];
        while let Some(next) = todo.pop() {
            for dep in self.normal.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }
}

#[test]
fn every_workspace_crate_depends_only_on_what_architecture_allows() {
    let graph = metadata();
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut problems = Vec::new();
    for member in &graph.members {
        let Some(may) = allowed.get(member.as_str()) else {
            problems.push(format!(
                "{member} is not in the allowed-dependencies table (ARCHITECTURE.md and this test)"
            ));
            continue;
        };
        for dep in graph.normal.get(member).into_iter().flatten() {
            if graph.members.contains(dep) && !may.contains(&dep.as_str()) {
                problems.push(format!("{member} depends on {dep}, which it must not"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn only_the_crates_that_speak_http_reach_an_http_framework() {
    let graph = metadata();
    let mut problems = Vec::new();
    for member in &graph.members {
        if SPEAKS_HTTP.contains(&member.as_str()) {
            continue;
        }
        for framework in graph
            .reachable(member)
            .intersection(&HTTP_FRAMEWORKS.iter().map(|f| (*f).to_owned()).collect())
        {
            problems.push(format!("{member} builds with {framework}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn nothing_below_the_engine_depends_on_it() {
    let graph = metadata();
    let above: BTreeSet<&str> = ["engine", "corridor"].into();
    for member in &graph.members {
        if above.contains(member.as_str()) {
            continue;
        }
        assert!(
            !graph.reachable(member).contains("engine"),
            "{member} depends on engine"
        );
    }
}

/// Issue 13's budget: access control adds nothing to MLLP ingest. It cannot: the
/// crates a received message passes through (`mllp` reads the frame and checks the
/// listener's `allow_from`/`allow_subjects` once per connection, `store` journals it)
/// do not build with `access`, and the engine's intake path (its sources, the intake
/// and the pipeline) never names it. Only the HTTP layer (`api`, `engine`'s
/// lifecycle wiring it up) and the audit retention task use `access`.
///
/// Read from the manifests themselves (not `cargo metadata`, which needs every
/// platform's crates at hand): a crate's `[dependencies]` keys that name a workspace
/// crate, followed to the bottom.
#[test]
fn the_mllp_intake_path_never_reaches_access_control() {
    let crates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let workspace_deps = |name: &str| -> Vec<String> {
        let manifest = std::fs::read_to_string(crates.join(name).join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{name}/Cargo.toml: {e}"));
        let mut in_deps = false;
        let mut deps = Vec::new();
        for line in manifest.lines().map(str::trim) {
            if line.starts_with('[') {
                in_deps = line == "[dependencies]";
                continue;
            }
            let key = line
                .split(['=', '.', ' '])
                .next()
                .unwrap_or_default()
                .trim();
            if in_deps && !key.is_empty() && crates.join(key).join("Cargo.toml").exists() {
                deps.push(key.to_owned());
            }
        }
        deps
    };
    for member in ["mllp", "store", "hl7v2", "steps", "delivery"] {
        let mut seen = BTreeSet::new();
        let mut todo = vec![member.to_owned()];
        while let Some(next) = todo.pop() {
            for dep in workspace_deps(&next) {
                if seen.insert(dep.clone()) {
                    todo.push(dep);
                }
            }
        }
        assert!(
            !seen.contains("access"),
            "{member} builds with access: the MLLP intake path would pay for it"
        );
        // The check itself reads the manifests: `delivery` reaches `mllp` and `store`.
        if member == "delivery" {
            assert!(seen.contains("mllp") && seen.contains("store"), "{seen:?}");
        }
    }
    // And the direction that matters exists: `api` builds with `access`.
    assert!(workspace_deps("api").contains(&"access".to_owned()));
    let engine = crates.join("engine/src");
    let mut intake_files = vec![
        engine.join("intake.rs"),
        engine.join("pipeline.rs"),
        engine.join("application_ack.rs"),
    ];
    for entry in std::fs::read_dir(engine.join("sources")).expect("engine/src/sources") {
        intake_files.push(entry.expect("a source file").path());
    }
    for file in &intake_files {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        for word in ["access::", "Audit", "Principal"] {
            assert!(
                !text.contains(word),
                "{} names {word}: the intake path must not touch access control",
                file.display()
            );
        }
    }
}

#[test]
fn only_delivery_and_the_engine_use_the_nats_client_directly() {
    let graph = metadata();
    let problems: Vec<String> = graph
        .members
        .iter()
        .filter(|member| !SPEAKS_NATS.contains(&member.as_str()))
        .filter(|member| {
            graph
                .normal
                .get(*member)
                .is_some_and(|deps| deps.contains("async-nats"))
        })
        .map(|member| format!("{member} depends on async-nats, which only delivery and engine may"))
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
