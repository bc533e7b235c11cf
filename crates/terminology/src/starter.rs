//! The starter content shipped with Corridor: common laboratory tests
//! (local mnemonics, system `L`) mapped to LOINC, for OBX-3.

use crate::csv_map::concept_maps_from_csv;
use crate::model::ConceptMap;

/// The URL of the starter map, for a step's `maps`.
pub const LOINC_STARTER_URL: &str = "corridor:starter/loinc-lab";

/// The notice LOINC's licence asks to ship with its content.
pub const LOINC_NOTICE: &str = include_str!("../data/NOTICE-LOINC.txt");

const LOINC_STARTER_CSV: &str = include_str!("../data/loinc-starter.csv");

/// The starter map: 34 common tests (GLU, NA, K, ..., PT, INR, PTT) to
/// LOINC, each `narrower` (the LOINC code names a specimen the mnemonic
/// does not). See `LOINC_NOTICE`.
pub fn loinc_starter_map() -> Vec<ConceptMap> {
    // Shipped data, checked by this crate's tests: an error here is a bug
    // in the file, and an empty map is safer than a panic.
    concept_maps_from_csv(LOINC_STARTER_URL, LOINC_STARTER_CSV).unwrap_or_default()
}
