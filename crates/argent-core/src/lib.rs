//! argent's domain model. Pure: no I/O, no clocks, no randomness that is not seeded.
//!
//! Money is integer minor units with a currency ([`money::Money`]); calendar dates are
//! `NaiveDate` (an invoice is due on a day, not an instant); instants are `DateTime<Utc>`;
//! a customer's local time zone is an explicit `chrono_tz::Tz`.

pub mod action;
pub mod analytics;
pub mod bounds;
pub mod case;
pub mod customer;
pub mod debtors;
pub mod decision;
pub mod demo;
pub mod facts;
pub mod facts_import;
pub mod format;
pub mod import;
pub mod invoice;
pub mod ledger;
pub mod money;
pub mod ops;
pub mod plan;
pub mod promise;
pub mod risk;
pub mod signal;
pub mod task;

pub use action::{
    Action, ArgProblem, DecimalAmount, EscalateArgs, InstallmentArg, LogPromiseArgs, MoneyArg,
    OpenCaseArgs, ProposePlanArgs, ReadAgingArgs, RequestCallArgs, SendEmailArgs, ToolName,
    Urgency,
};
pub use analytics::{Dashboard, DashboardInput, SegmentCount, SegmentRow, dashboard};
pub use case::{Case, CaseKind, CaseStatus, TransitionError};
pub use customer::{Channel, Contact, Customer, CustomerFlags, Jurisdiction, Tier};
pub use decision::{Decision, FiredRule, Outcome, Role};
pub use facts::{AccountFacts, CustomerOffer, LimitOverride, LocalWindow, ValidationNotice};
pub use import::{ImportError, ImportFile, Portfolio};
pub use invoice::{Invoice, Payment};
pub use ledger::{AgingBucket, AgingReport};
pub use money::{Currency, Money, MoneyError};
pub use plan::{Frequency, Installment, PaymentPlan, PlanStatus, PlanTerms, TermsError};
pub use promise::{PromiseStatus, PromiseToPay};
pub use risk::{RiskAssessment, RiskSegment};
pub use signal::{SignalDetail, SignalKind, SignalStatus, SignalVerdict};
pub use task::{
    AgeBucket, PromiseJudgement, PromiseStanding, TaskAct, TaskKind, TaskStatus, check_task_act,
};
