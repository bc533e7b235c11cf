//! Duplicate tests: an order for a test already ordered or resulted for the
//! patient within the test's minimum retesting interval.

use crate::alert::{Alert, AlertKind, Evidence, Severity};
use crate::checks::{Rule, RuleInput};
use crate::config::{ConfigError, DuplicateTestConfig, RetestInterval, ShippedTables, merged};
use crate::facts::{LOINC, OrderState, TestOrder};
use crate::time::Timestamp;

#[derive(Clone, Debug)]
pub struct DuplicateTest {
    intervals: Vec<RetestInterval>,
}

impl DuplicateTest {
    pub fn shipped() -> Result<DuplicateTest, ConfigError> {
        DuplicateTest::from_config(&DuplicateTestConfig::default())
    }

    pub fn from_config(config: &DuplicateTestConfig) -> Result<DuplicateTest, ConfigError> {
        let shipped = ShippedTables::get()?;
        Ok(DuplicateTest {
            intervals: merged(
                &shipped.duplicate,
                config.shipped_tests,
                &config.tests,
                |r| r.loinc.as_str(),
            ),
        })
    }

    fn run(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        let RuleInput {
            patient,
            facts,
            history,
            now,
        } = *input;
        let mut alerts = Vec::new();
        for (i, order) in facts.test_orders.iter().enumerate() {
            if order.state != OrderState::Ordered || order.code.system != LOINC {
                continue;
            }
            let Some(interval) = self.intervals.iter().find(|r| r.loinc == order.code.code) else {
                continue;
            };
            let at = order.time.unwrap_or(now);
            let earlier_here = facts.test_orders[..i].iter().cloned();
            let earlier = history
                .test_orders(patient, &order.code, at.minus(interval.window))
                .into_iter()
                .filter(|o| o.source.control_id != order.source.control_id)
                .chain(earlier_here)
                .filter(|o| o.code.same_concept(&order.code) && o.state != OrderState::Cancelled)
                .filter(|o| !same_order(o, order))
                .filter(|o| o.time.is_some_and(|t| interval.window.contains(t, at)))
                .max_by_key(|o| o.time);
            if let Some(earlier) = earlier {
                let name = if interval.name.is_empty() {
                    order.code.text.clone()
                } else {
                    interval.name.clone()
                };
                let what = if earlier.state == OrderState::Resulted {
                    "resulted"
                } else {
                    "ordered"
                };
                alerts.push(Alert::new(
                    AlertKind::DuplicateTest,
                    Severity::Info,
                    patient,
                    order.code.code.clone(),
                    format!(
                        "Duplicate order: {name} was {what} {} before (minimum retesting interval {})",
                        since(earlier.time, at),
                        interval.window
                    ),
                    vec![Evidence::TestOrder(earlier), Evidence::TestOrder(order.clone())],
                    at,
                ));
            }
        }
        alerts
    }
}

/// The same order sent again (a status change, a resend) is not a duplicate.
fn same_order(a: &TestOrder, b: &TestOrder) -> bool {
    a.placer_order_number.is_some() && a.placer_order_number == b.placer_order_number
}

fn since(earlier: Option<Timestamp>, at: Timestamp) -> String {
    let seconds = earlier
        .map(|t| at.unix_seconds() - t.unix_seconds())
        .unwrap_or_default();
    if seconds >= 2 * 86_400 {
        format!("{} days", seconds / 86_400)
    } else {
        format!("{} hours", seconds / 3600)
    }
}

impl Rule for DuplicateTest {
    fn kind(&self) -> AlertKind {
        AlertKind::DuplicateTest
    }

    fn check(&self, input: &RuleInput<'_>) -> Vec<Alert> {
        self.run(input)
    }
}
