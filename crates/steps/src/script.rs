//! Scripted steps: JavaScript run by QuickJS in a sandbox.
//!
//! A script sees the message through the same path API as the declarative
//! steps (`msg.get("PID-5.1")`, `msg.set("MSH-5", "EHR")`), and nothing else:
//! QuickJS has no file system, network or process access unless a host adds
//! it, and Corridor adds none.
//!
//! Isolation: every run (one script on one message) gets a fresh QuickJS
//! context, so nothing a script does to globals, prototypes or the `msg`
//! object outlives the message, on its channel or any other.
//!
//! Limits: a run is stopped past its time limit (QuickJS polls an interrupt
//! handler in its interpreter loop and in regular expression matching) and
//! past its memory limit (the allocator refuses), and the message the script
//! builds counts against the memory limit. Scripts run on script threads of
//! their own ([`threads`]): a run that native code keeps past the time limit
//! is given up on, its thread abandoned, so the caller always gets its answer.

mod sandbox;
mod threads;

use std::sync::Arc;
use std::time::Duration;

use hl7v2::OwnedMessage;

use crate::StepError;

/// Limits for one run of a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub time: Duration,
    pub memory: usize,
}

impl Limits {
    /// The range `timeout_ms` may take: a longer script would hold up its channel (and
    /// shutdown) for longer than any transformer should.
    pub const TIME_MS: std::ops::RangeInclusive<u64> = 1..=10_000;
    /// The range `memory_mb` may take: a fresh context needs about 1 MiB, and one run
    /// should not hold more than a few hundred.
    pub const MEMORY_MB: std::ops::RangeInclusive<usize> = 4..=512;

    /// Limits from the configuration's `timeout_ms` and `memory_mb` (defaults where
    /// absent); a value out of range is an error naming its key.
    pub fn from_config(
        timeout_ms: Option<u64>,
        memory_mb: Option<usize>,
    ) -> Result<Limits, StepError> {
        let default = Limits::default();
        let time = match timeout_ms {
            None => default.time,
            Some(ms) if Limits::TIME_MS.contains(&ms) => Duration::from_millis(ms),
            Some(ms) => {
                return Err(StepError::Config(format!(
                    "timeout_ms: {ms} is out of range ({} to {})",
                    Limits::TIME_MS.start(),
                    Limits::TIME_MS.end()
                )));
            }
        };
        let memory = match memory_mb {
            None => default.memory,
            Some(mb) if Limits::MEMORY_MB.contains(&mb) => mb << 20,
            Some(mb) => {
                return Err(StepError::Config(format!(
                    "memory_mb: {mb} is out of range ({} to {})",
                    Limits::MEMORY_MB.start(),
                    Limits::MEMORY_MB.end()
                )));
            }
        };
        Ok(Limits { time, memory })
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            time: Duration::from_millis(100),
            memory: 32 << 20,
        }
    }
}

/// A script: the body of `function (msg) { ... }`, checked when built.
#[derive(Debug)]
pub struct Script {
    /// The function expression the body is wrapped in; see [`sandbox::wrap`].
    program: Arc<str>,
    limits: Limits,
}

/// What a script returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Returned {
    Nothing,
    Bool(bool),
    Other(String),
    /// What [`Script::evaluate`] hands back: the returned value as JSON text.
    Json(String),
}

impl Script {
    /// A script from its source. A script that does not compile, or whose source is
    /// more than a function body (code that would run outside the function), fails here,
    /// at start, not on the first message. Loading it runs under `limits`.
    pub fn new(source: &str, limits: Limits) -> Result<Script, StepError> {
        let script = Script {
            program: sandbox::wrap(source).into(),
            limits,
        };
        threads::execute(threads::Job::check(script.program.clone(), limits))
            .1
            .map(|_| script)
    }

    /// The limits each run is held to.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Runs the script on `message`, which it may change.
    pub fn run(&self, message: &mut OwnedMessage) -> Result<Returned, StepError> {
        self.run_with(message, &crate::Vars::default())
    }

    /// Like [`Script::run`]; the script also sees `enterpriseId` (a string or `null`).
    /// When the run fails the message is whatever the script left, or empty when the
    /// run had to be given up on.
    pub fn run_with(
        &self,
        message: &mut OwnedMessage,
        vars: &crate::Vars,
    ) -> Result<Returned, StepError> {
        let job = threads::Job::run(
            self.program.clone(),
            self.limits,
            std::mem::take(message),
            vars.clone(),
        );
        let (back, result) = threads::execute(job);
        if let Some(back) = back {
            *message = back;
        }
        result
    }
}

impl Script {
    /// Runs the script as a function of its inputs, for callers that read what it
    /// returns (the clinical rules' custom rules): the message is read-only (`msg.set`,
    /// `setRaw` and `delete` throw), each of `inputs` (a global's name, its value as
    /// JSON text) is a global the script can read and not change (deep-frozen), and
    /// what the script returns comes back as JSON text (`None` for `undefined` or
    /// `null`). Same sandbox, threads and limits as [`Script::run`]; errors name the
    /// script's line as [`Script::run`]'s do.
    pub fn evaluate(
        &self,
        message: &OwnedMessage,
        inputs: Vec<(String, String)>,
    ) -> Result<Option<String>, StepError> {
        let job =
            threads::Job::evaluate(self.program.clone(), self.limits, message.clone(), inputs);
        match threads::execute(job).1? {
            Returned::Json(text) => Ok(Some(text)),
            Returned::Nothing => Ok(None),
            Returned::Bool(b) => Ok(Some(b.to_string())),
            Returned::Other(kind) => Err(StepError::Script(format!(
                "the script returned a {kind}, which is not a JSON value"
            ))),
        }
    }
}

/// How many script threads were given up on since the process started, because native
/// code kept a script running past its time limit. Each may still be running.
pub fn abandoned_threads() -> u64 {
    threads::abandoned()
}
