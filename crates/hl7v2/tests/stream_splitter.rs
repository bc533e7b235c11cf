//! `StreamSplitter` fed a stream in pieces finds exactly what `split_stream`
//! finds in the whole: the same messages, envelopes and stray lines, with
//! the same offsets and line numbers, wherever the chunks happen to end
//! (inside a CRLF, a byte order mark or an `MSH`).

use hl7v2::{StreamItem, StreamSplitter, split_stream};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

/// An item with its bytes owned, so items from both splitters compare.
#[derive(Debug, PartialEq, Eq)]
enum Owned {
    Message(Vec<u8>, usize, usize),
    Envelope([u8; 3], Vec<u8>, usize, usize),
    Stray(Vec<u8>, usize, usize),
}

fn owned(item: StreamItem<'_>) -> Owned {
    match item {
        StreamItem::Message {
            bytes,
            offset,
            line,
        } => Owned::Message(bytes.to_vec(), offset, line),
        StreamItem::Envelope {
            name,
            bytes,
            offset,
            line,
        } => Owned::Envelope(name, bytes.to_vec(), offset, line),
        StreamItem::Stray {
            bytes,
            offset,
            line,
        } => Owned::Stray(bytes.to_vec(), offset, line),
    }
}

/// Splits `input` pushed in pieces that end at each of `cuts`.
fn split_in_chunks(input: &[u8], cuts: &[usize]) -> Vec<Owned> {
    let mut splitter = StreamSplitter::new();
    let mut items = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain([&input.len()]) {
        let cut = cut.clamp(from, input.len());
        splitter.push(&input[from..cut]);
        from = cut;
        while let Some(item) = splitter.next_item() {
            items.push(owned(item));
        }
    }
    splitter.finish();
    while let Some(item) = splitter.next_item() {
        items.push(owned(item));
    }
    items
}

fn whole(input: &[u8]) -> Vec<Owned> {
    split_stream(input).into_iter().map(owned).collect()
}

/// Streams made of the pieces that matter to splitting.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let pieces: Vec<&[u8]> = vec![
        b"MSH|^~\\&|A",
        b"PID|1",
        b"OBX|2|ST|x",
        b"BHS|^~\\&",
        b"BTS|1",
        b"FHS|^~\\&",
        b"FTS|1",
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"\xEF\xBB\xBF",
        b"MS",
        b"H",
        b"x",
    ];
    vec(select(pieces), 0..40).prop_map(|pieces| pieces.concat())
}

proptest! {
    #[test]
    fn chunked_splitting_agrees_with_whole_splitting(
        input in stream(),
        mut cuts in vec(0usize..400, 0..12),
    ) {
        cuts.sort_unstable();
        prop_assert_eq!(split_in_chunks(&input, &cuts), whole(&input));
    }

    #[test]
    fn byte_at_a_time_agrees_with_whole_splitting(input in stream()) {
        let cuts: Vec<usize> = (0..input.len()).collect();
        prop_assert_eq!(split_in_chunks(&input, &cuts), whole(&input));
    }
}

#[test]
fn a_crlf_cut_between_its_cr_and_lf_ends_one_line() {
    let input = b"MSH|^~\\&|A\r\nPID|1\r\nMSH|^~\\&|B\r\n";
    let items = split_in_chunks(input, &[11, 12, 18]);
    assert_eq!(
        items,
        [
            Owned::Message(b"MSH|^~\\&|A\r\nPID|1".to_vec(), 0, 1),
            Owned::Message(b"MSH|^~\\&|B".to_vec(), 19, 3),
        ]
    );
}

#[test]
fn memory_is_bounded_by_the_message_being_read() {
    let message =
        b"MSH|^~\\&|LAB|H|EHR|H|20240101||ORU^R01|C1|P|2.5.1\rPID|1||111\rOBX|1|NM|WBC||7.5\r";
    let mut splitter = StreamSplitter::new();
    let mut messages = 0;
    let mut most_held = 0;
    for _ in 0..10_000 {
        splitter.push(message);
        most_held = most_held.max(splitter.buffered());
        while let Some(item) = splitter.next_item() {
            messages += matches!(item, StreamItem::Message { .. }) as usize;
        }
    }
    splitter.finish();
    while let Some(item) = splitter.next_item() {
        messages += matches!(item, StreamItem::Message { .. }) as usize;
    }
    assert_eq!(messages, 10_000);
    assert!(most_held <= 3 * message.len(), "held {most_held} bytes");
}
