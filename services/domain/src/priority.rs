//! The placement priority rule: 1 (most urgent) to 5, from severity and risk factors.
//!
//! Version 1 (documented in `docs/domain.md`):
//! - the base is the severity: SEVERE 1, MODERATE_II 2, MODERATE_I 3, MILD 4,
//!   ASYMPTOMATIC 5;
//! - one or more risk factors make it one step more urgent, three or more two steps;
//! - the result is never more urgent than 1.
//!
//! A change of the rule gets a new version number; events record the version that
//! computed each priority, so old decisions stay explainable. HQ may override the
//! result with a reason (`PriorityOverridden`).

use std::collections::BTreeSet;

use crate::values::{Priority, RiskFactor, Severity};

/// The version of [`compute`] that events record.
pub const PRIORITY_RULE_VERSION: u32 = 1;

pub fn compute(severity: Severity, risk_factors: &BTreeSet<RiskFactor>) -> Priority {
    let base: u8 = match severity {
        Severity::Severe => 1,
        Severity::ModerateII => 2,
        Severity::ModerateI => 3,
        Severity::Mild => 4,
        Severity::Asymptomatic => 5,
    };
    let steps: u8 = match risk_factors.len() {
        0 => 0,
        1 | 2 => 1,
        _ => 2,
    };
    let value = base.saturating_sub(steps).max(1);
    Priority::new(i64::from(value)).unwrap_or(Priority::MOST_URGENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn risks(factors: &[RiskFactor]) -> BTreeSet<RiskFactor> {
        factors.iter().copied().collect()
    }

    #[test]
    fn severity_sets_the_base() {
        assert_eq!(compute(Severity::Severe, &risks(&[])).get(), 1);
        assert_eq!(compute(Severity::ModerateII, &risks(&[])).get(), 2);
        assert_eq!(compute(Severity::ModerateI, &risks(&[])).get(), 3);
        assert_eq!(compute(Severity::Mild, &risks(&[])).get(), 4);
        assert_eq!(compute(Severity::Asymptomatic, &risks(&[])).get(), 5);
    }

    #[test]
    fn risk_factors_raise_urgency_but_never_past_one() {
        use RiskFactor::*;
        assert_eq!(compute(Severity::Mild, &risks(&[Age65Plus])).get(), 3);
        assert_eq!(
            compute(Severity::Mild, &risks(&[Age65Plus, Diabetes])).get(),
            3
        );
        assert_eq!(
            compute(Severity::Mild, &risks(&[Age65Plus, Diabetes, Obesity])).get(),
            2
        );
        assert_eq!(
            compute(
                Severity::ModerateII,
                &risks(&[Age65Plus, Diabetes, Obesity])
            )
            .get(),
            1
        );
        assert_eq!(compute(Severity::Severe, &risks(&[Dialysis])).get(), 1);
    }
}
