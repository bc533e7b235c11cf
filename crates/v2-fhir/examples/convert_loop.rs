//! Converts the 1.5 KB ORU^R01 sample N times (default 1,000), parsing
//! each time, for instruction counts and profiles of the conversion:
//! `valgrind --tool=callgrind target/release/examples/convert_loop 1000`
//! or `perf stat -e instructions target/release/examples/convert_loop 20000`.
//! With `--parse-only` it only parses; with `--convert-only` it parses once
//! and converts N times, so the count is the conversion's alone.

use v2_fhir::{Converter, Options};

fn main() {
    let mut n: usize = 1000;
    let mut parse_only = false;
    let mut convert_only = false;
    for arg in std::env::args().skip(1) {
        if arg == "--parse-only" {
            parse_only = true;
        } else if arg == "--convert-only" {
            convert_only = true;
        } else if let Ok(count) = arg.parse() {
            n = count;
        }
    }
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../hl7v2/tests/data/oru_r01_1500.hl7"
    ))
    .expect("the ORU^R01 sample of the hl7v2 crate");
    let converter = Converter::new(Options::default());
    let mut resources = 0;
    if convert_only {
        let message = hl7v2::Message::parse(&bytes).expect("the sample parses");
        for _ in 0..n {
            let bundle = converter.convert(&message).expect("the sample converts");
            resources += bundle.entries().len();
        }
        println!("{n} conversions, {resources} resources");
        return;
    }
    for _ in 0..n {
        let message = hl7v2::Message::parse(&bytes).expect("the sample parses");
        if parse_only {
            resources += message.segments().count();
        } else {
            let bundle = converter.convert(&message).expect("the sample converts");
            resources += bundle.entries().len();
        }
    }
    println!("{n} messages, {resources} resources (or segments)");
}
