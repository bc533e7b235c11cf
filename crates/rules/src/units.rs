//! Units: each code the rules compare has one unit they compare it in, and
//! the spellings and conversions that reach it. A unit the rules cannot
//! convert is reported, never guessed.

use serde::Serialize;

/// A number with its unit, as spelled by the sender or as normalised.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Quantity {
    pub value: f64,
    pub unit: String,
}

/// Lactate's molar mass is 90.08 g/mol: 1 mmol/L is 9.008 mg/dL.
const LACTATE_MG_DL_PER_MMOL_L: f64 = 9.008;
/// Glucose, 180.16 g/mol: 1 mmol/L is 18.016 mg/dL.
const GLUCOSE_MG_DL_PER_MMOL_L: f64 = 18.016;
/// Calcium, 40.08 g/mol: 1 mmol/L is 4.008 mg/dL.
const CALCIUM_MG_DL_PER_MMOL_L: f64 = 4.008;
/// Creatinine, 113.12 g/mol: 1 mg/dL is 88.42 µmol/L.
const CREATININE_UMOL_L_PER_MG_DL: f64 = 88.42;
/// 1 kPa is 7.50062 mmHg.
const MMHG_PER_KPA: f64 = 7.500_62;

/// The LOINC codes whose values are monovalent ions, where mEq/L and
/// mmol/L are the same number.
const MONOVALENT_IONS: &[&str] = &["2823-3", "6298-4", "2951-2", "2947-0", "2075-0", "1963-8"];
const LACTATE: &[&str] = &["2524-7", "32693-4", "2518-9", "19240-1"];
const GLUCOSE: &[&str] = &["2345-7", "2339-0", "41653-7"];
const CALCIUM: &[&str] = &["17861-6"];
const CREATININE: &[&str] = &["2160-0", "38483-4"];

/// The unit the rules compare a LOINC code in (UCUM spelling), or `None`
/// for codes the rules know nothing about (their values are kept as sent).
pub fn rule_unit(loinc: &str) -> Option<&'static str> {
    Some(match loinc {
        // Body temperature.
        "8310-5" | "8331-1" | "8332-9" | "8333-7" | "8328-7" => "Cel",
        // Heart rate, respiratory rate.
        "8867-4" | "9279-1" => "/min",
        // Systolic blood pressure, PaCO2.
        "8480-6" | "2019-8" => "mm[Hg]",
        // Glasgow coma score total.
        "9269-2" => "{score}",
        // Leukocytes, platelets.
        "6690-2" | "26464-8" | "777-3" | "26515-7" => "10*3/uL",
        "718-7" => "g/dL",
        "10839-9" | "42757-5" => "ng/mL",
        code if LACTATE.contains(&code) || MONOVALENT_IONS.contains(&code) => "mmol/L",
        code if GLUCOSE.contains(&code)
            || CALCIUM.contains(&code)
            || CREATININE.contains(&code) =>
        {
            "mg/dL"
        }
        _ => return None,
    })
}

/// A unit's spelling reduced to compare spellings, not meanings: case,
/// spaces, `µ`/`μ`, `^` and the `x` of `x10^9/L` do not matter.
fn spelling(unit: &str) -> String {
    let mut s: String = unit
        .chars()
        .filter(|c| !c.is_whitespace())
        .map(|c| match c {
            'µ' | 'μ' => 'u',
            '^' => '*',
            '°' => 'o',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    if let Some(rest) = s.strip_prefix('x') {
        s = rest.to_owned();
    }
    s.replace("10e", "10*")
}

/// Converts `value unit` for `loinc` into [`rule_unit`]'s unit.
///
/// `Ok(None)`: the code has no rule unit (nothing to convert). `Err`: the
/// unit is not one the rules know for this code; the text says which.
pub fn to_rule_unit(loinc: &str, value: f64, unit: &str) -> Result<Option<Quantity>, String> {
    let Some(target) = rule_unit(loinc) else {
        return Ok(None);
    };
    let s = spelling(unit);
    let converted = match target {
        "Cel" => match s.as_str() {
            "cel" | "[degc]" | "degc" | "oc" | "c" => Some(value),
            "[degf]" | "degf" | "of" | "f" => Some((value - 32.0) * 5.0 / 9.0),
            _ => None,
        },
        "/min" => match s.as_str() {
            "" | "/min" | "1/min" | "min-1" | "bpm" | "beats/min" | "{beats}/min"
            | "breaths/min" | "{breaths}/min" | "/minute" => Some(value),
            _ => None,
        },
        "mm[Hg]" => match s.as_str() {
            "mm[hg]" | "mmhg" => Some(value),
            "kpa" => Some(value * MMHG_PER_KPA),
            _ => None,
        },
        "{score}" => Some(value),
        "10*3/uL" => match s.as_str() {
            "10*3/ul" | "k/ul" | "thou/ul" | "thousand/ul" | "10*9/l" | "/nl" | "10*3/mm3"
            | "k/mm3" | "1000/ul" => Some(value),
            // UCUM is case-sensitive: `G/L` is giga per litre; `g/L` grams.
            "g/l" if unit.trim() == "G/L" => Some(value),
            "/ul" | "/mm3" | "cells/ul" | "{cells}/ul" | "10*6/l" => Some(value / 1000.0),
            _ => None,
        },
        "g/dL" => match s.as_str() {
            "g/dl" | "gm/dl" => Some(value),
            "g/l" if unit.trim() != "G/L" => Some(value / 10.0),
            _ => None,
        },
        "ng/mL" => match s.as_str() {
            "ng/ml" | "ug/l" => Some(value),
            "ng/l" | "pg/ml" => Some(value / 1000.0),
            _ => None,
        },
        "mmol/L" => match s.as_str() {
            "mmol/l" => Some(value),
            "meq/l" if MONOVALENT_IONS.contains(&loinc) => Some(value),
            "mg/dl" if LACTATE.contains(&loinc) => Some(value / LACTATE_MG_DL_PER_MMOL_L),
            _ => None,
        },
        "mg/dL" => match s.as_str() {
            "mg/dl" => Some(value),
            "mmol/l" if GLUCOSE.contains(&loinc) => Some(value * GLUCOSE_MG_DL_PER_MMOL_L),
            "mmol/l" if CALCIUM.contains(&loinc) => Some(value * CALCIUM_MG_DL_PER_MMOL_L),
            "umol/l" if CREATININE.contains(&loinc) => Some(value / CREATININE_UMOL_L_PER_MG_DL),
            _ => None,
        },
        _ => None,
    };
    match converted {
        Some(value) => Ok(Some(Quantity {
            value,
            unit: target.to_owned(),
        })),
        None => Err(format!(
            "unit `{unit}` cannot be converted to {target} for LOINC {loinc}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn convert(loinc: &str, value: f64, unit: &str) -> f64 {
        to_rule_unit(loinc, value, unit).unwrap().unwrap().value
    }

    #[test]
    fn fahrenheit_temperature_becomes_celsius() {
        assert!((convert("8310-5", 101.3, "[degF]") - 38.5).abs() < 1e-9);
        assert!((convert("8310-5", 98.6, "°F") - 37.0).abs() < 1e-9);
        assert_eq!(convert("8310-5", 38.4, "Cel"), 38.4);
        assert_eq!(convert("8310-5", 38.4, "°C"), 38.4);
    }

    #[test]
    fn lactate_in_mg_per_dl_becomes_mmol_per_l() {
        assert!((convert("2524-7", 18.016, "mg/dL") - 2.0).abs() < 1e-9);
        assert_eq!(convert("2524-7", 2.0, "mmol/L"), 2.0);
    }

    #[test]
    fn white_cell_count_spellings_agree() {
        for unit in [
            "10*3/uL", "10^3/uL", "x10E3/uL", "K/uL", "10*9/L", "x10^9/L", "G/L", "10³/µL",
        ] {
            if unit.contains('³') {
                assert!(to_rule_unit("6690-2", 13.0, unit).is_err(), "{unit}");
                continue;
            }
            assert_eq!(convert("6690-2", 13.0, unit), 13.0, "{unit}");
        }
        assert_eq!(convert("6690-2", 13_000.0, "/uL"), 13.0);
    }

    #[test]
    fn milliequivalents_are_millimoles_only_for_monovalent_ions() {
        assert_eq!(convert("2823-3", 6.2, "mEq/L"), 6.2);
        assert!(to_rule_unit("2524-7", 2.0, "mEq/L").is_err());
    }

    #[test]
    fn haemoglobin_in_grams_per_litre_becomes_grams_per_decilitre() {
        assert_eq!(convert("718-7", 65.0, "g/L"), 6.5);
    }

    #[test]
    fn an_unknown_unit_is_an_error_naming_it_and_an_unknown_code_is_left_alone() {
        let err = to_rule_unit("8310-5", 38.0, "kelvin").unwrap_err();
        assert!(err.contains("kelvin") && err.contains("8310-5"), "{err}");
        assert_eq!(to_rule_unit("99999-9", 1.0, "furlongs"), Ok(None));
    }
}
