//! Invoices and the payments applied to them.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::money::Money;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The ERP's invoice number; unique across the ledger.
    pub number: String,
    pub customer_id: String,
    pub issue_date: NaiveDate,
    pub due_date: NaiveDate,
    pub amount: Money,
    /// The customer disputes this invoice; collection on it pauses until it is verified.
    pub disputed: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// Stable id, so a re-import replaces rather than duplicates.
    pub id: String,
    pub customer_id: String,
    pub invoice_number: String,
    pub amount: Money,
    pub received_on: NaiveDate,
}
