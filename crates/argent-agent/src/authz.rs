//! The only way to a side effect.
//!
//! Executors accept an [`Authorized`] action, and only two functions in this module can make
//! one: [`from_policy`] for an action the policy engine allowed, and [`from_approval`] for an
//! action a human with a permitted role approved. The struct has a private field, so no
//! other module or crate can build one:
//!
//! ```compile_fail
//! use argent_agent::authz::Authorized;
//! let forged = Authorized { call_id: "c1".into(), action: todo!(), basis: todo!(), seal: todo!() };
//! ```
//!
//! ```compile_fail
//! // Nor can a caller outside the gate turn a decision into an authorisation.
//! let a = argent_agent::authz::from_policy("c1", todo!(), &argent_core::Decision::allow());
//! ```

use argent_core::action::Action;
use argent_core::{Decision, Outcome, Role};

/// Why an action may run.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "basis", rename_all = "snake_case")]
pub enum Basis {
    /// The policy engine allowed it outright.
    PolicyAllow,
    /// A reviewer approved it (possibly after editing).
    HumanApproval {
        approval_id: String,
        reviewer: String,
        role: Role,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Seal;

/// An action cleared to execute, bound to one tool call id.
#[derive(Debug)]
pub struct Authorized {
    call_id: String,
    action: Action,
    basis: Basis,
    #[allow(dead_code)]
    seal: Seal,
}

impl Authorized {
    pub fn call_id(&self) -> &str {
        &self.call_id
    }
    pub fn action(&self) -> &Action {
        &self.action
    }
    pub fn basis(&self) -> &Basis {
        &self.basis
    }
}

/// Authorises an action the policy engine allowed. `None` unless the decision is `allow`.
pub(crate) fn from_policy(
    call_id: &str,
    action: Action,
    decision: &Decision,
) -> Option<Authorized> {
    (decision.outcome == Outcome::Allow).then(|| Authorized {
        call_id: call_id.to_string(),
        action,
        basis: Basis::PolicyAllow,
        seal: Seal,
    })
}

/// Authorises an action a reviewer approved. The decision is the policy's judgement of
/// exactly this action (re-judged after any edit): an `allow` needs nobody, a
/// `needs_approval` needs a role every fired approval rule names, and a `deny` can never be
/// approved.
pub(crate) fn from_approval(
    call_id: &str,
    action: Action,
    decision: &Decision,
    approval_id: &str,
    reviewer: &str,
    role: Role,
) -> Result<Authorized, String> {
    match decision.outcome {
        Outcome::Deny => Err(format!(
            "policy forbids this action ({}); no approval can override it",
            decision.rule_ids().join(", ")
        )),
        Outcome::NeedsApproval if !decision.may_approve(role) => Err(format!(
            "a {role} may not approve this; it needs one of: {}",
            decision
                .approvers()
                .iter()
                .map(|r| r.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
        _ => Ok(Authorized {
            call_id: call_id.to_string(),
            action,
            basis: Basis::HumanApproval {
                approval_id: approval_id.to_string(),
                reviewer: reviewer.to_string(),
                role,
            },
            seal: Seal,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argent_core::FiredRule;
    use argent_core::action::{EscalateArgs, Urgency};

    fn action() -> Action {
        Action::Escalate(EscalateArgs {
            customer_id: "C1".into(),
            reason: "r".into(),
            to_role: None,
            urgency: Urgency::Normal,
        })
    }

    fn decision(outcome: Outcome, approvers: Vec<Role>) -> Decision {
        let mut d = Decision::allow();
        d.fire(FiredRule {
            id: "r1".into(),
            outcome,
            message: "m".into(),
            citation: "c".into(),
            approvers,
        });
        d
    }

    #[test]
    fn only_allow_authorises_without_a_human() {
        assert!(from_policy("c", action(), &Decision::allow()).is_some());
        assert!(
            from_policy(
                "c",
                action(),
                &decision(Outcome::NeedsApproval, vec![Role::Collector])
            )
            .is_none()
        );
        assert!(from_policy("c", action(), &decision(Outcome::Deny, vec![])).is_none());
    }

    #[test]
    fn approval_needs_a_permitted_role_and_never_beats_deny() {
        let d = decision(Outcome::NeedsApproval, vec![Role::Manager]);
        assert!(from_approval("c", action(), &d, "a1", "bob", Role::Collector).is_err());
        let ok = from_approval("c", action(), &d, "a1", "mia", Role::Manager).unwrap();
        assert_eq!(ok.call_id(), "c");
        assert!(matches!(
            ok.basis(),
            Basis::HumanApproval {
                role: Role::Manager,
                ..
            }
        ));
        let deny = decision(Outcome::Deny, vec![]);
        let err = from_approval("c", action(), &deny, "a1", "root", Role::Admin).unwrap_err();
        assert!(err.contains("no approval can override"), "{err}");
    }
}
