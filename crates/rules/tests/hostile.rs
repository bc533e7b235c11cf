//! Bad input never panics: generated messages corrupted and cut at random
//! are read, checked, recorded and checked again.

use proptest::prelude::*;
use rules::scenario::generate;
use rules::{InMemoryHistory, PatientId, Rules, RulesConfig, Timestamp, extract};

fn samples() -> Vec<String> {
    generate(11, 12)
        .into_iter()
        .flat_map(|s| s.messages)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn corrupted_messages_never_panic(
        pick in 0usize..1000,
        edits in proptest::collection::vec((0usize..4000, any::<u8>()), 0..12),
        cut in 0usize..4000,
    ) {
        let samples = samples();
        let mut bytes = samples[pick % samples.len()].clone().into_bytes();
        for (at, byte) in edits {
            if !bytes.is_empty() {
                let i = at % bytes.len();
                bytes[i] = byte;
            }
        }
        bytes.truncate(cut.max(8));
        let rules = Rules::new(&RulesConfig::default()).unwrap();
        let mut history = InMemoryHistory::new();
        let patient = PatientId("E".into());
        if let Ok(message) = hl7v2::Message::parse(&bytes) {
            let facts = extract(&message);
            let _ = rules.evaluate(&patient, &facts, &history, Timestamp::from_unix_seconds(0));
            history.record(&patient, &facts);
            let _ = rules.evaluate(&patient, &facts, &history, Timestamp::from_unix_seconds(0));
        }
    }
}
