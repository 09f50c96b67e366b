//! The part of a response field's condition that reads the response's
//! status (`response_header.Cache-Control if status 404 = no-store`,
//! HAProxy's `http-response set-header ... if { status 404 }`). The rest
//! of a condition is asked of the request as it is routed; this part only
//! once there is a response, whoever gives it (a backend, the cache, the
//! proxy itself).

/// Each `status <list>` and `not status <list>` of one condition: all
/// must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusRule(Box<[StatusTest]>);

/// One `status <list>`, negated or not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusTest {
    pub negated: bool,
    /// Inclusive ranges, as written.
    pub ranges: Box<[(u16, u16)]>,
}

impl StatusRule {
    /// `None` for no test at all.
    pub fn new(tests: Vec<StatusTest>) -> Option<StatusRule> {
        (!tests.is_empty()).then(|| StatusRule(tests.into()))
    }

    pub fn met(&self, status: u16) -> bool {
        self.0.iter().all(|test| {
            let listed = (test.ranges.iter()).any(|&(low, high)| (low..=high).contains(&status));
            listed != test.negated
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_test_must_hold_each_as_its_ranges_and_negation_say() {
        let test = |negated, ranges: &[(u16, u16)]| StatusTest {
            negated,
            ranges: ranges.into(),
        };
        assert_eq!(StatusRule::new(Vec::new()), None);
        let errors = StatusRule::new(vec![test(false, &[(400, 499), (503, 503)])]).unwrap();
        assert!(errors.met(404) && errors.met(503));
        assert!(!errors.met(200) && !errors.met(502));
        let but_404 =
            StatusRule::new(vec![test(false, &[(400, 499)]), test(true, &[(404, 404)])]).unwrap();
        assert!(but_404.met(403) && !but_404.met(404) && !but_404.met(500));
    }
}
