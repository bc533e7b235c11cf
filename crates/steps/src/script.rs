//! Scripted steps: JavaScript run by QuickJS in a sandbox.
//!
//! A script sees the message through the same path API as the declarative
//! steps (`msg.get("PID-5.1")`, `msg.set("MSH-5", "EHR")`), and nothing else:
//! QuickJS has no file system, network or process access unless a host adds
//! it, and Corridor adds none. Each run is stopped past a time limit (an
//! interrupt handler checks a deadline) and a memory limit (the runtime's
//! allocator refuses past it), with an error for that message only.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hl7v2::{OwnedMessage, Path};
use rquickjs::{CatchResultExt, Context, Ctx, Function, Object, Runtime, Value};

use crate::StepError;

/// Limits for one run of a script.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub time: Duration,
    pub memory: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            time: Duration::from_millis(100),
            memory: 32 << 20,
        }
    }
}

/// A compiled-on-first-use script: the body of `function (msg) { ... }`.
#[derive(Debug)]
pub struct Script {
    id: u64,
    source: String,
    limits: Limits,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What a script returned.
#[derive(Clone, Debug, PartialEq)]
pub enum Returned {
    Nothing,
    Bool(bool),
    Other(String),
}

impl Script {
    /// A script from its source. Syntax errors are found here, so a bad
    /// script fails at start, not on the first message.
    pub fn new(source: &str, limits: Limits) -> Result<Script, StepError> {
        let script = Script {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            source: source.to_string(),
            limits,
        };
        let probe = Sandbox::new()
            .map_err(|e| StepError::Script(format!("cannot start the script engine: {e}")))?;
        probe.compile(&script)?;
        Ok(script)
    }

    /// Runs the script on `message`, which it may change.
    pub fn run(&self, message: &mut OwnedMessage) -> Result<Returned, StepError> {
        self.run_with(message, &crate::Vars::default())
    }

    /// Like [`Script::run`]; the script also sees `enterpriseId` (a string or `null`).
    pub fn run_with(
        &self,
        message: &mut OwnedMessage,
        vars: &crate::Vars,
    ) -> Result<Returned, StepError> {
        SANDBOX.with(|cell| {
            let mut slot = cell.borrow_mut();
            if slot.is_none() {
                *slot = Some(Sandbox::new().map_err(|e| {
                    StepError::Script(format!("cannot start the script engine: {e}"))
                })?);
            }
            let sandbox = slot
                .as_mut()
                .ok_or_else(|| StepError::Script("no script engine".into()))?;
            let result = sandbox.run(self, message, vars);
            if result.is_err() {
                // A script stopped for time or memory may leave the runtime
                // in any state: the next message gets a fresh one.
                *slot = None;
            }
            result
        })
    }
}

thread_local! {
    static SANDBOX: RefCell<Option<Sandbox>> = const { RefCell::new(None) };
}

/// One QuickJS runtime per thread, with the `msg` object defined once.
struct Sandbox {
    runtime: Runtime,
    context: Context,
    deadline: Rc<Cell<Option<Instant>>>,
    message: Rc<RefCell<Option<OwnedMessage>>>,
    compiled: HashSet<u64>,
}

impl Sandbox {
    fn new() -> rquickjs::Result<Sandbox> {
        let runtime = Runtime::new()?;
        runtime.set_max_stack_size(512 << 10);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let watched = deadline.clone();
        runtime.set_interrupt_handler(Some(Box::new(move || {
            watched.get().is_some_and(|d| Instant::now() >= d)
        })));
        let context = Context::full(&runtime)?;
        let message: Rc<RefCell<Option<OwnedMessage>>> = Rc::new(RefCell::new(None));
        context.with(|ctx| define_message_api(&ctx, &message))?;
        Ok(Sandbox {
            runtime,
            context,
            deadline,
            message,
            compiled: HashSet::new(),
        })
    }

    /// Defines `__corridor_steps[id]` as the script's function.
    fn compile(&self, script: &Script) -> Result<(), StepError> {
        self.context.with(|ctx| {
            let code = format!(
                "globalThis.__corridor_steps = globalThis.__corridor_steps || {{}};\n\
                 globalThis.__corridor_steps[{}] = (function (msg) {{\n{}\n}});",
                script.id, script.source
            );
            ctx.eval::<(), _>(code)
                .catch(&ctx)
                .map_err(|e| StepError::Script(format!("the script does not compile: {e}")))
        })
    }

    fn run(
        &mut self,
        script: &Script,
        message: &mut OwnedMessage,
        vars: &crate::Vars,
    ) -> Result<Returned, StepError> {
        if !self.compiled.contains(&script.id) {
            self.compile(script)?;
            self.compiled.insert(script.id);
        }
        *self.message.borrow_mut() = Some(std::mem::replace(
            message,
            OwnedMessage::new(message.delimiters()),
        ));
        self.runtime.set_memory_limit(script.limits.memory);
        self.deadline.set(Some(Instant::now() + script.limits.time));
        let started = Instant::now();
        let outcome = self.context.with(|ctx| -> Result<Returned, String> {
            let steps: Object = ctx
                .globals()
                .get("__corridor_steps")
                .map_err(|e| e.to_string())?;
            let function: Function = steps
                .get(script.id.to_string())
                .map_err(|e| e.to_string())?;
            let globals = ctx.globals();
            match &vars.enterprise_id {
                Some(id) => globals.set("enterpriseId", id.as_str()),
                None => globals.set("enterpriseId", rquickjs::Null),
            }
            .map_err(|e| e.to_string())?;
            let msg: Value = ctx.globals().get("msg").map_err(|e| e.to_string())?;
            let value: Value = function
                .call((msg,))
                .catch(&ctx)
                .map_err(|e| e.to_string())?;
            Ok(if value.is_undefined() || value.is_null() {
                Returned::Nothing
            } else if let Some(b) = value.as_bool() {
                Returned::Bool(b)
            } else {
                Returned::Other(format!("{:?}", value.type_of()))
            })
        });
        self.deadline.set(None);
        self.runtime.set_memory_limit(0);
        if let Some(changed) = self.message.borrow_mut().take() {
            *message = changed;
        }
        outcome.map_err(|e| {
            if e.contains("out of memory") {
                StepError::Script(format!(
                    "the script used more than {} MiB of memory and was stopped",
                    script.limits.memory >> 20
                ))
            } else if started.elapsed() >= script.limits.time {
                StepError::Script(format!(
                    "the script ran longer than {} ms and was stopped",
                    script.limits.time.as_millis()
                ))
            } else {
                StepError::Script(format!("the script failed: {e}"))
            }
        })
    }
}

/// Defines the global `msg` object: `get`, `set`, `setRaw`, `delete`,
/// `count`, `segments` and `toString`, all on the message being processed.
fn define_message_api<'js>(
    ctx: &Ctx<'js>,
    message: &Rc<RefCell<Option<OwnedMessage>>>,
) -> rquickjs::Result<()> {
    let msg = Object::new(ctx.clone())?;

    let m = message.clone();
    msg.set(
        "get",
        Function::new(
            ctx.clone(),
            move |ctx: Ctx<'js>, path: String| -> rquickjs::Result<Value<'js>> {
                let path = parse_path(&ctx, &path)?;
                // Absent is null, so scripts can tell it from an empty value.
                match m.borrow().as_ref().and_then(|m| m.get_text(&path)) {
                    Some(text) => Ok(rquickjs::String::from_str(ctx, &text)?.into_value()),
                    None => Ok(Value::new_null(ctx)),
                }
            },
        )?,
    )?;
    let m = message.clone();
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
    let m = message.clone();
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
    let m = message.clone();
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
    let m = message.clone();
    msg.set(
        "count",
        Function::new(ctx.clone(), move |name: String| -> usize {
            m.borrow().as_ref().map_or(0, |m| {
                m.segment_names().filter(|n| *n == name.as_bytes()).count()
            })
        })?,
    )?;
    let m = message.clone();
    msg.set(
        "segments",
        Function::new(ctx.clone(), move || -> Vec<String> {
            m.borrow().as_ref().map_or_else(Vec::new, |m| {
                m.segment_names()
                    .map(|n| String::from_utf8_lossy(n).into_owned())
                    .collect()
            })
        })?,
    )?;
    let m = message.clone();
    msg.set(
        "toString",
        Function::new(ctx.clone(), move || -> String {
            m.borrow()
                .as_ref()
                .map(|m| String::from_utf8_lossy(&m.to_bytes()).into_owned())
                .unwrap_or_default()
        })?,
    )?;
    ctx.globals().set("msg", msg)
}

fn parse_path(ctx: &Ctx<'_>, text: &str) -> rquickjs::Result<Path> {
    text.parse::<Path>()
        .map_err(|e| rquickjs::Exception::throw_message(ctx, &e.to_string()))
}

fn edit(
    ctx: &Ctx<'_>,
    message: &Rc<RefCell<Option<OwnedMessage>>>,
    change: impl FnOnce(&mut OwnedMessage) -> hl7v2::Result<()>,
) -> rquickjs::Result<()> {
    let mut slot = message.borrow_mut();
    let Some(msg) = slot.as_mut() else {
        return Err(rquickjs::Exception::throw_message(ctx, "no message"));
    };
    change(msg).map_err(|e| rquickjs::Exception::throw_message(ctx, &e.to_string()))
}
