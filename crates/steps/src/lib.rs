//! The filter and transformer steps of a Corridor channel.
//!
//! A channel (and each of its destinations) has an ordered list of filters
//! and an ordered list of transformers. Filters decide whether a message goes
//! on; transformers change it. Everyday cases are declarative (match a path
//! against a value, a set or a regular expression; set, copy, clear, delete,
//! map through a CSV table, rename a Z-segment); everything else is a
//! JavaScript step run in a sandbox ([`script`]).
//!
//! ```
//! use steps::{Chain, FilterConfig, Outcome, TransformConfig};
//!
//! let filters: Vec<FilterConfig> = toml::from_str::<toml::Table>(r#"f = [ { path = "MSH-9.1", in = ["ORU"] } ]"#)
//!     .unwrap()["f"].clone().try_into().unwrap();
//! let transforms: Vec<TransformConfig> =
//!     toml::from_str::<toml::Table>(r#"t = [ { set = "MSH-5", value = "EHR" } ]"#).unwrap()["t"].clone().try_into().unwrap();
//! let chain = Chain::compile(&filters, &transforms, std::path::Path::new(".")).unwrap();
//!
//! let msg = hl7v2::OwnedMessage::parse(b"MSH|^~\\&|LAB|H|||2024||ORU^R01|1|P|2.5\r").unwrap();
//! let Outcome::Pass(out) = chain.run(msg) else { panic!() };
//! assert_eq!(out.get_text(&"MSH-5".parse().unwrap()).as_deref(), Some("EHR"));
//! ```

use std::collections::{HashMap, HashSet};
use std::path::Path as FsPath;

use hl7v2::{OwnedMessage, Path};
use regex::Regex;
use serde::Deserialize;

pub mod script;

pub use script::{Limits, Returned, Script};

/// Why a step could not be built or could not run.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The step's configuration is wrong; the text names the key.
    #[error("{0}")]
    Config(String),
    /// The step failed on a message.
    #[error("{0}")]
    Run(String),
    #[error("{0}")]
    Script(String),
}

/// One value or several, as a configuration file may give either.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(v) => vec![v],
            OneOrMany::Many(v) => v,
        }
    }
}

/// A filter as written in the configuration. Give one subject (`path`, or a
/// shorthand: `message_type` = MSH-9.1, `trigger` = MSH-9.2, `sender` =
/// MSH-3.1, `facility` = MSH-4.1) with one test (`equals`, `not_equals`,
/// `in`, `not_in`, `matches`, `exists`), or a `script` that returns true to
/// keep the message. A message goes on when every filter keeps it.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// A name to report when this filter stops a message.
    pub name: Option<String>,
    pub path: Option<String>,
    pub message_type: Option<OneOrMany>,
    pub trigger: Option<OneOrMany>,
    pub sender: Option<OneOrMany>,
    pub facility: Option<OneOrMany>,
    pub equals: Option<String>,
    pub not_equals: Option<String>,
    #[serde(rename = "in")]
    pub in_: Option<Vec<String>>,
    pub not_in: Option<Vec<String>>,
    pub matches: Option<String>,
    pub exists: Option<bool>,
    /// JavaScript: the body of `function (msg) { ... }`, returning a boolean.
    pub script: Option<String>,
    /// A file holding the script, relative to the configuration file.
    pub script_file: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<usize>,
}

/// A transformer as written in the configuration. Exactly one action:
/// `set` (with `value`), `copy` (with `to`), `clear`, `delete`,
/// `delete_segments`, `map` (with `table`, and optionally `missing` =
/// keep/clear/default/error and `default`), `rename_segment` (with `to`),
/// or `script` / `script_file`.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    pub name: Option<String>,
    pub set: Option<String>,
    pub value: Option<String>,
    pub copy: Option<String>,
    pub to: Option<String>,
    pub clear: Option<String>,
    pub delete: Option<String>,
    pub delete_segments: Option<String>,
    pub map: Option<String>,
    pub table: Option<String>,
    pub missing: Option<String>,
    pub default: Option<String>,
    pub rename_segment: Option<String>,
    pub script: Option<String>,
    pub script_file: Option<String>,
    pub timeout_ms: Option<u64>,
    pub memory_mb: Option<usize>,
}

impl TransformConfig {
    /// The action this transformer names (`set`, `copy`, ..., `script`), if exactly one.
    fn action(&self) -> Option<&'static str> {
        let named = [
            ("set", self.set.is_some()),
            ("copy", self.copy.is_some()),
            ("clear", self.clear.is_some()),
            ("delete", self.delete.is_some()),
            ("delete_segments", self.delete_segments.is_some()),
            ("map", self.map.is_some()),
            ("rename_segment", self.rename_segment.is_some()),
            (
                "script",
                self.script.is_some() || self.script_file.is_some(),
            ),
        ];
        let mut given = named.iter().filter(|(_, given)| *given);
        match (given.next(), given.next()) {
            (Some((action, _)), None) => Some(action),
            _ => None,
        }
    }

    /// A key its action does not use (`to` on a `set`) is an error naming the key, not
    /// quietly ignored.
    fn refuse_stray_keys(&self) -> Result<(), StepError> {
        let Some(action) = self.action() else {
            return Ok(());
        };
        let uses: &[&str] = match action {
            "set" => &["value"],
            "copy" | "rename_segment" => &["to"],
            "map" => &["table", "missing", "default"],
            "script" => &["timeout_ms", "memory_mb"],
            _ => &[],
        };
        let given = [
            ("value", self.value.is_some()),
            ("to", self.to.is_some()),
            ("table", self.table.is_some()),
            ("missing", self.missing.is_some()),
            ("default", self.default.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
            ("memory_mb", self.memory_mb.is_some()),
        ];
        stray_key(&given, uses, action)
    }
}

impl FilterConfig {
    /// A key the filter does not use is an error naming the key: a script filter takes
    /// no subject or test, a path filter no script limits.
    fn refuse_stray_keys(&self) -> Result<(), StepError> {
        let given = [
            ("path", self.path.is_some()),
            ("message_type", self.message_type.is_some()),
            ("trigger", self.trigger.is_some()),
            ("sender", self.sender.is_some()),
            ("facility", self.facility.is_some()),
            ("equals", self.equals.is_some()),
            ("not_equals", self.not_equals.is_some()),
            ("in", self.in_.is_some()),
            ("not_in", self.not_in.is_some()),
            ("matches", self.matches.is_some()),
            ("exists", self.exists.is_some()),
            ("timeout_ms", self.timeout_ms.is_some()),
            ("memory_mb", self.memory_mb.is_some()),
        ];
        if self.script.is_some() || self.script_file.is_some() {
            stray_key(&given, &["timeout_ms", "memory_mb"], "a script filter")
        } else {
            let tests = &given[..given.len() - 2];
            let uses: Vec<&str> = tests.iter().map(|(key, _)| *key).collect();
            stray_key(&given, &uses, "a filter without a script")
        }
    }
}

/// The first key of `given` that is set and not one `uses`, as `KEY: does nothing for
/// WHAT; remove it`.
fn stray_key(given: &[(&str, bool)], uses: &[&str], what: &str) -> Result<(), StepError> {
    match given.iter().find(|(key, set)| *set && !uses.contains(key)) {
        Some((key, _)) => Err(StepError::Config(format!(
            "{key}: does nothing for {what}; remove it"
        ))),
        None => Ok(()),
    }
}

/// A test on one value.
#[derive(Debug)]
enum Test {
    Equals(String),
    NotEquals(String),
    In(HashSet<String>),
    NotIn(HashSet<String>),
    Matches(Regex),
    Exists(bool),
}

impl Test {
    fn passes(&self, value: Option<&str>) -> bool {
        let v = value.unwrap_or("");
        match self {
            Test::Equals(x) => v == x,
            Test::NotEquals(x) => v != x,
            Test::In(set) => set.contains(v),
            Test::NotIn(set) => !set.contains(v),
            Test::Matches(re) => re.is_match(v),
            Test::Exists(want) => value.is_some_and(|v| !v.is_empty()) == *want,
        }
    }
}

#[derive(Debug)]
enum FilterKind {
    Path(Path, Test),
    Script(Script),
}

/// A compiled filter.
#[derive(Debug)]
pub struct Filter {
    name: String,
    kind: FilterKind,
}

impl Filter {
    /// Builds a filter; errors name the offending key.
    pub fn compile(config: &FilterConfig, base: &FsPath) -> Result<Filter, StepError> {
        let bad = |why: String| StepError::Config(why);
        config.refuse_stray_keys()?;
        if let Some(source) = script_source(
            config.script.as_deref(),
            config.script_file.as_deref(),
            base,
        )? {
            let script = Script::new(
                &source,
                Limits::from_config(config.timeout_ms, config.memory_mb)?,
            )?;
            return Ok(Filter {
                name: config.name.clone().unwrap_or_else(|| "script".to_string()),
                kind: FilterKind::Script(script),
            });
        }
        let subjects: Vec<(&str, String, Option<Vec<String>>)> = [
            ("path", config.path.clone().map(|p| (p, None))),
            (
                "message_type",
                config
                    .message_type
                    .clone()
                    .map(|v| ("MSH-9.1".to_string(), Some(v.into_vec()))),
            ),
            (
                "trigger",
                config
                    .trigger
                    .clone()
                    .map(|v| ("MSH-9.2".to_string(), Some(v.into_vec()))),
            ),
            (
                "sender",
                config
                    .sender
                    .clone()
                    .map(|v| ("MSH-3.1".to_string(), Some(v.into_vec()))),
            ),
            (
                "facility",
                config
                    .facility
                    .clone()
                    .map(|v| ("MSH-4.1".to_string(), Some(v.into_vec()))),
            ),
        ]
        .into_iter()
        .filter_map(|(key, v)| v.map(|(path, values)| (key, path, values)))
        .collect();
        let [(key, path_text, shorthand)] = subjects.as_slice() else {
            return Err(bad(
                "a filter needs exactly one of path, message_type, trigger, sender, facility, script or script_file"
                    .to_string(),
            ));
        };
        let path = path_key(key, path_text)?;
        let mut tests = Vec::new();
        if let Some(values) = shorthand {
            tests.push(Test::In(values.iter().cloned().collect()));
        }
        if let Some(v) = &config.equals {
            tests.push(Test::Equals(v.clone()));
        }
        if let Some(v) = &config.not_equals {
            tests.push(Test::NotEquals(v.clone()));
        }
        if let Some(v) = &config.in_ {
            tests.push(Test::In(v.iter().cloned().collect()));
        }
        if let Some(v) = &config.not_in {
            tests.push(Test::NotIn(v.iter().cloned().collect()));
        }
        if let Some(v) = &config.matches {
            let re = Regex::new(v)
                .map_err(|e| bad(format!("matches: {v:?} is not a regular expression: {e}")))?;
            tests.push(Test::Matches(re));
        }
        if let Some(v) = config.exists {
            tests.push(Test::Exists(v));
        }
        let test = match tests.len() {
            1 => tests.pop().ok_or_else(|| bad("no test".into()))?,
            0 => {
                return Err(bad(format!(
                    "the filter on {key} needs one of equals, not_equals, in, not_in, matches or exists"
                )));
            }
            _ => {
                return Err(bad(format!(
                    "the filter on {key} has more than one test; write one filter per test"
                )));
            }
        };
        let name = config
            .name
            .clone()
            .unwrap_or_else(|| describe(key, path_text, &test));
        Ok(Filter {
            name,
            kind: FilterKind::Path(path, test),
        })
    }

    /// The name this filter is reported by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the message goes on.
    pub fn keeps(&self, message: &mut OwnedMessage) -> Result<bool, StepError> {
        self.keeps_with(message, &Vars::default())
    }

    /// Like [`Filter::keeps`], with what the engine knows of the message.
    pub fn keeps_with(&self, message: &mut OwnedMessage, vars: &Vars) -> Result<bool, StepError> {
        match &self.kind {
            FilterKind::Path(path, test) => Ok(test.passes(message.get_text(path).as_deref())),
            FilterKind::Script(script) => match script.run_with(message, vars)? {
                Returned::Bool(keep) => Ok(keep),
                Returned::Nothing => Err(StepError::Script(
                    "the filter script returned nothing; return true to keep the message, false to filter it".into(),
                )),
                Returned::Other(kind) => Err(StepError::Script(format!(
                    "the filter script returned a {kind}, not true or false"
                ))),
                Returned::Json(_) => Err(StepError::Script(
                    "the filter script returned a value, not true or false".into(),
                )),
            },
        }
    }
}

fn describe(key: &str, path: &str, test: &Test) -> String {
    let subject = if key == "path" {
        path.to_string()
    } else {
        key.to_string()
    };
    match test {
        Test::Equals(v) => format!("{subject} = {v:?}"),
        Test::NotEquals(v) => format!("{subject} != {v:?}"),
        Test::In(set) | Test::NotIn(set) => {
            let mut values: Vec<&String> = set.iter().collect();
            values.sort();
            let op = if matches!(test, Test::In(_)) {
                "in"
            } else {
                "not in"
            };
            format!("{subject} {op} {values:?}")
        }
        Test::Matches(re) => format!("{subject} matches {:?}", re.as_str()),
        Test::Exists(true) => format!("{subject} exists"),
        Test::Exists(false) => format!("{subject} is absent"),
    }
}

fn script_source(
    inline: Option<&str>,
    file: Option<&str>,
    base: &FsPath,
) -> Result<Option<String>, StepError> {
    match (inline, file) {
        (Some(_), Some(_)) => Err(StepError::Config(
            "give script or script_file, not both".into(),
        )),
        (Some(s), None) => Ok(Some(s.to_string())),
        (None, Some(f)) => {
            let path = base.join(f);
            std::fs::read_to_string(&path).map(Some).map_err(|e| {
                StepError::Config(format!("script_file: cannot read {}: {e}", path.display()))
            })
        }
        (None, None) => Ok(None),
    }
}

/// What a map step does with a value that is not in its table.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Missing {
    Keep,
    Clear,
    Default(String),
    Error,
}

#[derive(Debug)]
enum Action {
    Set(Path, String),
    Copy(Path, Path),
    Clear(Path),
    Delete(Path),
    DeleteSegments(String),
    Map {
        path: Path,
        table: HashMap<String, String>,
        missing: Missing,
        table_name: String,
    },
    RenameSegment(String, String),
    Script(Script),
}

/// A compiled transformer.
#[derive(Debug)]
pub struct Transform {
    name: String,
    action: Action,
}

/// A path naming one value: filters and transformers read and write one value, so
/// `[*]` (every occurrence or repetition) is refused rather than quietly read as the first.
fn path_key(key: &str, text: &str) -> Result<Path, StepError> {
    let path: Path = text
        .parse()
        .map_err(|e: hl7v2::Error| StepError::Config(format!("{key}: {e}")))?;
    if path.selects_many() {
        return Err(StepError::Config(format!(
            "{key}: {text} selects every occurrence or repetition ([*]); a filter or transformer needs a path to one value"
        )));
    }
    Ok(path)
}

impl Transform {
    /// Builds a transformer; errors name the offending key.
    pub fn compile(config: &TransformConfig, base: &FsPath) -> Result<Transform, StepError> {
        let bad = |why: &str| StepError::Config(why.to_string());
        let actions = [
            config.set.is_some(),
            config.copy.is_some(),
            config.clear.is_some(),
            config.delete.is_some(),
            config.delete_segments.is_some(),
            config.map.is_some(),
            config.rename_segment.is_some(),
            config.script.is_some() || config.script_file.is_some(),
        ];
        if actions.iter().filter(|a| **a).count() != 1 {
            return Err(bad(
                "a transformer needs exactly one of set, copy, clear, delete, delete_segments, map, rename_segment, script or script_file",
            ));
        }
        let need = |key: &str, v: &Option<String>| {
            v.clone()
                .ok_or_else(|| StepError::Config(format!("{key} is missing")))
        };
        config.refuse_stray_keys()?;
        let (action, label) = if let Some(p) = &config.set {
            let value = need("value (for set)", &config.value)?;
            (
                Action::Set(path_key("set", p)?, value.clone()),
                format!("set {p} = {value:?}"),
            )
        } else if let Some(p) = &config.copy {
            let to = need("to (for copy)", &config.to)?;
            (
                Action::Copy(path_key("copy", p)?, path_key("to", &to)?),
                format!("copy {p} to {to}"),
            )
        } else if let Some(p) = &config.clear {
            (Action::Clear(path_key("clear", p)?), format!("clear {p}"))
        } else if let Some(p) = &config.delete {
            (
                Action::Delete(path_key("delete", p)?),
                format!("delete {p}"),
            )
        } else if let Some(name) = &config.delete_segments {
            hl7v2::SegmentName::new(name.as_bytes()).ok_or_else(|| {
                StepError::Config(format!("delete_segments: {name:?} is not a segment name"))
            })?;
            (
                Action::DeleteSegments(name.clone()),
                format!("delete segments {name}"),
            )
        } else if let Some(p) = &config.map {
            let table_name = need("table (for map)", &config.table)?;
            let table = load_table(&base.join(&table_name))?;
            let missing = match (config.missing.as_deref(), &config.default) {
                (None | Some("keep"), None) => Missing::Keep,
                (Some("clear"), None) => Missing::Clear,
                (Some("error"), None) => Missing::Error,
                (None | Some("default"), Some(d)) => Missing::Default(d.clone()),
                (Some("default"), None) => {
                    return Err(bad("missing = \"default\" needs a default value"));
                }
                (Some(other), _) => {
                    return Err(StepError::Config(format!(
                        "missing: {other:?} is not one of keep, clear, default, error"
                    )));
                }
            };
            (
                Action::Map {
                    path: path_key("map", p)?,
                    table,
                    missing,
                    table_name: table_name.clone(),
                },
                format!("map {p} through {table_name}"),
            )
        } else if let Some(from) = &config.rename_segment {
            let to = need("to (for rename_segment)", &config.to)?;
            for (key, name) in [("rename_segment", from), ("to", &to)] {
                hl7v2::SegmentName::new(name.as_bytes()).ok_or_else(|| {
                    StepError::Config(format!("{key}: {name:?} is not a segment name"))
                })?;
            }
            (
                Action::RenameSegment(from.clone(), to.clone()),
                format!("rename {from} to {to}"),
            )
        } else {
            let source = script_source(
                config.script.as_deref(),
                config.script_file.as_deref(),
                base,
            )?
            .ok_or_else(|| bad("script is missing"))?;
            (
                Action::Script(Script::new(
                    &source,
                    Limits::from_config(config.timeout_ms, config.memory_mb)?,
                )?),
                "script".to_string(),
            )
        };
        Ok(Transform {
            name: config.name.clone().unwrap_or(label),
            action,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Changes the message.
    pub fn apply(&self, message: &mut OwnedMessage) -> Result<(), StepError> {
        self.apply_with(message, &Vars::default())
    }

    /// Like [`Transform::apply`], with what the engine knows of the message.
    pub fn apply_with(&self, message: &mut OwnedMessage, vars: &Vars) -> Result<(), StepError> {
        let run = |r: hl7v2::Result<()>| r.map_err(|e| StepError::Run(e.to_string()));
        match &self.action {
            Action::Set(path, value) if value.contains(ENTERPRISE_ID) => {
                let Some(id) = vars.enterprise_id.as_deref() else {
                    return Err(StepError::Run(format!(
                        "{ENTERPRISE_ID} is not known for this message (the patient index is off, or the message has no patient identifier)"
                    )));
                };
                run(message.set_text(path, &value.replace(ENTERPRISE_ID, id)))
            }
            Action::Set(path, value) => run(message.set_text(path, value)),
            Action::Copy(from, to) => {
                let raw = message
                    .get(from)
                    .map(|e| e.raw().to_vec())
                    .unwrap_or_default();
                run(message.set_raw(to, &raw))
            }
            Action::Clear(path) => {
                if message.get(path).is_some() {
                    run(message.set_raw(path, b""))
                } else {
                    Ok(())
                }
            }
            Action::Delete(path) => run(message.delete(path)),
            Action::DeleteSegments(name) => {
                let path: Path = name
                    .parse()
                    .map_err(|e: hl7v2::Error| StepError::Run(e.to_string()))?;
                while message.segment_names().any(|n| n == name.as_bytes()) {
                    run(message.delete(&path))?;
                }
                Ok(())
            }
            Action::Map {
                path,
                table,
                missing,
                table_name,
            } => {
                let Some(value) = message.get_text(path) else {
                    return Ok(());
                };
                match (table.get(&value), missing) {
                    (Some(mapped), _) => run(message.set_text(path, mapped)),
                    (None, Missing::Keep) => Ok(()),
                    (None, Missing::Clear) => run(message.set_raw(path, b"")),
                    (None, Missing::Default(d)) => run(message.set_text(path, d)),
                    (None, Missing::Error) => Err(StepError::Run(format!(
                        "the value at {path} is not in the table {table_name}"
                    ))),
                }
            }
            Action::RenameSegment(from, to) => {
                let path: Path = from
                    .parse()
                    .map_err(|e: hl7v2::Error| StepError::Run(e.to_string()))?;
                while message.segment_names().any(|n| n == from.as_bytes()) {
                    run(message.rename_segment(&path, to))?;
                }
                Ok(())
            }
            Action::Script(script) => script.run_with(message, vars).map(|_| ()),
        }
    }
}

/// The placeholder a `set` value may hold for the enterprise patient id.
const ENTERPRISE_ID: &str = "{enterprise_id}";

/// Reads a lookup table: a CSV file of `from,to` rows. A first row of
/// `from,to` (any case) is taken as a header; blank lines and lines starting
/// with `#` are skipped; a value may be quoted to hold a comma.
pub fn load_table(path: &FsPath) -> Result<HashMap<String, String>, StepError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StepError::Config(format!("table: cannot read {}: {e}", path.display())))?;
    let mut table = HashMap::new();
    for row in csvfile::rows(&text, true) {
        let problem = |why: &str| {
            StepError::Config(format!(
                "table {}: line {}: {why}",
                path.display(),
                row.line
            ))
        };
        let cells = row.fields.map_err(|e| problem(&e.to_string()))?;
        if cells.len() < 2 {
            return Err(problem("expected two columns, from and to"));
        }
        if row.line == 1
            && cells[0].eq_ignore_ascii_case("from")
            && cells[1].eq_ignore_ascii_case("to")
        {
            continue;
        }
        table.insert(cells[0].clone(), cells[1].clone());
    }
    Ok(table)
}

/// What the engine knows about a message beyond its bytes, for the steps to use.
///
/// - `set` values may hold `{enterprise_id}`, replaced by the patient index's id;
/// - scripts see the global `enterpriseId` (a string, or `null`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Vars {
    /// The enterprise patient id the master patient index linked the message to.
    pub enterprise_id: Option<String>,
}

/// What became of a message after a chain of steps.
#[derive(Debug)]
pub enum Outcome {
    /// It passed every filter and was transformed.
    Pass(OwnedMessage),
    /// A filter stopped it.
    Filtered { filter: String },
    /// A step failed.
    Error { step: String, error: StepError },
}

/// A channel's (or a destination's) filters, then its transformers.
#[derive(Debug, Default)]
pub struct Chain {
    filters: Vec<Filter>,
    transforms: Vec<Transform>,
    /// How large a step may make the message; see [`Chain::with_max_message_size`].
    max_message_size: Option<usize>,
}

impl Chain {
    /// Builds every step; an error names the step (`filters[1]: ...`).
    /// `base` is where relative file names (tables, scripts) are found.
    pub fn compile(
        filters: &[FilterConfig],
        transforms: &[TransformConfig],
        base: &FsPath,
    ) -> Result<Chain, StepError> {
        let prefix =
            |key: &str, i: usize, e: StepError| StepError::Config(format!("{key}[{i}]: {e}"));
        Ok(Chain {
            filters: filters
                .iter()
                .enumerate()
                .map(|(i, f)| Filter::compile(f, base).map_err(|e| prefix("filters", i, e)))
                .collect::<Result<_, _>>()?,
            transforms: transforms
                .iter()
                .enumerate()
                .map(|(i, t)| Transform::compile(t, base).map_err(|e| prefix("transforms", i, e)))
                .collect::<Result<_, _>>()?,
            max_message_size: None,
        })
    }

    /// After each step that may change the message (a transformer, a script filter), the
    /// message may be at most `bytes` long, unless it was longer when the step began and
    /// the step did not grow it; past that, the step fails.
    pub fn with_max_message_size(mut self, bytes: usize) -> Chain {
        self.max_message_size = Some(bytes);
        self
    }

    /// The size of `message` when a step may have grown it past the maximum: an error
    /// naming the sizes, or the size to compare the next step with.
    fn check_size(&self, message: &OwnedMessage, before: usize) -> Result<usize, StepError> {
        let Some(max) = self.max_message_size else {
            return Ok(before);
        };
        let size = message.to_bytes().len();
        if size > max && size > before {
            return Err(StepError::Run(format!(
                "the step made the message {size} bytes long, more than the channel's max_message_size of {max} bytes"
            )));
        }
        Ok(size)
    }

    pub fn is_empty(&self) -> bool {
        self.filters.is_empty() && self.transforms.is_empty()
    }

    /// Runs the filters, then the transformers.
    pub fn run(&self, message: OwnedMessage) -> Outcome {
        self.run_with(message, &Vars::default())
    }

    /// Like [`Chain::run`], with what the engine knows of the message.
    pub fn run_with(&self, mut message: OwnedMessage, vars: &Vars) -> Outcome {
        let mut size = match self.max_message_size {
            Some(_) => message.to_bytes().len(),
            None => 0,
        };
        for filter in &self.filters {
            let step = || format!("filter {}", filter.name());
            match filter.keeps_with(&mut message, vars) {
                Ok(true) => {}
                Ok(false) => {
                    return Outcome::Filtered {
                        filter: filter.name().to_string(),
                    };
                }
                Err(error) => {
                    return Outcome::Error {
                        step: step(),
                        error,
                    };
                }
            }
            if matches!(filter.kind, FilterKind::Script(_)) {
                size = match self.check_size(&message, size) {
                    Ok(size) => size,
                    Err(error) => {
                        return Outcome::Error {
                            step: step(),
                            error,
                        };
                    }
                };
            }
        }
        for transform in &self.transforms {
            let checked = transform
                .apply_with(&mut message, vars)
                .and_then(|()| self.check_size(&message, size));
            match checked {
                Ok(checked_size) => size = checked_size,
                Err(error) => {
                    return Outcome::Error {
                        step: format!("transformer {}", transform.name()),
                        error,
                    };
                }
            }
        }
        Outcome::Pass(message)
    }
}
