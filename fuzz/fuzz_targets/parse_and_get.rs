//! Any bytes: parse them as a message, a batch and a stream; walk every
//! element; look up paths (fixed ones, and any line of the input that reads
//! as a path); edit and write the message; build its acknowledgement.
//! Nothing may panic, loop without end or allocate without bound.

#![no_main]

use hl7v2::escape::{self, Formatting};
use hl7v2::{AckBuilder, AckCode, Batch, Message, OwnedMessage, Path, StreamItem, split_stream};
use libfuzzer_sys::fuzz_target;

const PATHS: &[&str] = &[
    "MSH-1",
    "MSH-2",
    "MSH-9",
    "MSH-9.2",
    "MSH-10",
    "MSH-12",
    "MSH-18",
    "PID-3",
    "PID-3[2].1",
    "PID-3[2].4.2",
    "PID-5",
    "PID-5.1.1",
    "OBX-5",
    "OBX[3]-5",
    "OBX-5[2]",
    "OBR-4.2",
    "ZZZ-1",
    "MSH",
    "OBX[2]",
    "BHS-1",
    "BHS-2",
    "FHS-3",
];

fn walk(message: &Message<'_>) -> usize {
    let mut seen = 0;
    for segment in message.segments() {
        seen += segment.name_str().len();
        for field in segment.fields() {
            seen += field.text().len() + usize::from(field.is_null());
            for rep in field.children() {
                for comp in rep.children() {
                    for sub in comp.children() {
                        seen += sub.text_with(Formatting::Render).len();
                    }
                }
                seen += rep.component(2).subcomponent(2).raw().len();
            }
        }
    }
    seen
}

fn exercise(message: &Message<'_>, paths: &[Path]) {
    walk(message);
    let _ = (message.control_id(), message.version());
    for path in paths {
        if let Some(element) = message.get(path) {
            let _ = element.text();
            let _ = escape::escape(element.raw(), &message.delimiters());
        }
    }
    let mut owned = OwnedMessage::from(message);
    assert_eq!(
        owned.to_bytes(),
        message
            .segments()
            .flat_map(|s| s.as_bytes().iter().copied().chain([b'\r']))
            .collect::<Vec<u8>>(),
        "an unmodified message must write back as it was read"
    );
    for path in paths {
        let _ = owned.get_text(path);
        let small = [
            path.occurrence,
            path.field.unwrap_or(1),
            path.repetition.unwrap_or(1),
        ]
        .iter()
        .chain(path.component.iter())
        .chain(path.subcomponent.iter())
        .all(|&n| n <= 100);
        if small && owned.set_text(path, "v|^~\\&").is_ok() {
            assert_eq!(owned.get_text(path).as_deref(), Some("v|^~\\&"), "{path}");
            let _ = owned.delete(path);
        }
    }
    let _ = Message::parse(&owned.to_bytes()).map(|m| walk(&m));
    let _ = AckBuilder::new(message, AckCode::AE).text("fuzz").build();
}

fuzz_target!(|data: &[u8]| {
    let mut paths: Vec<Path> = PATHS.iter().map(|p| p.parse().unwrap()).collect();
    paths.extend(
        data.split(|&b| b == b'\n' || b == b'\r')
            .filter(|line| line.len() <= 24)
            .filter_map(|line| std::str::from_utf8(line).ok()?.parse().ok()),
    );
    if let Ok(message) = Message::parse(data) {
        exercise(&message, &paths);
    }
    if let Ok(batch) = Batch::parse(data) {
        for (bytes, _, _) in batch.messages {
            if let Ok(message) = Message::parse(bytes) {
                walk(&message);
            }
        }
    }
    for item in split_stream(data) {
        if let StreamItem::Message { bytes, .. } = item {
            if let Ok(message) = Message::parse(bytes) {
                exercise(&message, &paths);
            }
        }
    }
    let _ = AckBuilder::for_bytes(data, AckCode::AR).build();
});
