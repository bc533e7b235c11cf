//! The bench's message through the map step in a plain loop, for counting
//! instructions with callgrind (repeatable on a busy machine). Each iteration
//! clones the parsed message, runs `MapStep::apply_without_changes` (what the
//! bench times) and drops both; `MapStep::run`'s inclusive count is the step's:
//!
//! cargo build --profile bench -p terminology --example map_step_loop
//! valgrind --tool=callgrind target/release/examples/map_step_loop 1000

use std::hint::black_box;

#[path = "../benches/workload/mod.rs"]
mod workload;

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000);
    let (step, terminology, original) = workload::workload();
    for _ in 0..n {
        let mut m = original.clone();
        black_box(step.apply_without_changes(&terminology, &mut m));
        black_box(m);
    }
}
