//! Corridor's load generator: sends HL7 v2 messages to an MLLP listener over one or
//! many connections and judges every acknowledgement. `corridor send` is a thin
//! command over it, and the end-to-end benchmarks (`scripts/bench/receive.sh`,
//! `scripts/bench/route.sh`) drive it through that command.
//!
//! The sending path is kept lean: messages are laid out once ([`Plan`]), each send
//! only copies bytes into a reused buffer, and ACKs are judged without allocating
//! more than the line that reports them.
//!
//! - Closed loop (no rate): each connection sends one message, waits for its ACK,
//!   sends the next.
//! - Open loop ([`Job::rate`]): connections take turns writing on a schedule without
//!   waiting for ACKs; latency is measured from each message's scheduled send time,
//!   so a slow receiver cannot hide behind a slow sender.
//!
//! ```
//! use loadgen::{Origin, Outgoing, Plan};
//!
//! let origin = Origin { file: "m.hl7".into(), number: 1, line: 1 };
//! let message = Outgoing::new(b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102||ORU^R01|ORIG|P|2.5.1\nPID|1\n", &origin)?;
//! assert_eq!(message.control_id(), "ORIG");
//! // Three messages cycling through the one read, each with its own MSH-10.
//! let plan = Plan::new(vec![(message, origin)], Some(3))?;
//! assert_eq!(plan.total(), 3);
//! # Ok::<(), String>(())
//! ```

mod plan;
mod send;
mod tally;

pub use plan::{Origin, Outgoing, Plan};
pub use send::{Error, Job, Report, runtime, send_all};
