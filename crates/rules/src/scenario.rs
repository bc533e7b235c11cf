//! A generator of labelled scenarios: synthetic patients over several days
//! with vital signs, laboratory results, allergies and orders, as HL7 v2
//! messages, each patient labelled with exactly the alerts that must fire.
//! [`Replay`] runs messages through the rules the way the engine will: one
//! at a time, against the record built from the messages before.
//!
//! Everything is synthetic (names, identifiers, values) and deterministic
//! for a seed. Background values are drawn from ranges that meet no rule
//! (normal vital signs, steady results); each event is a pattern that must
//! fire one alert, or a near miss that must not (a value exactly at a
//! strict limit, a criterion just outside the window, a cancelled result,
//! a deleted allergy, a resent order).

use crate::alert::{Alert, AlertKind};
use crate::checks::Rules;
use crate::extract::extract;
use crate::facts::{Finding, PatientId};
use crate::history::InMemoryHistory;
use crate::time::{Timestamp, Window};

/// The alerts a scenario must raise: rule and condition key. Every other
/// alert must not fire.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpectedAlert {
    pub rule: AlertKind,
    pub key: String,
}

/// One synthetic patient's messages, in the order they are sent.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub patient: PatientId,
    /// The events it holds, for a failing test to name.
    pub events: Vec<&'static str>,
    pub messages: Vec<String>,
    pub expected: Vec<ExpectedAlert>,
}

/// Runs messages through the rules against a record in memory, with
/// suppression against the alerts already fired.
pub struct Replay {
    rules: Rules,
    history: InMemoryHistory,
    fired: Vec<Alert>,
    findings: Vec<Finding>,
}

impl Replay {
    pub fn new(rules: Rules) -> Replay {
        Replay {
            rules,
            history: InMemoryHistory::new(),
            fired: Vec::new(),
            findings: Vec::new(),
        }
    }

    /// Parses and checks one message; hands back the alerts that fire.
    pub fn receive(
        &mut self,
        patient: &PatientId,
        message: &[u8],
    ) -> Result<Vec<Alert>, hl7v2::Error> {
        let parsed = hl7v2::Message::parse(message)?;
        let facts = extract(&parsed);
        let now = parsed
            .get_str("MSH-7")?
            .and_then(|t| Timestamp::parse_hl7(&t))
            .unwrap_or(Timestamp::from_unix_seconds(0));
        let alerts =
            self.rules
                .evaluate_and_suppress(patient, &facts, &self.history, now, &self.fired);
        self.history.record(patient, &facts);
        self.fired.extend(alerts.iter().cloned());
        self.findings.extend(facts.findings);
        Ok(alerts)
    }

    pub fn fired(&self) -> &[Alert] {
        &self.fired
    }

    /// What the messages held that could not be read.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
}

/// SplitMix64: a small, fixed generator, so a seed gives the same
/// scenarios on every platform and version.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A whole number in `low..=high`.
    fn int(&mut self, low: i64, high: i64) -> i64 {
        low + (self.next() % ((high - low + 1) as u64)) as i64
    }

    /// A number in `low..=high` with `decimals` decimal places.
    fn decimal(&mut self, low: f64, high: f64, decimals: i32) -> f64 {
        let scale = 10f64.powi(decimals);
        self.int((low * scale).round() as i64, (high * scale).round() as i64) as f64 / scale
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// One message under construction, with its time.
struct Sent {
    at: Timestamp,
    text: String,
}

/// Builds one patient's messages.
struct Chart {
    mrn: String,
    sent: Vec<Sent>,
    counter: usize,
}

/// One result: LOINC code, name, value, unit, flag, status.
struct LabResult<'a> {
    loinc: &'a str,
    name: &'a str,
    value: String,
    unit: &'a str,
    flag: &'a str,
    status: &'a str,
}

fn result<'a>(loinc: &'a str, name: &'a str, value: f64, unit: &'a str) -> LabResult<'a> {
    LabResult {
        loinc,
        name,
        value: format!("{value}"),
        unit,
        flag: "",
        status: "F",
    }
}

impl Chart {
    fn header(&mut self, at: Timestamp, kind: &str) -> String {
        self.counter += 1;
        format!(
            "MSH|^~\\&|SYNTH|HOSP|CORRIDOR|HOSP|{}||{kind}|{}-{}|P|2.5.1\rPID|1||{}^^^HOSP^MR||SYNTHETIC^PATIENT",
            at.to_hl7(),
            self.mrn,
            self.counter,
            self.mrn
        )
    }

    fn oru(&mut self, at: Timestamp, panel: (&str, &str), results: &[LabResult<'_>]) {
        let mut text = self.header(at, "ORU^R01");
        text.push_str(&format!(
            "\rOBR|1||F{}|{}^{}^LN|||{}",
            self.counter,
            panel.0,
            panel.1,
            at.to_hl7()
        ));
        for (i, r) in results.iter().enumerate() {
            text.push_str(&format!(
                "\rOBX|{}|NM|{}^{}^LN||{}|{}||{}|||{}|||{}",
                i + 1,
                r.loinc,
                r.name,
                r.value,
                r.unit,
                r.flag,
                r.status,
                at.to_hl7()
            ));
        }
        self.sent.push(Sent { at, text });
    }

    fn segments(&mut self, at: Timestamp, kind: &str, segments: &[String]) {
        let mut text = self.header(at, kind);
        for s in segments {
            text.push('\r');
            text.push_str(s);
        }
        self.sent.push(Sent { at, text });
    }

    fn vitals(
        &mut self,
        at: Timestamp,
        temperature: (f64, &str),
        heart: f64,
        breaths: f64,
        systolic: f64,
    ) {
        self.oru(
            at,
            ("85353-1", "Vital signs panel"),
            &[
                result("8310-5", "Body temperature", temperature.0, temperature.1),
                result("8867-4", "Heart rate", heart, "/min"),
                result("9279-1", "Respiratory rate", breaths, "/min"),
                result("8480-6", "Systolic blood pressure", systolic, "mm[Hg]"),
            ],
        );
    }
}

/// The events a patient can have. Each is on its own day, at 13:00, apart
/// from the background (vital signs at 00, 08 and 16 h, results at 06 h).
const EVENTS: &[&str] = &[
    "potassium-critical-high",
    "potassium-at-limit",
    "sodium-critical-low-meq",
    "inr-flagged-hh",
    "inr-flagged-h",
    "potassium-corrected-critical",
    "potassium-cancelled-critical",
    "sepsis-sirs-lactate",
    "sepsis-lactate-below-2",
    "sepsis-criteria-outside-window",
    "qsofa-positive",
    "qsofa-one-short",
    "haemoglobin-fall",
    "haemoglobin-small-fall",
    "creatinine-rise",
    "creatinine-small-rise",
    "allergy-class-named",
    "allergy-same-class",
    "allergy-same-code",
    "allergy-other-class",
    "allergy-deleted",
    "duplicate-cbc-at-window",
    "cbc-after-window",
    "cbc-order-resent",
];

/// `patients` scenarios for `seed`: each patient has four days of
/// background and up to three events.
pub fn generate(seed: u64, patients: usize) -> Vec<Scenario> {
    let mut dice = Dice(seed);
    (0..patients).map(|n| patient(&mut dice, n)).collect()
}

fn patient(dice: &mut Dice, n: usize) -> Scenario {
    let mrn = format!("SYN{n:05}");
    let mut chart = Chart {
        mrn: mrn.clone(),
        sent: Vec::new(),
        counter: 0,
    };
    // 2026-03-01T00:00Z plus up to a year.
    let start = Timestamp::from_unix_seconds(1_772_323_200 + dice.int(0, 364) * 86_400);
    let at = |day: i64, hour: i64, minute: i64| {
        start.plus(Window::seconds_of(day * 86_400 + hour * 3600 + minute * 60))
    };
    const DAYS: i64 = 4;
    let mut last_creatinine = Vec::new();
    let mut last_haemoglobin = Vec::new();
    // A food allergy some patients have, which no drug below matches.
    if dice.next() % 2 == 0 {
        chart.segments(
            at(0, 9, 0),
            "ADT^A08",
            &[
                "PV1|1|I".to_owned(),
                "AL1|1|FA|^Peanut^|MO|urticaria".to_owned(),
            ],
        );
    }
    for day in 0..DAYS {
        // Routine orders: paracetamol, and a metabolic panel (no retesting
        // interval in the table), every day.
        chart.segments(
            at(day, 9, 0),
            "RDE^O11",
            &[
                format!("ORC|NW|PCM{day}"),
                "RXE|1|PCM500^Paracetamol 500 mg tablet^LOCAL|500||mg".to_owned(),
            ],
        );
        chart.segments(
            at(day, 5, 0),
            "ORM^O01",
            &[
                format!("ORC|NW|CMP{day}"),
                format!("OBR|1|CMP{day}||24323-8^Comprehensive metabolic panel^LN"),
            ],
        );
        for hour in [0, 8, 16] {
            let fahrenheit = dice.next() % 2 == 0;
            let celsius = dice.decimal(36.5, 37.5, 1);
            let temperature = if fahrenheit {
                ((celsius * 9.0 / 5.0 + 32.0) * 10.0).round() / 10.0
            } else {
                celsius
            };
            let unit = if fahrenheit {
                dice.pick(&["[degF]", "degF", "°F"])
            } else {
                dice.pick(&["Cel", "°C"])
            };
            let (heart, breaths, systolic) = (
                dice.int(60, 85) as f64,
                dice.int(12, 18) as f64,
                dice.int(110, 140) as f64,
            );
            chart.vitals(
                at(day, hour, 0),
                (temperature, unit),
                heart,
                breaths,
                systolic,
            );
        }
        let creatinine = dice.decimal(0.8, 1.0, 2);
        let haemoglobin = dice.decimal(12.5, 14.0, 1);
        last_creatinine.push(creatinine);
        last_haemoglobin.push(haemoglobin);
        chart.oru(
            at(day, 6, 0),
            ("24323-8", "Comprehensive metabolic panel"),
            &[
                result("2823-3", "Potassium", dice.decimal(3.6, 4.8, 1), "mmol/L"),
                result("2951-2", "Sodium", dice.int(136, 144) as f64, "mmol/L"),
                result("2160-0", "Creatinine", creatinine, "mg/dL"),
                result("2524-7", "Lactate", dice.decimal(0.6, 1.5, 1), "mmol/L"),
            ],
        );
        chart.oru(
            at(day, 6, 0),
            ("57021-8", "CBC W Auto Differential panel"),
            &[
                result(
                    "6690-2",
                    "WBC",
                    dice.decimal(5.0, 10.0, 1),
                    dice.pick(&["10*3/uL", "10^9/L", "K/uL"]),
                ),
                result("718-7", "Hemoglobin", haemoglobin, "g/dL"),
                result("777-3", "Platelets", dice.int(200, 300) as f64, "10*3/uL"),
            ],
        );
    }

    let mut events: Vec<&'static str> = Vec::new();
    let mut expected = Vec::new();
    let count = dice.int(0, 3);
    for slot in 0..count {
        let event = dice.pick(EVENTS);
        // Each story at most once: the same condition a day later would be
        // suppressed or not depending on the window, and two allergy or
        // CBC stories would share the record (a CBC ordered on each of two
        // days is a duplicate, whatever each story says alone).
        if events.iter().any(|&e| family(e) == family(event)) {
            continue;
        }
        let day = slot + 1;
        events.push(event);
        let mut expect = |rule: AlertKind, key: &str| {
            expected.push(ExpectedAlert {
                rule,
                key: key.to_owned(),
            })
        };
        let t = at(day, 13, 0);
        match event {
            "potassium-critical-high" => {
                let mut r = result("2823-3", "Potassium", dice.decimal(6.2, 7.5, 1), "mmol/L");
                r.flag = dice.pick(&["HH", "H", ""]);
                chart.oru(t, ("2823-3", "Potassium"), &[r]);
                expect(AlertKind::CriticalValue, "2823-3:high");
            }
            "potassium-at-limit" => {
                let mut r = result("2823-3", "Potassium", 6.1, dice.pick(&["mmol/L", "mEq/L"]));
                r.flag = "H";
                chart.oru(t, ("2823-3", "Potassium"), &[r]);
            }
            "sodium-critical-low-meq" => {
                let r = result("2951-2", "Sodium", dice.int(110, 119) as f64, "mEq/L");
                chart.oru(t, ("2951-2", "Sodium"), &[r]);
                expect(AlertKind::CriticalValue, "2951-2:low");
            }
            "inr-flagged-hh" | "inr-flagged-h" => {
                let mut r = result("6301-6", "INR", dice.decimal(5.5, 8.0, 1), "{INR}");
                r.flag = if event == "inr-flagged-hh" { "HH" } else { "H" };
                chart.oru(t, ("34714-6", "INR"), &[r]);
                if event == "inr-flagged-hh" {
                    expect(AlertKind::CriticalValue, "6301-6:flag-HH");
                }
            }
            "potassium-corrected-critical" | "potassium-cancelled-critical" => {
                let mut r = result("2823-3", "Potassium", dice.decimal(6.5, 7.0, 1), "mmol/L");
                r.status = if event == "potassium-corrected-critical" {
                    "C"
                } else {
                    "X"
                };
                chart.oru(t, ("2823-3", "Potassium"), &[r]);
                if event == "potassium-corrected-critical" {
                    expect(AlertKind::CriticalValue, "2823-3:high");
                }
            }
            "sepsis-sirs-lactate" | "sepsis-lactate-below-2" | "sepsis-criteria-outside-window" => {
                let fever_f = dice.decimal(101.0, 103.0, 1);
                chart.oru(
                    t,
                    ("85353-1", "Vital signs panel"),
                    &[result("8310-5", "Body temperature", fever_f, "[degF]")],
                );
                // Outside the window: the second criterion and the lactate
                // come six hours and one minute after the fever.
                let later = if event == "sepsis-criteria-outside-window" {
                    at(day, 19, 1)
                } else {
                    at(day, 13, 20)
                };
                chart.oru(
                    later,
                    ("85353-1", "Vital signs panel"),
                    &[result(
                        "8867-4",
                        "Heart rate",
                        dice.int(105, 130) as f64,
                        "/min",
                    )],
                );
                let lactate = if event == "sepsis-lactate-below-2" {
                    result("2524-7", "Lactate", 1.9, "mmol/L")
                } else if dice.next() % 2 == 0 {
                    result("2524-7", "Lactate", dice.decimal(2.0, 4.5, 1), "mmol/L")
                } else {
                    // 18.0 to 40.5 mg/dL is 2.0 to 4.5 mmol/L.
                    result("2524-7", "Lactate", dice.decimal(18.1, 40.5, 1), "mg/dL")
                };
                chart.oru(
                    later.plus(Window::minutes(10)),
                    ("2524-7", "Lactate"),
                    &[lactate],
                );
                if event == "sepsis-sirs-lactate" {
                    expect(AlertKind::SepsisScreen, "sirs-lactate");
                }
            }
            "qsofa-positive" | "qsofa-one-short" => {
                let (breaths, systolic) = if event == "qsofa-positive" {
                    (dice.int(22, 30) as f64, dice.int(80, 100) as f64)
                } else {
                    (21.0, 101.0)
                };
                chart.oru(
                    t,
                    ("85353-1", "Vital signs panel"),
                    &[
                        result("9279-1", "Respiratory rate", breaths, "/min"),
                        result("8480-6", "Systolic blood pressure", systolic, "mm[Hg]"),
                    ],
                );
                if event == "qsofa-positive" {
                    expect(AlertKind::SepsisScreen, "qsofa");
                }
            }
            "haemoglobin-fall" | "haemoglobin-small-fall" => {
                let before = last_haemoglobin[day as usize];
                let fall = if event == "haemoglobin-fall" {
                    dice.decimal(2.0, 3.0, 1)
                } else {
                    dice.decimal(1.0, 1.9, 1)
                };
                let after = ((before - fall) * 10.0).round() / 10.0;
                chart.oru(
                    t,
                    ("718-7", "Hemoglobin"),
                    &[result("718-7", "Hemoglobin", after, "g/dL")],
                );
                if event == "haemoglobin-fall" {
                    expect(AlertKind::DeltaCheck, "718-7:fall");
                }
            }
            "creatinine-rise" | "creatinine-small-rise" => {
                let before = last_creatinine[day as usize];
                let rise = if event == "creatinine-rise" {
                    dice.decimal(0.3, 0.8, 2)
                } else {
                    dice.decimal(0.1, 0.29, 2)
                };
                let after = ((before + rise) * 100.0).round() / 100.0;
                chart.oru(
                    t,
                    ("2160-0", "Creatinine"),
                    &[result("2160-0", "Creatinine", after, "mg/dL")],
                );
                if event == "creatinine-rise" {
                    expect(AlertKind::DeltaCheck, "2160-0:rise");
                }
            }
            allergy if allergy.starts_with("allergy") => {
                let (allergy_segment, order) = match allergy {
                    "allergy-class-named" => (
                        "AL1|1|DA|^PENICILLIN^|SV|hives",
                        "RXE|1^^^20260301|723^Amoxicillin^RXNORM|500||mg",
                    ),
                    "allergy-same-class" => (
                        "IAM|1|DA|723^Amoxicillin^RXNORM|MO|rash|A|1",
                        "RXE|1^^^20260301|AMP1G^Ampicillin 1 g injection^L|1||g",
                    ),
                    "allergy-same-code" => (
                        "AL1|1|DA|723^Amoxicillin^RXNORM|SV|anaphylaxis",
                        "RXE|1^^^20260301|723^Amoxicillin^RXNORM|500||mg",
                    ),
                    "allergy-other-class" => (
                        "AL1|1|DA|^Penicillin^|MO|rash",
                        "RXE|1^^^20260301|2180^Cefazolin^RXNORM|1||g",
                    ),
                    _ => (
                        "IAM|1|DA|^Sulfa^|MO|rash|A|1",
                        "RXE|1^^^20260301|10180^Sulfamethoxazole^RXNORM|800||mg",
                    ),
                };
                chart.segments(
                    at(0, 10, 0),
                    "ADT^A08",
                    &["PV1|1|I".to_owned(), allergy_segment.to_owned()],
                );
                if allergy == "allergy-deleted" {
                    chart.segments(
                        at(0, 11, 0),
                        "ADT^A08",
                        &[
                            "PV1|1|I".to_owned(),
                            "IAM|1|DA|^Sulfa^|MO|rash|D|1".to_owned(),
                        ],
                    );
                }
                chart.segments(t, "RDE^O11", &[format!("ORC|NW|RX{day}"), order.to_owned()]);
                match allergy {
                    "allergy-class-named" | "allergy-same-class" => {
                        expect(AlertKind::AllergyMedication, "class:penicillins")
                    }
                    "allergy-same-code" => expect(AlertKind::AllergyMedication, "code:RXNORM|723"),
                    _ => {}
                }
            }
            "duplicate-cbc-at-window" | "cbc-after-window" | "cbc-order-resent" => {
                let order = |placer: &str| {
                    vec![
                        format!("ORC|NW|{placer}"),
                        format!("OBR|1|{placer}||58410-2^CBC panel^LN"),
                    ]
                };
                chart.segments(t, "ORM^O01", &order(&format!("L{day}A")));
                let (again, placer) = match event {
                    "duplicate-cbc-at-window" => (t.plus(Window::hours(24)), format!("L{day}B")),
                    "cbc-after-window" => (
                        t.plus(Window::seconds_of(24 * 3600 + 60)),
                        format!("L{day}B"),
                    ),
                    _ => (t.plus(Window::hours(2)), format!("L{day}A")),
                };
                chart.segments(again, "ORM^O01", &order(&placer));
                if event == "duplicate-cbc-at-window" {
                    expect(AlertKind::DuplicateTest, "58410-2");
                }
            }
            _ => {}
        }
    }
    chart.sent.sort_by_key(|s| s.at);
    expected.sort();
    Scenario {
        patient: PatientId(format!("E-{mrn}")),
        events,
        messages: chart.sent.into_iter().map(|s| s.text).collect(),
        expected,
    }
}

fn family(event: &str) -> &str {
    if event.starts_with("allergy") {
        "allergy"
    } else if event.contains("cbc") {
        "cbc"
    } else {
        event
    }
}
