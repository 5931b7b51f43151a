//! Cases: disputes, hardship, questions and other threads a person may need to own.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::customer::str_enum;
use crate::money::Money;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseKind {
    /// The customer disputes an invoice or part of one; dunning on it pauses.
    Dispute,
    /// The customer cannot pay as agreed (job loss, illness, cash-flow trouble).
    Hardship,
    /// The customer says payment was already sent.
    PaymentClaimed,
    /// A question about an invoice or the account.
    Question,
    Other,
}
str_enum!(CaseKind {
    Dispute => "dispute",
    Hardship => "hardship",
    PaymentClaimed => "payment_claimed",
    Question => "question",
    Other => "other",
});

/// Where a case is in its lifecycle.
///
/// Every kind goes `open` → (`in_progress`, once a person takes it) → `resolved`. A dispute
/// goes `open` | `in_progress` → `verification_sent` (the verification of the debt was sent
/// to the customer, so collection on it may resume, 15 U.S.C. 1692g(b)) → `resolved`
/// (closed, the debt stands), or to `upheld` (the customer was right: the disputed debt is
/// never collected) from any open status. A dispute cannot be resolved before its
/// verification is recorded, and is never `rejected` (the verification is its answer). A
/// payment claim or a hardship request that does not stand (no payment found; hardship
/// not accepted) is `rejected`; a question or other case is only ever resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    /// A person has taken the case and is working on it.
    InProgress,
    /// A dispute whose verification was sent to the customer; collection may resume.
    VerificationSent,
    Resolved,
    /// A dispute decided in the customer's favour; the disputed debt is never collected.
    Upheld,
    /// A payment claim or hardship request that did not stand; collection resumes.
    Rejected,
}
str_enum!(CaseStatus {
    Open => "open",
    InProgress => "in_progress",
    VerificationSent => "verification_sent",
    Resolved => "resolved",
    Upheld => "upheld",
    Rejected => "rejected",
});

impl CaseStatus {
    /// Whether a person still has something to do on the case.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            CaseStatus::Open | CaseStatus::InProgress | CaseStatus::VerificationSent
        )
    }
}

/// Why a case cannot move to the status asked for.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("case of kind {kind} cannot go from {from} to {to}: {why}")]
pub struct TransitionError {
    pub kind: CaseKind,
    pub from: CaseStatus,
    pub to: CaseStatus,
    pub why: &'static str,
}

impl CaseKind {
    /// Whether `from` → `to` is a step of this kind's lifecycle (see [`CaseStatus`]).
    pub fn check_transition(self, from: CaseStatus, to: CaseStatus) -> Result<(), TransitionError> {
        use CaseStatus::*;
        let why = match (self, from, to) {
            (_, Open, InProgress) => return Ok(()),
            (CaseKind::Dispute, Open | InProgress, VerificationSent | Upheld)
            | (CaseKind::Dispute, VerificationSent, Resolved | Upheld) => return Ok(()),
            (CaseKind::Dispute, Open | InProgress, Resolved) => {
                "record the verification sent to the customer first (15 U.S.C. 1692g(b)); a dispute found in the customer's favour is upheld"
            }
            (CaseKind::Dispute, _, Rejected) => {
                "a dispute is answered by its verification: record verification_sent, then resolve it"
            }
            (CaseKind::PaymentClaimed | CaseKind::Hardship, Open | InProgress, Rejected) => {
                return Ok(());
            }
            (_, Open | InProgress, Resolved) => return Ok(()),
            (_, Resolved | Upheld | Rejected, _) => "the case is closed",
            (_, InProgress, InProgress) => "the case is already in progress",
            (CaseKind::Dispute, VerificationSent, VerificationSent) => {
                "the verification is already recorded"
            }
            (CaseKind::Dispute, VerificationSent, InProgress) => {
                "the verification is already recorded; resolve or uphold the dispute"
            }
            (_, _, Open) => "a case does not go back to open",
            (_, _, Rejected) => "only a payment claim or a hardship request is rejected",
            _ => "only a dispute has a verification or an upheld outcome",
        };
        Err(TransitionError {
            kind: self,
            from,
            to,
            why,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub id: String,
    pub customer_id: String,
    pub kind: CaseKind,
    pub status: CaseStatus,
    pub invoice_numbers: Vec<String>,
    /// For a partial dispute, the amount in question.
    pub disputed_amount: Option<Money>,
    pub summary: String,
    pub opened_at: DateTime<Utc>,
}

impl Case {
    /// Whether this is a dispute that pauses collection on what it covers: one still
    /// `open` or `in_progress` (no verification recorded yet), or `upheld` (never
    /// collected again).
    pub fn pauses_collection(&self) -> bool {
        self.kind == CaseKind::Dispute
            && matches!(
                self.status,
                CaseStatus::Open | CaseStatus::InProgress | CaseStatus::Upheld
            )
    }

    /// Whether this case pauses dunning on `invoice_number` (see
    /// [`Case::pauses_collection`]); a dispute naming no invoice covers the account.
    pub fn pauses(&self, invoice_number: &str) -> bool {
        self.pauses_collection()
            && (self.invoice_numbers.is_empty()
                || self.invoice_numbers.iter().any(|n| n == invoice_number))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn dispute(status: CaseStatus) -> Case {
        Case {
            id: "K1".into(),
            customer_id: "C1".into(),
            kind: CaseKind::Dispute,
            status,
            invoice_numbers: vec!["INV-1".into()],
            disputed_amount: None,
            summary: "not mine".into(),
            opened_at: "2026-03-01T10:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn a_dispute_pauses_until_verified_and_for_ever_once_upheld() {
        assert!(dispute(CaseStatus::Open).pauses("INV-1"));
        assert!(dispute(CaseStatus::InProgress).pauses("INV-1"));
        assert!(!dispute(CaseStatus::Open).pauses("INV-2"));
        assert!(!dispute(CaseStatus::VerificationSent).pauses("INV-1"));
        assert!(!dispute(CaseStatus::Resolved).pauses("INV-1"));
        assert!(dispute(CaseStatus::Upheld).pauses("INV-1"));
        let mut q = dispute(CaseStatus::Open);
        q.kind = CaseKind::Question;
        assert!(!q.pauses("INV-1"));
    }

    #[test]
    fn the_dispute_lifecycle_allows_only_its_steps() {
        use CaseStatus::*;
        let d = CaseKind::Dispute;
        for (from, to) in [
            (Open, VerificationSent),
            (Open, Upheld),
            (VerificationSent, Resolved),
            (VerificationSent, Upheld),
        ] {
            assert!(d.check_transition(from, to).is_ok(), "{from} -> {to}");
        }
        for (from, to) in [
            (Open, Resolved),
            (Open, Open),
            (VerificationSent, VerificationSent),
            (VerificationSent, Open),
            (Resolved, Upheld),
            (Upheld, Resolved),
            (Upheld, VerificationSent),
        ] {
            let e = d.check_transition(from, to).unwrap_err();
            assert_eq!((e.from, e.to), (from, to));
        }
        assert!(
            d.check_transition(Open, Resolved)
                .unwrap_err()
                .to_string()
                .contains("verification")
        );
        assert!(d.check_transition(Open, InProgress).is_ok());
        assert!(d.check_transition(InProgress, VerificationSent).is_ok());
        assert!(d.check_transition(InProgress, Upheld).is_ok());
        assert!(d.check_transition(InProgress, Resolved).is_err());
        assert!(d.check_transition(InProgress, Rejected).is_err());
        assert!(d.check_transition(VerificationSent, InProgress).is_err());
        let q = CaseKind::Hardship;
        assert!(q.check_transition(Open, Resolved).is_ok());
        assert!(q.check_transition(Open, Rejected).is_ok());
        assert!(q.check_transition(InProgress, Rejected).is_ok());
        assert!(q.check_transition(Rejected, Resolved).is_err());
        let pc = CaseKind::PaymentClaimed;
        assert!(pc.check_transition(InProgress, Resolved).is_ok());
        assert!(pc.check_transition(InProgress, InProgress).is_err());
        assert!(CaseKind::Question.check_transition(Open, Rejected).is_err());
        assert!(
            CaseKind::Question
                .check_transition(InProgress, Resolved)
                .is_ok()
        );
        assert!(q.check_transition(Open, VerificationSent).is_err());
        assert!(q.check_transition(Open, Upheld).is_err());
        assert!(q.check_transition(Resolved, Open).is_err());
    }

    #[test]
    fn statuses_round_trip_as_text() {
        for s in CaseStatus::ALL {
            assert_eq!(s.as_str().parse::<CaseStatus>().unwrap(), *s);
        }
        assert!(CaseStatus::VerificationSent.is_open() && !CaseStatus::Upheld.is_open());
    }
}
