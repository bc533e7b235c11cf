//! An alert as a message: an HL7 v2.5.1 ORU^R01 whose OBX carries the
//! alert, the form the engine's alerts channel routes to its destinations.
//!
//! ```text
//! MSH|^~\&|CORRIDOR|RULES|||20240102103001+0000||ORU^R01^ORU_R01|ALERT-17|P|2.5.1
//! PID|1||E42^^^CORRIDOR^PI
//! OBR|1||ALERT-17^CORRIDOR|critical-value^Clinical alert: critical-value^CORRIDOR-RULES|||20240102101500+0000
//! OBX|1|ST|critical-value^critical-value v1^CORRIDOR-RULES|2823-3:high|Critical high result: ...|||AA|||F|||20240102101500+0000
//! OBX|2|ST|evidence^Evidence^CORRIDOR-RULES|1|2823-3 Potassium = 6.4 mmol/L HH at 20240102101500+0000 (MSG1 OBX[1])||||||F
//! ```
//!
//! OBX-8 says how urgent: `AA` critical, `A` warning, `N` information. The
//! patient is named by the enterprise id only (PID-3, type `PI`); no name.

use crate::alert::{Alert, Evidence, Severity};
use crate::facts::ObservationValue;
use crate::time::Timestamp;

/// HL7 v2 escaping for the default delimiters `|^~\&`.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// One line describing a piece of evidence: the code, value, time and where
/// it was read.
pub fn describe(evidence: &Evidence) -> String {
    match evidence {
        Evidence::Observation(o) => {
            let value = match &o.value {
                ObservationValue::Quantity(q) => format!("{} {}", q.value, q.unit),
                ObservationValue::Text(t) => t.clone(),
            };
            let flags: Vec<&str> = o.flags.iter().map(|f| f.as_hl7()).collect();
            format!(
                "{} {} = {}{}{} ({} {})",
                o.code.code,
                o.code.text,
                value,
                if flags.is_empty() { "" } else { " " },
                flags.join(","),
                o.source.control_id,
                o.source.segment,
            ) + &o.effective.map(|t| format!(" at {t}")).unwrap_or_default()
        }
        Evidence::Allergy(a) => format!(
            "allergy {} {} ({} {})",
            a.code.code, a.code.text, a.source.control_id, a.source.segment
        ),
        Evidence::Medication(m) => format!(
            "medication {} {} ({} {})",
            m.code.code, m.code.text, m.source.control_id, m.source.segment
        ),
        Evidence::TestOrder(t) => format!(
            "test order {} {} {:?}{} ({} {})",
            t.code.code,
            t.code.text,
            t.state,
            t.time.map(|t| format!(" at {t}")).unwrap_or_default(),
            t.source.control_id,
            t.source.segment
        ),
        Evidence::Custom(value) => {
            let text = value.to_string();
            if text.chars().count() > 300 {
                format!("{}...", text.chars().take(300).collect::<String>())
            } else {
                text
            }
        }
    }
}

/// The alert as an ORU^R01 with control id `control_id`, sent at `now`.
pub fn alert_oru(alert: &Alert, control_id: &str, now: Timestamp) -> String {
    let rule = alert.rule.as_str();
    let flag = match alert.severity {
        Severity::Critical => "AA",
        Severity::Warning => "A",
        Severity::Info => "N",
    };
    let mut text = format!(
        "MSH|^~\\&|CORRIDOR|RULES|||{now}||ORU^R01^ORU_R01|{control}|P|2.5.1\r\
         PID|1||{patient}^^^CORRIDOR^PI\r\
         OBR|1||{control}^CORRIDOR|{rule}^Clinical alert: {rule}^CORRIDOR-RULES|||{at}\r\
         OBX|1|ST|{rule}^{rule} v{version}^CORRIDOR-RULES|{key}|{summary}|||{flag}|||F|||{at}",
        now = now.to_hl7(),
        control = escape(control_id),
        patient = escape(&alert.patient.0),
        at = alert.at.to_hl7(),
        version = alert.rule_version,
        key = escape(&alert.key),
        summary = escape(&alert.summary),
    );
    for (i, evidence) in alert.evidence.iter().enumerate() {
        text.push_str(&format!(
            "\rOBX|{}|ST|evidence^Evidence^CORRIDOR-RULES|{}|{}||||||F",
            i + 2,
            i + 1,
            escape(&describe(evidence))
        ));
    }
    text.push('\r');
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{InMemoryHistory, PatientId, Rules, RulesConfig, extract};

    #[test]
    fn an_alert_becomes_an_oru_that_parses_with_its_evidence() {
        let bytes = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20240102103000||ORU^R01|MSG1|P|2.5.1\r\
              PID|1||123^^^HOSP^MR||DOE^JANE\r\
              OBR|1||F1|2823-3^Potassium^LN|||20240102101500\r\
              OBX|1|NM|2823-3^Potassium^LN||6.4|mmol/L|3.5-5.1|HH|||F\r";
        let message = hl7v2::Message::parse(bytes).unwrap();
        let rules = Rules::new(&RulesConfig::default()).unwrap();
        let now = Timestamp::parse_hl7("20240102103001").unwrap();
        let alerts = rules.evaluate_and_suppress(
            &PatientId("E|42".into()),
            &extract(&message),
            &InMemoryHistory::new(),
            now,
            &[],
        );
        let oru = alert_oru(&alerts[0], "ALERT-1", now);
        let parsed = hl7v2::Message::parse(oru.as_bytes()).unwrap();
        assert_eq!(parsed.get_str("MSH-9").unwrap().unwrap(), "ORU^R01^ORU_R01");
        assert_eq!(parsed.get_str("PID-3.1").unwrap().unwrap(), "E|42");
        assert_eq!(
            parsed.get_str("OBX-3.1").unwrap().unwrap(),
            "critical-value"
        );
        assert_eq!(parsed.get_str("OBX-4").unwrap().unwrap(), "2823-3:high");
        assert_eq!(parsed.get_str("OBX-8").unwrap().unwrap(), "AA");
        assert!(oru.contains("OBX|2|ST|evidence^Evidence^CORRIDOR-RULES|1|2823-3 Potassium = 6.4 mmol/L HH (MSG1 OBX[1])"));
        assert!(!oru.contains("DOE"));
    }
}
