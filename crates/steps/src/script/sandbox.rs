//! A script thread's QuickJS runtime, and the fresh context each run gets.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

use hl7v2::{OwnedMessage, Path};
use rquickjs::function::This;
use rquickjs::{CatchResultExt, Context, Ctx, Function, Object, Runtime, Value};

use super::{Limits, Returned};
use crate::{StepError, Vars};

/// The function expression a script's body becomes.
pub(super) fn wrap(source: &str) -> String {
    format!("(function (msg) {{\n{source}\n}})")
}

/// What a script thread is asked to do with a program.
pub(super) enum Task {
    /// Load it and prove it is one function expression and nothing more.
    Check,
    /// Call it on a message.
    Run { message: OwnedMessage, vars: Vars },
    /// Call it as a function of its inputs: the message read-only, each input (a global's
    /// name and its value as JSON text) a deep-frozen global; what it returns comes back
    /// as JSON text ([`Returned::Json`]).
    Evaluate {
        message: OwnedMessage,
        inputs: Vec<(String, String)>,
    },
}

/// Freezes a value and everything reachable from it, so an input cannot be changed.
const DEEP_FREEZE: &str = "(function freeze(v) { if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) { Object.freeze(v); for (const k of Object.keys(v)) freeze(v[k]); } return v; })";

/// One runtime, reused; its contexts are not.
pub(super) struct Sandbox {
    runtime: Runtime,
    deadline: Rc<Cell<Option<Instant>>>,
    /// The context the next run gets, made while the thread waits for it.
    next: Option<Context>,
}

/// How a run ended, before it is put in words.
enum Failure {
    /// QuickJS threw (a script error, the interrupt); its words.
    Thrown(String),
    /// The script threw `null` (or QuickJS, out of memory, could throw nothing else).
    ThrewNull,
    /// The heap, with the message's growth, reached the memory limit.
    OutOfMemory,
    /// The program does not parse; the parser's words.
    Syntax(String),
    /// Loading the program showed it is not only a function.
    NotOneFunction,
}

impl Sandbox {
    pub(super) fn new() -> rquickjs::Result<Sandbox> {
        let runtime = Runtime::new()?;
        runtime.set_max_stack_size(512 << 10);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            watched.get().is_some_and(|d| Instant::now() >= d)
        })));
        Ok(Sandbox {
            runtime,
            deadline,
            next: None,
        })
    }

    /// Frees what the last run left and makes the next run's context, between runs, so
    /// that neither is on a caller's clock.
    pub(super) fn prepare(&mut self) -> rquickjs::Result<()> {
        self.runtime.set_memory_limit(0);
        self.runtime.run_gc();
        if self.next.is_none() {
            self.next = Some(Context::full(&self.runtime)?);
        }
        Ok(())
    }

    /// Runs `task` on `program` in a context of its own, under `limits`. Returns the
    /// message (when there was one), the outcome, and whether the runtime is still fit
    /// for another run.
    pub(super) fn run(
        &mut self,
        program: &str,
        limits: Limits,
        task: Task,
    ) -> (Option<OwnedMessage>, Result<Returned, StepError>, bool) {
        let (checking, message, vars, inputs) = match task {
            Task::Check => (true, None, Vars::default(), None),
            Task::Run { message, vars } => (false, Some(message), vars, None),
            Task::Evaluate { message, inputs } => {
                (false, Some(message), Vars::default(), Some(inputs))
            }
        };
        let read_only = inputs.is_some();
        let slot = Rc::new(MessageSlot::new(message, limits.memory, read_only));
        self.runtime.set_memory_limit(limits.memory);
        let started = Instant::now();
        self.deadline.set(Some(started + limits.time));
        let outcome = self.run_in_fresh_context(program, checking, &slot, &vars, inputs.as_deref());
        self.deadline.set(None);
        // A script's own error leaves the runtime as good as its context, which goes
        // anyway; one stopped by a limit, or with jobs left (reactions queued past the
        // limit), is dropped whole.
        let stopped =
            matches!(outcome, Err(Failure::OutOfMemory)) || started.elapsed() >= limits.time;
        let fit = !stopped && !self.runtime.is_job_pending();
        let message = slot.message.borrow_mut().take();
        let result = outcome.map_err(|failure| describe(failure, checking, limits, started));
        (message, result, fit)
    }

    fn run_in_fresh_context(
        &mut self,
        program: &str,
        checking: bool,
        slot: &Rc<MessageSlot>,
        vars: &Vars,
        inputs: Option<&[(String, String)]>,
    ) -> Result<Returned, Failure> {
        let thrown = |e: String| Failure::Thrown(e);
        let context = match self.next.take() {
            Some(context) => context,
            None => Context::full(&self.runtime).map_err(|e| thrown(e.to_string()))?,
        };
        let returned = context
            .with(|ctx| -> Result<Returned, Failure> {
                // Taken before the program runs, so a program cannot replace what judges it.
                let to_string: Function = ctx
                    .globals()
                    .get::<_, Object>("Function")
                    .and_then(|f| f.get::<_, Object>("prototype"))
                    .and_then(|p| p.get("toString"))
                    .map_err(|e| thrown(e.to_string()))?;
                let function: Function = ctx
                    .eval::<Value, _>(program)
                    .catch(&ctx)
                    .map_err(|e| match &e {
                        rquickjs::CaughtError::Exception(x)
                            if x.get::<_, String>("name").is_ok_and(|n| n == "SyntaxError") =>
                        {
                            Failure::Syntax(e.to_string())
                        }
                        _ => thrown(e.to_string()),
                    })?
                    .into_function()
                    .ok_or(Failure::NotOneFunction)?;
                if checking {
                    // A function's text is a whole function expression, so the text of
                    // the outer function spans the program only when the body never
                    // closed it early to run code of its own.
                    let text: String = to_string
                        .call((This(function),))
                        .catch(&ctx)
                        .map_err(|e| thrown(e.to_string()))?;
                    return if text == program[1..program.len() - 1] {
                        Ok(Returned::Nothing)
                    } else {
                        Err(Failure::NotOneFunction)
                    };
                }
                let msg = define_message_api(&ctx, slot).map_err(|e| thrown(e.to_string()))?;
                let globals = ctx.globals();
                match &vars.enterprise_id {
                    Some(id) => globals.set("enterpriseId", id.as_str()),
                    None => globals.set("enterpriseId", rquickjs::Null),
                }
                .and_then(|()| globals.set("msg", msg.clone()))
                .map_err(|e| thrown(e.to_string()))?;
                if let Some(inputs) = inputs {
                    // Made before the program runs, so it cannot be replaced by the program.
                    let freeze: Function = ctx
                        .eval::<Function, _>(DEEP_FREEZE)
                        .catch(&ctx)
                        .map_err(|e| thrown(e.to_string()))?;
                    for (name, json) in inputs {
                        let value = ctx
                            .json_parse(json.as_str())
                            .catch(&ctx)
                            .map_err(|e| thrown(format!("the input {name} is not JSON: {e}")))?;
                        let value: Value = freeze
                            .call((value,))
                            .catch(&ctx)
                            .map_err(|e| thrown(e.to_string()))?;
                        globals
                            .set(name.as_str(), value)
                            .map_err(|e| thrown(e.to_string()))?;
                    }
                }
                let value: Value = function.call((msg,)).catch(&ctx).map_err(|e| match e {
                    rquickjs::CaughtError::Value(v) if v.is_null() => Failure::ThrewNull,
                    e => thrown(e.to_string()),
                })?;
                if inputs.is_some() {
                    if value.is_undefined() || value.is_null() {
                        return Ok(Returned::Nothing);
                    }
                    let text = ctx
                        .json_stringify(value)
                        .catch(&ctx)
                        .map_err(|e| thrown(e.to_string()))?;
                    return match text {
                        Some(text) => text
                            .to_string()
                            .map(Returned::Json)
                            .map_err(|e| thrown(e.to_string())),
                        // A function or symbol: nothing JSON can hold.
                        None => Ok(Returned::Other("function".to_owned())),
                    };
                }
                Ok(if value.is_undefined() || value.is_null() {
                    Returned::Nothing
                } else if let Some(b) = value.as_bool() {
                    Returned::Bool(b)
                } else {
                    Returned::Other(format!("{:?}", value.type_of()))
                })
            })
            .map_err(|failure| out_of_memory_or(slot, failure))?;
        // What the script queued (promise reactions) is part of its run, under its limits.
        while self.runtime.is_job_pending() {
            if let Err(failed) = self.runtime.execute_pending_job() {
                // SAFETY: rquickjs 0.11 wraps the failed job's context without taking a
                // reference (JS_ExecutePendingJob lends the pointer), and the wrapper
                // releases one when dropped; taking one here keeps the count true. The
                // pointer is live: the job ran in it, and `context` still holds it.
                unsafe {
                    rquickjs::qjs::JS_DupContext(failed.0.as_raw().as_ptr());
                }
                let words = failed.0.with(|ctx| {
                    let thrown = ctx.catch();
                    match thrown.as_exception() {
                        Some(exception) => exception.to_string(),
                        None => format!("{thrown:?}"),
                    }
                });
                return Err(out_of_memory_or(slot, thrown(words)));
            }
        }
        Ok(returned)
    }
}

/// `failure`, or running out of memory when that is what happened: QuickJS may lack
/// the memory to say so, and throw `null`.
fn out_of_memory_or(slot: &MessageSlot, failure: Failure) -> Failure {
    match failure {
        Failure::Thrown(e) if slot.grew_too_much.get() || e.contains("out of memory") => {
            Failure::OutOfMemory
        }
        Failure::ThrewNull if slot.heap_limited.get() => Failure::OutOfMemory,
        other => other,
    }
}

/// Puts a failed run in words for the step's error.
fn describe(failure: Failure, checking: bool, limits: Limits, started: Instant) -> StepError {
    let words = match failure {
        Failure::NotOneFunction => {
            "the script is more than a function body: it closes the function early and runs code of its own when it loads; write only the body".to_owned()
        }
        Failure::OutOfMemory => format!(
            "the script used more than {} MiB of memory (the message it builds counts) and was stopped",
            limits.memory >> 20
        ),
        Failure::Thrown(_) if started.elapsed() >= limits.time => format!(
            "the script ran longer than {} ms and was stopped",
            limits.time.as_millis()
        ),
        Failure::Syntax(e) => format!("the script does not compile: {e}"),
        Failure::Thrown(e) if checking => format!("the script fails when it loads: {e}"),
        Failure::Thrown(e) => format!("the script failed: {e}"),
        Failure::ThrewNull => "the script failed: it threw null".to_owned(),
    };
    let words = in_script_terms(&words);
    StepError::Script(if checking && words.contains("ran longer") {
        format!("{words} while loading: it runs code outside its function")
    } else {
        words
    })
}

/// Where QuickJS says an error is (`eval_script:3:44`: the program it was given, whose
/// first line is the function [`wrap`] opens), put as the script's author wrote it:
/// `line 2, column 44 of the script`.
fn in_script_terms(words: &str) -> String {
    const NAME: &str = "eval_script:";
    let mut out = String::with_capacity(words.len());
    let mut rest = words;
    while let Some(at) = rest.find(NAME) {
        out.push_str(&rest[..at]);
        let after = &rest[at + NAME.len()..];
        let number = |text: &str| {
            let digits = text.bytes().take_while(u8::is_ascii_digit).count();
            text[..digits].parse::<usize>().ok().map(|n| (n, digits))
        };
        let place = number(after).map(|(line, used)| {
            let column = after[used..].strip_prefix(':').and_then(number);
            (line, column, used)
        });
        match place {
            Some((line, Some((column, digits)), used)) => {
                let line = line.saturating_sub(1).max(1);
                out.push_str(&format!("line {line}, column {column} of the script"));
                rest = &after[used + 1 + digits..];
            }
            Some((line, None, used)) => {
                out.push_str(&format!(
                    "line {} of the script",
                    line.saturating_sub(1).max(1)
                ));
                rest = &after[used..];
            }
            None => {
                out.push_str(NAME);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The message a run works on, and how much it may grow.
struct MessageSlot {
    message: RefCell<Option<OwnedMessage>>,
    /// The run's memory limit, which the JavaScript heap and the message's growth share.
    memory: usize,
    /// The message's size when the run began.
    received_bytes: usize,
    /// Whether the message's growth lowered the heap's limit during the run.
    heap_limited: Cell<bool>,
    /// Whether the message grew past the whole limit.
    grew_too_much: Cell<bool>,
    /// Whether the script may only read the message (a rule).
    read_only: bool,
}

impl MessageSlot {
    fn new(message: Option<OwnedMessage>, memory: usize, read_only: bool) -> MessageSlot {
        let received_bytes = message.as_ref().map_or(0, |m| m.to_bytes().len());
        MessageSlot {
            message: RefCell::new(message),
            memory,
            received_bytes,
            heap_limited: Cell::new(false),
            grew_too_much: Cell::new(false),
            read_only,
        }
    }
}

/// Defines the `msg` object: `get`, `set`, `setRaw`, `delete`, `count`, `segments`
/// and `toString`, all on the message being processed.
fn define_message_api<'js>(
    ctx: &Ctx<'js>,
    slot: &Rc<MessageSlot>,
) -> rquickjs::Result<Object<'js>> {
    let msg = Object::new(ctx.clone())?;

    let m = slot.clone();
    msg.set(
        "get",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<Value<'js>> {
                let path = parse_path(&ctx, &path)?;
                // Absent is null, so scripts can tell it from an empty value.
                match m.message.borrow().as_ref().and_then(|m| m.get_text(&path)) {
                    Some(text) => Ok(rquickjs::String::from_str(ctx, &text)?.into_value()),
                    None => Ok(Value::new_null(ctx)),
                }
            },
        )?,
    )?;
    let m = slot.clone();
    msg.set(
        "set",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, path: String, value: String| -> rquickjs::Result<()> {
                let path = parse_path(&ctx, &path)?;
                edit(&ctx, &m, |msg| msg.set_text(&path, &value))
            },
        )?,
    )?;
    let m = slot.clone();
    msg.set(
        "setRaw",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, path: String, value: String| -> rquickjs::Result<()> {
                let path = parse_path(&ctx, &path)?;
                edit(&ctx, &m, |msg| msg.set_raw(&path, value.as_bytes()))
            },
        )?,
    )?;
    let m = slot.clone();
    msg.set(
        "delete",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<()> {
                let path = parse_path(&ctx, &path)?;
                edit(&ctx, &m, |msg| msg.delete(&path))
            },
        )?,
    )?;
    let m = slot.clone();
    msg.set(
        "count",
        Function::new(ctx.clone(), move |name: String| -> usize {
            m.message.borrow().as_ref().map_or(0, |m| {
                m.segment_names().filter(|n| *n == name.as_bytes()).count()
            })
        })?,
    )?;
    let m = slot.clone();
    msg.set(
        "segments",
        Function::new(ctx.clone(), move || -> Vec<String> {
            m.message.borrow().as_ref().map_or_else(Vec::new, |m| {
                m.segment_names()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect()
            })
        })?,
    )?;
    let m = slot.clone();
    msg.set(
        "toString",
        Function::new(ctx.clone(), move || -> String {
            m.message
                .borrow()
                .as_ref()
                .map(|m| String::from_utf8_lossy(&m.to_bytes()).into_owned())
                .unwrap_or_default()
        })?,
    )?;
    Ok(msg)
}

fn parse_path(ctx: &Ctx<'_>, text: &str) -> rquickjs::Result<Path> {
    let path = text
        .parse::<Path>()
        .map_err(|e| rquickjs::Exception::throw_message(ctx, &e.to_string()))?;
    if path.selects_many() {
        return Err(rquickjs::Exception::throw_message(
            ctx,
            &format!(
                "{text} selects every occurrence or repetition ([*]); msg reads and writes one value"
            ),
        ));
    }
    Ok(path)
}

/// Changes the message, then charges its growth to the run's memory: the JavaScript
/// heap may use what the growth leaves of the limit, and growth past the limit throws.
fn edit(
    ctx: &Ctx<'_>,
    slot: &MessageSlot,
    change: impl FnOnce(&mut OwnedMessage) -> hl7v2::Result<()>,
) -> rquickjs::Result<()> {
    if slot.read_only {
        return Err(rquickjs::Exception::throw_type(
            ctx,
            "msg is read-only here: this script reads the message, it does not change it",
        ));
    }
    let mut message = slot.message.borrow_mut();
    let Some(msg) = message.as_mut() else {
        return Err(rquickjs::Exception::throw_message(ctx, "no message"));
    };
    change(msg).map_err(|e| rquickjs::Exception::throw_message(ctx, &e.to_string()))?;
    let growth = msg.to_bytes().len().saturating_sub(slot.received_bytes);
    let over = growth >= slot.memory;
    slot.heap_limited.set(true);
    // Past the limit the heap gets the whole limit back, so the error can be made.
    let heap = if over {
        slot.memory
    } else {
        slot.memory - growth
    };
    // SAFETY: `ctx.as_raw()` is the context this callback runs in, alive for the call;
    // rquickjs holds its runtime's lock on this thread while a callback runs, so nothing
    // else reads or writes the runtime meanwhile. JS_GetRuntime reads the context's
    // runtime pointer; JS_SetMemoryLimit stores one number in that runtime.
    unsafe {
        let runtime = rquickjs::qjs::JS_GetRuntime(ctx.as_raw().as_ptr());
        rquickjs::qjs::JS_SetMemoryLimit(runtime, heap as _);
    }
    if over {
        slot.grew_too_much.set(true);
        return Err(rquickjs::Exception::throw_internal(
            ctx,
            "out of memory: the message grew past the script's memory limit",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::in_script_terms;

    #[test]
    fn quickjs_places_become_the_script_s_own_lines() {
        assert_eq!(
            in_script_terms("TypeError: not a function\n    at <anonymous> (eval_script:3:44)\n"),
            "TypeError: not a function\n    at <anonymous> (line 2, column 44 of the script)\n"
        );
        assert_eq!(
            in_script_terms("at eval_script:2"),
            "at line 1 of the script"
        );
        assert_eq!(
            in_script_terms("eval_script:x and eval_script"),
            "eval_script:x and eval_script"
        );
    }
}
