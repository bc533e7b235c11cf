//! Script threads: scripts run on threads of their own, so that the caller can stop
//! waiting for a script that native code keeps running past its time limit.
//!
//! QuickJS polls its interrupt handler in the interpreter and in regular expression
//! matching, so a run normally ends within its time limit. For anything that does not
//! poll, the caller waits for the limit plus [`GRACE`], then gives the run up: the
//! message's step fails with the reason, and the thread is abandoned (it exits when its
//! run ends, if ever). Nothing ever joins a script thread, so shutdown never waits on one.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use hl7v2::OwnedMessage;

use super::sandbox::{Sandbox, Task};
use super::{Limits, Returned};
use crate::{StepError, Vars};

/// How long past a run's time limit the caller still waits for its answer.
const GRACE: Duration = Duration::from_secs(1);

/// One run for a script thread.
pub(super) struct Job {
    program: Arc<str>,
    limits: Limits,
    task: Task,
}

impl Job {
    pub(super) fn check(program: Arc<str>, limits: Limits) -> Job {
        Job {
            program,
            limits,
            task: Task::Check,
        }
    }

    pub(super) fn evaluate(
        program: Arc<str>,
        limits: Limits,
        message: OwnedMessage,
        inputs: Vec<(String, String)>,
    ) -> Job {
        Job {
            program,
            limits,
            task: Task::Evaluate { message, inputs },
        }
    }

    pub(super) fn run(program: Arc<str>, limits: Limits, message: OwnedMessage, vars: Vars) -> Job {
        Job {
            program,
            limits,
            task: Task::Run { message, vars },
        }
    }
}

type Answer = (Option<OwnedMessage>, Result<Returned, StepError>);

/// The caller's end of a script thread.
struct ScriptThread {
    jobs: mpsc::Sender<Job>,
    answers: mpsc::Receiver<Answer>,
}

/// Script threads waiting for work; a caller takes one for a run and gives it back.
static IDLE: Mutex<Vec<ScriptThread>> = Mutex::new(Vec::new());
static ABANDONED: AtomicU64 = AtomicU64::new(0);

pub(super) fn abandoned() -> u64 {
    ABANDONED.load(Ordering::Relaxed)
}

/// Runs `job` on a script thread and waits for it, at most its time limit plus
/// [`GRACE`]. Returns the message (unless the run was given up on) and the outcome.
pub(super) fn execute(job: Job) -> Answer {
    let wait = job.limits.time + GRACE;
    let time_ms = job.limits.time.as_millis();
    let when = if matches!(job.task, Task::Check) {
        " while loading (it runs code outside its function)"
    } else {
        ""
    };
    let idle = IDLE.lock().ok().and_then(|mut idle| idle.pop());
    let thread = match idle.map_or_else(ScriptThread::spawn, Ok) {
        Ok(thread) => thread,
        Err(error) => return (take_message(job), Err(error)),
    };
    // A thread's loop ends only when this end is dropped, so it is there to receive.
    if let Err(mpsc::SendError(job)) = thread.jobs.send(job) {
        return (
            take_message(job),
            Err(StepError::Script("the script thread is gone".into())),
        );
    }
    match thread.answers.recv_timeout(wait) {
        Ok(answer) => {
            if let Ok(mut idle) = IDLE.lock() {
                idle.push(thread);
            }
            answer
        }
        Err(RecvTimeoutError::Timeout) => {
            ABANDONED.fetch_add(1, Ordering::Relaxed);
            (
                None,
                Err(StepError::Script(format!(
                    "the script ran longer than {time_ms} ms{when} and could not be stopped; its thread was abandoned"
                ))),
            )
        }
        Err(RecvTimeoutError::Disconnected) => (
            None,
            Err(StepError::Script("the script engine failed".into())),
        ),
    }
}

fn take_message(job: Job) -> Option<OwnedMessage> {
    match job.task {
        Task::Run { message, .. } | Task::Evaluate { message, .. } => Some(message),
        Task::Check => None,
    }
}

impl ScriptThread {
    fn spawn() -> Result<ScriptThread, StepError> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (outbox, answers) = mpsc::channel::<Answer>();
        std::thread::Builder::new()
            .name("corridor-script".into())
            .spawn(move || serve(inbox, outbox))
            .map_err(|e| StepError::Script(format!("cannot start a script thread: {e}")))?;
        Ok(ScriptThread { jobs, answers })
    }
}

/// A script thread's loop: one runtime, rebuilt after a run that may have spoiled it,
/// until the caller's end is dropped (idle threads live as long as the process).
fn serve(inbox: mpsc::Receiver<Job>, outbox: mpsc::Sender<Answer>) {
    let mut sandbox: Option<Sandbox> = None;
    while let Ok(job) = inbox.recv() {
        let answer = match sandbox.take().map_or_else(Sandbox::new, Ok) {
            Ok(mut ready) => {
                let (message, result, fit) = ready.run(&job.program, job.limits, job.task);
                if fit {
                    sandbox = Some(ready);
                }
                (message, result)
            }
            Err(e) => (
                take_message(job),
                Err(StepError::Script(format!(
                    "cannot start the script engine: {e}"
                ))),
            ),
        };
        if outbox.send(answer).is_err() {
            // The caller gave up on this run; nobody will send another.
            break;
        }
        if sandbox.is_none() {
            sandbox = Sandbox::new().ok();
        }
        if let Some(ready) = sandbox.as_mut()
            && ready.prepare().is_err()
        {
            sandbox = None;
        }
    }
}
