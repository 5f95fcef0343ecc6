//! Which conditions a round leaves behind, and which of them are news: a condition is
//! announced when it appears, not again while it lasts, and (failures and guards) announced as
//! resolved when it clears. A condition whose announcement could not be sent is forgotten, so
//! the next round that still has it tries again.

use std::collections::BTreeMap;

/// Something an operator is told about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// The round failed: a source or target could not be read, the plan of a sync has errors,
    /// an operation failed, or the round could not start (state locked, config).
    RoundFailed,
    /// The mass-removal guard stopped this sync; it was not applied.
    GuardBlocked { sync: String },
    /// The round had changes to apply: the source or the target moved since the last round.
    Drift,
}

impl Condition {
    /// Whether clearing it is announced. Drift is corrected by the round that finds it, so
    /// "no drift" is not news.
    pub fn announces_resolution(&self) -> bool {
        !matches!(self, Condition::Drift)
    }
}

/// What to announce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A condition that was not there (or not announced) before, with its description.
    Raised(Condition, String),
    /// A condition announced earlier that the last round no longer has.
    Resolved(Condition),
}

/// The conditions announced so far.
#[derive(Debug, Default)]
pub struct Tracker {
    announced: BTreeMap<Condition, ()>,
}

impl Tracker {
    /// The notices for a round that left `now` (each condition with its description).
    /// Conditions raised here count as announced; call [`Tracker::not_sent`] for those whose
    /// message did not go out.
    pub fn observe(&mut self, now: &BTreeMap<Condition, String>) -> Vec<Notice> {
        self.observe_with(now, &|_| false)
    }

    /// [`Tracker::observe`] for a round that could not tell whether some conditions still hold
    /// (`undetermined`: a guard on a sync the round could not plan): those stay announced,
    /// neither resolved nor raised again.
    pub fn observe_with(
        &mut self,
        now: &BTreeMap<Condition, String>,
        undetermined: &dyn Fn(&Condition) -> bool,
    ) -> Vec<Notice> {
        let mut notices = Vec::new();
        let gone: Vec<Condition> = self
            .announced
            .keys()
            .filter(|c| !now.contains_key(*c) && !undetermined(c))
            .cloned()
            .collect();
        for c in gone {
            self.announced.remove(&c);
            if c.announces_resolution() {
                notices.push(Notice::Resolved(c));
            }
        }
        for (c, text) in now {
            if self.announced.insert(c.clone(), ()).is_none() {
                notices.push(Notice::Raised(c.clone(), text.clone()));
            }
        }
        notices
    }

    /// The announcement of `notice` failed: a raised condition is forgotten (announced again
    /// next round if it lasts); a resolution is not retried.
    pub fn not_sent(&mut self, notice: &Notice) {
        if let Notice::Raised(c, _) = notice {
            self.announced.remove(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(conds: &[Condition]) -> BTreeMap<Condition, String> {
        conds
            .iter()
            .map(|c| (c.clone(), format!("{c:?}")))
            .collect()
    }

    fn guard(s: &str) -> Condition {
        Condition::GuardBlocked {
            sync: s.to_string(),
        }
    }

    #[test]
    fn a_lasting_condition_is_announced_once_and_resolved_once() {
        let mut t = Tracker::default();
        assert!(t.observe(&round(&[])).is_empty());
        let first = t.observe(&round(&[Condition::RoundFailed]));
        assert_eq!(
            first,
            [Notice::Raised(
                Condition::RoundFailed,
                "RoundFailed".to_string()
            )]
        );
        assert!(t.observe(&round(&[Condition::RoundFailed])).is_empty());
        assert!(t.observe(&round(&[Condition::RoundFailed])).is_empty());
        assert_eq!(
            t.observe(&round(&[])),
            [Notice::Resolved(Condition::RoundFailed)]
        );
        assert!(t.observe(&round(&[])).is_empty());
        // Back again: news again.
        assert_eq!(t.observe(&round(&[Condition::RoundFailed])).len(), 1);
    }

    #[test]
    fn guards_are_tracked_per_sync() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(&round(&[guard("a")])).len(), 1);
        // A round that could not plan `a` cannot say the guard was lifted: nothing is sent,
        // and the guard stays announced.
        assert!(
            t.observe_with(&round(&[]), &|c| *c == guard("a"))
                .is_empty()
        );
        assert!(t.observe(&round(&[guard("a")])).is_empty());
        let n = t.observe(&round(&[guard("a"), guard("b")]));
        assert_eq!(n, [Notice::Raised(guard("b"), format!("{:?}", guard("b")))]);
        let n = t.observe(&round(&[guard("b")]));
        assert_eq!(n, [Notice::Resolved(guard("a"))]);
    }

    #[test]
    fn drift_is_announced_when_new_and_its_end_is_not_news() {
        let mut t = Tracker::default();
        assert_eq!(t.observe(&round(&[Condition::Drift])).len(), 1);
        assert!(t.observe(&round(&[Condition::Drift])).is_empty());
        assert!(t.observe(&round(&[])).is_empty());
        assert_eq!(t.observe(&round(&[Condition::Drift])).len(), 1);
    }

    #[test]
    fn an_announcement_that_failed_is_tried_again_next_round() {
        let mut t = Tracker::default();
        let n = t.observe(&round(&[Condition::RoundFailed]));
        t.not_sent(&n[0]);
        assert_eq!(t.observe(&round(&[Condition::RoundFailed])).len(), 1);
        assert!(t.observe(&round(&[Condition::RoundFailed])).is_empty());
    }
}
