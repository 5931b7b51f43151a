//! What the dashboard's agent-operations section is counted from
//! ([`argent_core::ops::agent_ops`]): runs, tool calls (and whether each was held for
//! approval), `refused` audit events with their rules, and approvals, of a window of
//! instants. Reads only.

use argent_core::ops::{OpsApproval, OpsCall, OpsRefusal, OpsRun};
use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::{Result, Store, dispatch};

/// The records of a window `[from, to)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpsRecords {
    /// Runs created in the window.
    pub runs: Vec<OpsRun>,
    /// Tool calls made in the window.
    pub calls: Vec<OpsCall>,
    /// `refused` audit events of the window.
    pub refusals: Vec<OpsRefusal>,
    /// Approvals created before `to` and not decided before `from` (so: decided in the
    /// window, or pending at some moment of it).
    pub approvals: Vec<OpsApproval>,
}

impl Store {
    /// The agent-operations records of `[from, to)` (see [`OpsRecords`]).
    pub async fn ops_records(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Result<OpsRecords> {
        let runs = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT created_at, tokens FROM runs WHERE created_at >= $1 AND created_at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            {
                out.push(OpsRun {
                    created_at: r.try_get("created_at")?,
                    tokens: r.try_get("tokens")?,
                });
            }
            out
        });
        let calls = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT c.created_at, c.status, \
                 (EXISTS (SELECT 1 FROM approvals a WHERE a.call_id = c.call_id)) AS held \
                 FROM tool_calls c WHERE c.created_at >= $1 AND c.created_at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            {
                out.push(OpsCall {
                    created_at: r.try_get("created_at")?,
                    status: r.try_get("status")?,
                    held: r.try_get("held")?,
                });
            }
            out
        });
        self.audit_settle().await?;
        let refusals = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT at, rule_ids FROM audit_events \
                 WHERE kind = 'refused' AND at >= $1 AND at < $2",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            {
                let ids: String = r.try_get("rule_ids")?;
                out.push(OpsRefusal {
                    at: r.try_get("at")?,
                    rule_ids: ids
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(str::to_string)
                        .collect(),
                });
            }
            out
        });
        let approvals = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT created_at, decided_at, decided_by, status FROM approvals \
                 WHERE created_at < $2 AND (decided_at IS NULL OR decided_at >= $1)",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            {
                let status: String = r.try_get("status")?;
                out.push(OpsApproval {
                    created_at: r.try_get("created_at")?,
                    decided_at: r.try_get("decided_at")?,
                    decided_by: r.try_get("decided_by")?,
                    approved: match status.as_str() {
                        "approved" => Some(true),
                        "rejected" => Some(false),
                        _ => None,
                    },
                });
            }
            out
        });
        Ok(OpsRecords {
            runs,
            calls,
            refusals,
            approvals,
        })
    }
}
