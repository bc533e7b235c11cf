//! Every generated scenario, run through the rules message by message with
//! the in-memory record: exactly the labelled alerts fire.

use std::collections::BTreeSet;

use rules::scenario::{ExpectedAlert, Replay, generate};
use rules::{AlertKind, Rules, RulesConfig};

#[test]
fn every_scenario_fires_exactly_its_labelled_alerts() {
    let scenarios = generate(0x5EED_2026, 300);
    let mut seen_events = BTreeSet::new();
    let mut fired_kinds = BTreeSet::new();
    for scenario in &scenarios {
        let mut replay = Replay::new(Rules::new(&RulesConfig::default()).unwrap());
        for message in &scenario.messages {
            replay
                .receive(&scenario.patient, message.as_bytes())
                .unwrap_or_else(|e| panic!("generated message does not parse: {e}\n{message}"));
        }
        assert!(replay.findings().is_empty(), "{:#?}", replay.findings());
        let fired: Vec<ExpectedAlert> = replay
            .fired()
            .iter()
            .map(|a| ExpectedAlert {
                rule: a.rule,
                key: a.key.clone(),
            })
            .collect();
        let mut sorted = fired.clone();
        sorted.sort();
        assert_eq!(
            sorted,
            scenario.expected,
            "patient {:?} with events {:?}: fired {:#?}",
            scenario.patient,
            scenario.events,
            replay.fired()
        );
        seen_events.extend(scenario.events.iter().copied());
        fired_kinds.extend(fired.iter().map(|a| a.rule));
    }
    // The set is only a test if it covers every event and every rule.
    assert_eq!(seen_events.len(), 24, "events covered: {seen_events:?}");
    for kind in [
        AlertKind::CriticalValue,
        AlertKind::DeltaCheck,
        AlertKind::SepsisScreen,
        AlertKind::AllergyMedication,
        AlertKind::DuplicateTest,
    ] {
        assert!(fired_kinds.contains(&kind), "{kind:?} never fired");
    }
}

#[test]
fn the_same_seed_gives_the_same_scenarios() {
    let a = generate(7, 20);
    let b = generate(7, 20);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.messages, y.messages);
        assert_eq!(x.expected, y.expected);
    }
    assert_ne!(generate(8, 20)[0].messages, a[0].messages);
}
