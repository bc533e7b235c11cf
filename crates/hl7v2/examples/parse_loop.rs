//! Parses the 1.5 KB ORU^R01 of the parse benchmark N times, for instruction
//! counts under callgrind (deterministic, unlike wall time on a shared
//! machine):
//!
//! ```text
//! cargo build --release -p hl7v2 --example parse_loop
//! valgrind --tool=callgrind target/release/examples/parse_loop walk 1000
//! ```
//!
//! Modes: `parse` (segments and fields), `walk` (every repetition, component
//! and subcomponent), `paths` (the 12 paths of the benchmark, unescaped).

use hl7v2::{Message, Path};
use std::hint::black_box;

const ORU: &[u8] = include_bytes!("../tests/data/oru_r01_1500.hl7");

#[inline(never)]
fn walk_everything(message: &Message<'_>) -> usize {
    let mut leaves = 0;
    for segment in message.segments() {
        for field in segment.fields() {
            for repetition in field.children() {
                for component in repetition.children() {
                    for sub in component.children() {
                        leaves += sub.raw().len() + 1;
                    }
                }
            }
        }
    }
    leaves
}

#[inline(never)]
fn reps(m: &Message<'_>) -> usize {
    m.segments()
        .map(|s| {
            s.fields()
                .map(|f| f.children().map(|r| r.raw().len()).sum::<usize>())
                .sum::<usize>()
        })
        .sum()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "walk".to_string());
    let n: usize = args.next().as_deref().unwrap_or("1000").parse()?;
    let paths: Vec<Path> = [
        "MSH-9", "MSH-10", "MSH-12", "PID-3", "PID-5", "PID-7", "PID-8", "PV1-2", "OBR-4", "OBX-3",
        "OBX-5", "OBX-6",
    ]
    .iter()
    .map(|p| p.parse())
    .collect::<Result<_, _>>()?;
    let mut total = 0usize;
    for _ in 0..n {
        let m = Message::parse(black_box(ORU))?;
        total += match mode.as_str() {
            "parse" => m.len(),
            "walk" => walk_everything(&m),
            "paths" => paths
                .iter()
                .filter_map(|p| m.get(p))
                .map(|e| e.text().len())
                .sum::<usize>(),
            "fields" => m
                .segments()
                .map(|s| s.fields().map(|f| f.raw().len()).sum::<usize>())
                .sum(),
            "reps" => reps(&m),
            "sizes" => {
                println!(
                    "element {} context {} delimiters {} charset {}",
                    std::mem::size_of::<hl7v2::Element<'_>>(),
                    std::mem::size_of::<hl7v2::Context>(),
                    std::mem::size_of::<hl7v2::Delimiters>(),
                    std::mem::size_of::<hl7v2::Charset>()
                );
                0
            }
            other => return Err(format!("unknown mode {other}").into()),
        };
    }
    println!("{total}");
    Ok(())
}
