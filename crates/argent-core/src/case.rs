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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    Open,
    Resolved,
}
str_enum!(CaseStatus { Open => "open", Resolved => "resolved" });

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
    /// Whether this case pauses dunning on `invoice_number`.
    pub fn pauses(&self, invoice_number: &str) -> bool {
        self.status == CaseStatus::Open
            && self.kind == CaseKind::Dispute
            && (self.invoice_numbers.is_empty()
                || self.invoice_numbers.iter().any(|n| n == invoice_number))
    }
}
