//! Who approves a request to activate a document version, per document kind, and who may
//! roll a document back in an emergency: `governance/four_eyes.toml`, compiled in.
//!
//! The rule that a requester never approves their own request is not configurable: the
//! store enforces it (`argent_store::doc_requests`).

use std::collections::BTreeMap;

use serde::Deserialize;

use argent_core::Role;
use argent_store::DocKind;

/// The repository's rules, as compiled into this binary.
pub const FOUR_EYES_TOML: &str = include_str!("../../../governance/four_eyes.toml");

/// Approver roles per document kind, and the roles of an emergency rollback.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FourEyes {
    approvers: BTreeMap<DocKind, Vec<Role>>,
    emergency_rollback: Vec<Role>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    approvers: BTreeMap<DocKind, Vec<Role>>,
    emergency: Emergency,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Emergency {
    rollback: Vec<Role>,
}

impl FourEyes {
    /// Parses a four-eyes document. Every document kind must name at least one approver
    /// role; an unknown kind, role or key is an error naming it.
    pub fn from_toml(text: &str) -> Result<FourEyes, String> {
        let f: File = toml::from_str(text).map_err(|e| format!("four-eyes rules: {e}"))?;
        for kind in [DocKind::Prompt, DocKind::Policy, DocKind::Procedure] {
            if f.approvers.get(&kind).is_none_or(Vec::is_empty) {
                return Err(format!(
                    "four-eyes rules: [approvers] {kind} names no role (every kind needs one)"
                ));
            }
        }
        Ok(FourEyes {
            approvers: f.approvers,
            emergency_rollback: f.emergency.rollback,
        })
    }

    /// `governance/four_eyes.toml` as compiled in.
    pub fn repository_default() -> FourEyes {
        // The file is in the repository and a test parses it: it cannot fail to load.
        #[allow(clippy::expect_used)]
        FourEyes::from_toml(FOUR_EYES_TOML).expect("governance/four_eyes.toml loads")
    }

    /// The roles that may approve activating a version of `kind`.
    pub fn approvers(&self, kind: DocKind) -> &[Role] {
        self.approvers.get(&kind).map_or(&[], Vec::as_slice)
    }

    pub fn may_approve(&self, kind: DocKind, role: Role) -> bool {
        self.approvers(kind).contains(&role)
    }

    /// The roles that may roll back at once, without a second person.
    pub fn emergency_rollback(&self) -> &[Role] {
        &self.emergency_rollback
    }

    pub fn may_roll_back_in_emergency(&self, role: Role) -> bool {
        self.emergency_rollback.contains(&role)
    }
}

impl Default for FourEyes {
    fn default() -> Self {
        FourEyes::repository_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_repository_rules_load_and_say_what_the_issue_asks() {
        let r = FourEyes::repository_default();
        assert_eq!(r.approvers(DocKind::Policy), &[Role::Compliance]);
        assert_eq!(r.approvers(DocKind::Prompt), &[Role::Manager]);
        assert!(r.may_approve(DocKind::Procedure, Role::Compliance));
        assert!(!r.may_approve(DocKind::Policy, Role::Manager));
        assert!(!r.may_approve(DocKind::Policy, Role::Admin));
        assert!(r.may_roll_back_in_emergency(Role::Manager));
        assert!(r.may_roll_back_in_emergency(Role::Admin));
        assert!(!r.may_roll_back_in_emergency(Role::Compliance));
    }

    #[test]
    fn bad_rules_are_refused_with_what_is_wrong() {
        let e = FourEyes::from_toml(
            "[approvers]\npolicy = [\"compliance\"]\nprompt = []\nprocedure = [\"manager\"]\n[emergency]\nrollback = []\n",
        )
        .unwrap_err();
        assert!(e.contains("prompt names no role"), "{e}");
        let e = FourEyes::from_toml(
            "[approvers]\npolicy = [\"auditor\"]\nprompt = [\"manager\"]\nprocedure = [\"manager\"]\n[emergency]\nrollback = []\n",
        )
        .unwrap_err();
        assert!(e.contains("auditor"), "{e}");
    }
}
