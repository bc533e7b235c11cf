//! Units: OBX-6 checked against UCUM, common spellings normalised to UCUM,
//! and conversions with exact decimal arithmetic.
//!
//! Corridor does not implement UCUM's grammar: it knows the units laboratory
//! results commonly use (below), and the spellings senders commonly write
//! instead. A unit in neither list is reported `Unknown`, never guessed.

use rust_decimal::{Decimal, RoundingStrategy};

/// UCUM codes seen in laboratory results. Written from the UCUM
/// specification's syntax (case-sensitive: `L` is litre, `10*3` is a
/// thousand, `[iU]` an international unit). `UCUM` lists them; `is_ucum`
/// matches them (compiled to a decision on length and bytes, not a scan).
macro_rules! ucum_codes {
    ($($code:literal),* $(,)?) => {
        #[cfg(test)]
        const UCUM: &[&str] = &[$($code),*];

        fn is_ucum(unit: &str) -> bool {
            matches!(unit, $($code)|*)
        }
    };
}

ucum_codes!(
    "%",
    "/uL",
    "/L",
    "10*3/uL",
    "10*6/uL",
    "10*9/L",
    "10*12/L",
    "[iU]/L",
    "[IU]/L",
    "U/L",
    "m[iU]/L",
    "m[IU]/L",
    "u[iU]/mL",
    "u[IU]/mL",
    "g/dL",
    "g/L",
    "mg/dL",
    "mg/L",
    "ug/dL",
    "ug/L",
    "ng/mL",
    "ng/dL",
    "ng/L",
    "pg/mL",
    "mmol/L",
    "umol/L",
    "nmol/L",
    "pmol/L",
    "mol/L",
    "meq/L",
    "mosm/kg",
    "fL",
    "pg",
    "s",
    "min",
    "h",
    "mm/h",
    "mL/min",
    "mL/min/{1.73_m2}",
    "mm[Hg]",
    "Cel",
    "[degF]",
    "kg",
    "g",
    "mg",
    "ug",
    "cm",
    "m",
    "L",
    "mL",
    "dL",
    "{ratio}",
    "{INR}",
    "1",
    "kPa",
    "/min",
    "mmol/mol",
);

/// Spellings senders write, and their UCUM code (compared ignoring case
/// and surrounding spaces; UCUM codes themselves are matched exactly first).
/// `SPELLINGS` lists them; `spelling` matches a lower-case unit against them.
macro_rules! spellings {
    ($($spelling:literal => $code:literal),* $(,)?) => {
        #[cfg(test)]
        const SPELLINGS: &[(&str, &str)] = &[$(($spelling, $code)),*];

        fn spelling(lower: &str) -> Option<&'static str> {
            match lower {
                $($spelling => Some($code),)*
                _ => None,
            }
        }
    };
}

spellings!(
    "mg/dl" => "mg/dL",
    "g/dl" => "g/dL",
    "ug/dl" => "ug/dL",
    "mcg/dl" => "ug/dL",
    "ng/dl" => "ng/dL",
    "mmol/l" => "mmol/L",
    "umol/l" => "umol/L",
    "µmol/l" => "umol/L",
    "nmol/l" => "nmol/L",
    "pmol/l" => "pmol/L",
    "mg/l" => "mg/L",
    "g/l" => "g/L",
    "ng/l" => "ng/L",
    "ng/ml" => "ng/mL",
    "pg/ml" => "pg/mL",
    "mcg/l" => "ug/L",
    "meq/l" => "meq/L",
    "u/l" => "U/L",
    "iu/l" => "[iU]/L",
    "miu/l" => "m[iU]/L",
    "uiu/ml" => "u[iU]/mL",
    "µiu/ml" => "u[iU]/mL",
    "10^3/ul" => "10*3/uL",
    "10e3/ul" => "10*3/uL",
    "x10e3/ul" => "10*3/uL",
    "k/ul" => "10*3/uL",
    "thou/ul" => "10*3/uL",
    "10^6/ul" => "10*6/uL",
    "10e6/ul" => "10*6/uL",
    "x10e6/ul" => "10*6/uL",
    "m/ul" => "10*6/uL",
    "mil/ul" => "10*6/uL",
    "10^9/l" => "10*9/L",
    "x10^9/l" => "10*9/L",
    "10^12/l" => "10*12/L",
    "x10^12/l" => "10*12/L",
    "fl" => "fL",
    "sec" => "s",
    "secs" => "s",
    "seconds" => "s",
    "mm/hr" => "mm/h",
    "mmhg" => "mm[Hg]",
    "deg c" => "Cel",
    "degc" => "Cel",
    "°c" => "Cel",
    "ml/min/1.73m2" => "mL/min/{1.73_m2}",
    "percent" => "%",
    "ratio" => "{ratio}",
    "inr" => "{INR}",
);

/// What is known of a unit as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UnitCheck {
    /// A UCUM code Corridor knows, as written.
    Ucum,
    /// A common spelling of this UCUM code.
    Spelling(&'static str),
    /// Neither.
    Unknown,
}

/// Checks `unit` against UCUM and the common spellings.
pub fn check(unit: &str) -> UnitCheck {
    let unit = unit.trim();
    if is_ucum(unit) {
        return UnitCheck::Ucum;
    }
    // The spellings are lower case: a short ASCII unit is lowered in a
    // buffer on the stack, anything else in a new string.
    let mut buffer = [0u8; 24];
    let found = match buffer.get_mut(..unit.len()) {
        Some(lower) if unit.is_ascii() => {
            lower.copy_from_slice(unit.as_bytes());
            lower.make_ascii_lowercase();
            std::str::from_utf8(lower).ok().and_then(spelling)
        }
        _ => spelling(&unit.to_lowercase()),
    };
    match found {
        Some(ucum) => UnitCheck::Spelling(ucum),
        None => UnitCheck::Unknown,
    }
}

/// The UCUM code for `unit`: itself when it is one, the code a common
/// spelling stands for, else `None`.
pub fn normalise(unit: &str) -> Option<&str> {
    match check(unit) {
        UnitCheck::Ucum => Some(unit.trim()),
        UnitCheck::Spelling(ucum) => Some(ucum),
        UnitCheck::Unknown => None,
    }
}

/// How a conversion changes the number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Factor {
    MultiplyBy(Decimal),
    DivideBy(Decimal),
}

/// A conversion a map asks for: values of `code` (when given) in `from`
/// become values in `to`, rounded to `decimals` places (half away from zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    /// The test it applies to, canonical system and code; `None` for any.
    pub code: Option<(String, String)>,
    pub from: String,
    pub to: String,
    pub factor: Factor,
    pub decimals: u32,
}

/// A converted value, with the original kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Converted {
    pub value: Decimal,
    pub unit: String,
    pub original_value: String,
    pub original_unit: String,
}

impl Conversion {
    /// Glucose, mg/dL to mmol/L: divided by 18.016 (the molar mass of
    /// glucose, 180.16 g/mol, over 10 dL per litre), two decimals.
    pub fn glucose_mg_dl_to_mmol_l() -> Conversion {
        Conversion {
            code: Some(("http://loinc.org".into(), "2345-7".into())),
            from: "mg/dL".into(),
            to: "mmol/L".into(),
            factor: Factor::DivideBy(Decimal::new(18016, 3)),
            decimals: 2,
        }
    }

    /// Glucose, mmol/L to mg/dL: multiplied by 18.016, no decimals.
    pub fn glucose_mmol_l_to_mg_dl() -> Conversion {
        Conversion {
            code: Some(("http://loinc.org".into(), "2345-7".into())),
            from: "mmol/L".into(),
            to: "mg/dL".into(),
            factor: Factor::MultiplyBy(Decimal::new(18016, 3)),
            decimals: 0,
        }
    }

    /// Converts `value` written in `unit` (normalised first). `None` when
    /// the unit is not this conversion's, or the value is not a plain
    /// decimal number (`<5`, `POS`, an empty value stay as they are).
    pub fn apply(&self, value: &str, unit: &str) -> Option<Converted> {
        if normalise(unit)? != self.from {
            return None;
        }
        let number: Decimal = value.trim().parse().ok()?;
        let exact = match self.factor {
            Factor::MultiplyBy(f) => number.checked_mul(f)?,
            Factor::DivideBy(f) => number.checked_div(f)?,
        };
        Some(Converted {
            value: exact
                .round_dp_with_strategy(self.decimals, RoundingStrategy::MidpointAwayFromZero),
            unit: self.to.clone(),
            original_value: value.to_string(),
            original_unit: unit.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_are_lower_case_so_ascii_units_compare_ignoring_case() {
        for (spelling, _) in SPELLINGS {
            assert_eq!(*spelling, spelling.to_lowercase());
        }
        assert_eq!(check("MG/DL"), UnitCheck::Spelling("mg/dL"));
        assert_eq!(check(" Mg/dl "), UnitCheck::Spelling("mg/dL"));
        assert_eq!(check("mg/dL"), UnitCheck::Ucum);
        assert_eq!(check("°C"), UnitCheck::Spelling("Cel"));
        assert_eq!(check("DEG C"), UnitCheck::Spelling("Cel"));
        assert_eq!(check("furlongs"), UnitCheck::Unknown);
        assert_eq!(
            check("a unit longer than the stack buffer"),
            UnitCheck::Unknown
        );
    }

    #[test]
    fn every_listed_code_and_spelling_is_matched() {
        for code in UCUM {
            assert_eq!(check(code), UnitCheck::Ucum, "{code}");
        }
        for (spelling, code) in SPELLINGS {
            assert!(UCUM.contains(code), "{code}");
            assert_eq!(check(spelling), UnitCheck::Spelling(code), "{spelling}");
            let upper = spelling.to_uppercase();
            // `U/L` upper-cased is UCUM itself.
            if spelling.is_ascii() && !UCUM.contains(&upper.as_str()) {
                assert_eq!(check(&upper), UnitCheck::Spelling(code), "{spelling}");
            }
        }
    }
}
