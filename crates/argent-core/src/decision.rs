//! The policy engine's verdict on one proposed action, and the roles that may approve.
//!
//! Outcomes are ordered `Allow < NeedsApproval < Deny` and a decision's outcome is the most
//! severe outcome of the rules that fired: deny wins over needs_approval wins over allow.
//! A deny is final: no role can approve it (regulatory stops are never overridable).

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::customer::str_enum;

/// Who may approve an action held for a human.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Collector,
    Manager,
    Compliance,
    Admin,
}
str_enum!(Role { Collector => "collector", Manager => "manager", Compliance => "compliance", Admin => "admin" });

/// The verdict. Ordered by severity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    NeedsApproval,
    Deny,
}
str_enum!(Outcome { Allow => "allow", NeedsApproval => "needs_approval", Deny => "deny" });

/// One rule that fired, with what it wants and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiredRule {
    /// The rule's id in the policy document, e.g. `us.quiet-hours`.
    pub id: String,
    pub outcome: Outcome,
    /// What is wrong, in words a model (and a collector) can act on.
    pub message: String,
    /// The law, regulation or internal policy the rule implements.
    pub citation: String,
    /// For `needs_approval`: the roles any one of which may approve. Empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<Role>,
}

/// The policy engine's decision: the outcome and every rule that fired.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub outcome: Outcome,
    pub rules: Vec<FiredRule>,
    /// For `needs_approval`: the pending approval item this action must be decided with
    /// (an email confirming, or offering terms of, an action still waiting for a person).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_with: Option<String>,
}

impl Default for Decision {
    fn default() -> Self {
        Decision::allow()
    }
}

impl Decision {
    /// No rule fired.
    pub fn allow() -> Decision {
        Decision {
            outcome: Outcome::Allow,
            rules: Vec::new(),
            held_with: None,
        }
    }

    /// Records a fired rule; the outcome becomes the most severe seen so far.
    pub fn fire(&mut self, rule: FiredRule) {
        self.outcome = self.outcome.max(rule.outcome);
        self.rules.push(rule);
    }

    pub fn is_allowed(&self) -> bool {
        self.outcome == Outcome::Allow
    }

    pub fn is_denied(&self) -> bool {
        self.outcome == Outcome::Deny
    }

    /// Ids of all fired rules, in firing order.
    pub fn rule_ids(&self) -> Vec<&str> {
        self.rules.iter().map(|r| r.id.as_str()).collect()
    }

    /// Rules that made the outcome (those whose own outcome equals it).
    pub fn decisive_rules(&self) -> impl Iterator<Item = &FiredRule> {
        self.rules.iter().filter(move |r| r.outcome == self.outcome)
    }

    /// Roles that may approve: for `needs_approval`, the roles named by *every* fired
    /// approval rule (one approver must satisfy all of them); empty for allow and deny.
    pub fn approvers(&self) -> Vec<Role> {
        if self.outcome != Outcome::NeedsApproval {
            return Vec::new();
        }
        Role::ALL
            .iter()
            .copied()
            .filter(|role| self.may_approve(*role))
            .collect()
    }

    /// Whether `role` may approve this decision. Never true for allow (nothing to approve)
    /// or deny (final).
    pub fn may_approve(&self, role: Role) -> bool {
        self.outcome == Outcome::NeedsApproval
            && self
                .rules
                .iter()
                .filter(|r| r.outcome == Outcome::NeedsApproval)
                .all(|r| r.approvers.contains(&role))
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.outcome)?;
        for r in &self.rules {
            write!(
                f,
                "\n  [{}] {}: {} ({})",
                r.outcome, r.id, r.message, r.citation
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, outcome: Outcome, approvers: &[Role]) -> FiredRule {
        FiredRule {
            id: id.into(),
            outcome,
            message: "m".into(),
            citation: "c".into(),
            approvers: approvers.to_vec(),
        }
    }

    #[test]
    fn deny_beats_needs_approval_beats_allow_in_any_order() {
        let mut d = Decision::allow();
        assert!(d.is_allowed());
        d.fire(rule("a", Outcome::NeedsApproval, &[Role::Manager]));
        assert_eq!(d.outcome, Outcome::NeedsApproval);
        d.fire(rule("b", Outcome::Deny, &[]));
        assert_eq!(d.outcome, Outcome::Deny);
        d.fire(rule("c", Outcome::NeedsApproval, &[Role::Manager]));
        assert_eq!(d.outcome, Outcome::Deny);
        assert_eq!(d.rule_ids(), ["a", "b", "c"]);
        assert_eq!(d.decisive_rules().count(), 1);
        // A deny is final: nobody may approve it.
        assert!(Role::ALL.iter().all(|r| !d.may_approve(*r)));
        assert!(d.approvers().is_empty());
    }

    #[test]
    fn approvers_are_the_roles_every_approval_rule_accepts() {
        let mut d = Decision::allow();
        d.fire(rule(
            "x",
            Outcome::NeedsApproval,
            &[Role::Collector, Role::Manager, Role::Admin],
        ));
        d.fire(rule(
            "y",
            Outcome::NeedsApproval,
            &[Role::Manager, Role::Compliance, Role::Admin],
        ));
        assert_eq!(d.approvers(), [Role::Manager, Role::Admin]);
        assert!(!d.may_approve(Role::Collector));
        assert!(!Decision::allow().may_approve(Role::Admin));
    }
}
