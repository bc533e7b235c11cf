//! The bench's corpus through a `Profiler` in a plain loop, for counting instructions
//! with callgrind (repeatable on a busy machine):
//!
//! cargo build --profile bench -p profile --example profile_loop
//! valgrind --tool=callgrind target/release/examples/profile_loop 0 validate
//! valgrind --tool=callgrind target/release/examples/profile_loop 3 validate
//!
//! Per message: (instructions at 3 - instructions at 0) / (3 x the corpus's messages).
//! The second argument is `validate` or `counts` (no validation).

use std::hint::black_box;

#[path = "../benches/corpus/mod.rs"]
mod corpus;

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let validate = args.next().is_none_or(|a| a != "counts");
    let messages = corpus::corpus();
    eprintln!("{} messages", messages.len());
    for _ in 0..n {
        black_box(corpus::profile_all(black_box(&messages), validate));
    }
}
