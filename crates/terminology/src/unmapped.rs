//! The tally of codes seen without a mapping, per sender and field, and
//! its export in the CSV map format for an analyst to fill in.

use std::collections::BTreeMap;

use crate::csv_map::{HEADER, TALLY_COLUMNS};
use crate::step::UnmappedCode;

/// One code's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TallyEntry {
    pub display: Option<String>,
    pub count: u64,
    /// As the caller wrote it (RFC 3339 UTC sorts in time order).
    pub first_seen: String,
    pub last_seen: String,
    pub example_message_id: String,
}

/// (sender, field, system, code).
pub type TallyKey = (String, String, String, String);

/// Codes seen without a mapping. Bounded: past `capacity` distinct codes,
/// new ones are only counted in [`UnmappedTally::dropped`], so a sender
/// sending random codes cannot grow it without end.
#[derive(Clone, Debug)]
pub struct UnmappedTally {
    entries: BTreeMap<TallyKey, TallyEntry>,
    capacity: usize,
    dropped: u64,
}

impl Default for UnmappedTally {
    fn default() -> UnmappedTally {
        UnmappedTally::with_capacity(100_000)
    }
}

impl UnmappedTally {
    pub fn with_capacity(capacity: usize) -> UnmappedTally {
        UnmappedTally {
            entries: BTreeMap::new(),
            capacity,
            dropped: 0,
        }
    }

    /// Records `code`, seen in message `message_id` at `seen_at`.
    pub fn record(&mut self, code: &UnmappedCode, message_id: &str, seen_at: &str) {
        let key = (
            code.sender.clone(),
            code.field.clone(),
            code.system.clone(),
            code.code.clone(),
        );
        if let Some(e) = self.entries.get_mut(&key) {
            e.count += 1;
            if seen_at < e.first_seen.as_str() {
                e.first_seen = seen_at.to_string();
            }
            if seen_at >= e.last_seen.as_str() {
                e.last_seen = seen_at.to_string();
                e.example_message_id = message_id.to_string();
            }
            if e.display.is_none() {
                e.display.clone_from(&code.display);
            }
            return;
        }
        if self.entries.len() >= self.capacity {
            self.dropped += 1;
            return;
        }
        self.entries.insert(
            key,
            TallyEntry {
                display: code.display.clone(),
                count: 1,
                first_seen: seen_at.to_string(),
                last_seen: seen_at.to_string(),
                example_message_id: message_id.to_string(),
            },
        );
    }

    pub fn entries(&self) -> impl Iterator<Item = (&TallyKey, &TallyEntry)> {
        self.entries.iter()
    }

    pub fn get(&self, sender: &str, field: &str, system: &str, code: &str) -> Option<&TallyEntry> {
        self.entries
            .get(&(sender.into(), field.into(), system.into(), code.into()))
    }

    /// Codes not recorded because the tally was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// The tally as a CSV map with the targets empty: fill in
    /// `target_system`, `target_code`, `target_display` and `equivalence`
    /// and load it back with [`crate::concept_maps_from_csv`]. Each row is
    /// scoped to the sender and field it was seen in.
    pub fn to_csv(&self) -> String {
        let mut w = csvfile::writer(Vec::new());
        let header: Vec<&str> = HEADER.iter().chain(TALLY_COLUMNS.iter()).copied().collect();
        // Writing to a Vec fails only on allocation failure.
        let _ = w.write_record(&header);
        for ((sender, field, system, code), e) in &self.entries {
            let count = e.count.to_string();
            let row = [
                system.as_str(),
                code,
                e.display.as_deref().unwrap_or_default(),
                "",
                "",
                "",
                "",
                sender,
                field,
                "",
                &count,
                &e.first_seen,
                &e.last_seen,
                &e.example_message_id,
            ];
            let _ = w.write_record(row);
        }
        let bytes = w.into_inner().unwrap_or_default();
        String::from_utf8(bytes).unwrap_or_default()
    }
}
