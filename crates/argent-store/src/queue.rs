//! The collectors' workbench over the approval queue (migration `0019_queue_facets`):
//! filters and search as plain column comparisons on facets taken from the item's JSON when
//! it is queued ([`facets`]), the page in queue order, its count, and the item after (approve
//! & next) or before a given one under the same filter.
//!
//! Queue order is the one [`Store::approvals`] uses: priority (highest first), then age
//! (oldest first), then id.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::Row;

use crate::agent::{APPROVAL_COLS, ApprovalRow, NewApproval};
use crate::{ApprovalItem, ApprovalStatus, Result, Store, dispatch};

/// What the queue's filters and search read, derived from an item's JSON.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Facets {
    pub segment: String,
    pub jurisdiction: String,
    /// ` id1 id2 `: each rule id with a space on both sides.
    pub rule_ids: String,
    /// Lower-cased customer id and name, open invoice numbers and the sender of the
    /// message that started the run.
    pub search: String,
}

/// The facets of an item about to be queued.
pub(crate) fn facets(a: &NewApproval) -> Facets {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let rules: Vec<&str> = a.decision["rules"]
        .as_array()
        .map(|rs| rs.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    let invoices: Vec<&str> = a.context["invoices"]
        .as_array()
        .map(|is| is.iter().filter_map(|i| i["number"].as_str()).collect())
        .unwrap_or_default();
    Facets {
        segment: s(&a.context["segment"]),
        jurisdiction: s(&a.context["customer"]["jurisdiction"]),
        rule_ids: if rules.is_empty() {
            String::new()
        } else {
            format!(" {} ", rules.join(" "))
        },
        search: format!(
            "{} {} {} {}",
            a.customer_id,
            a.context["customer"]["name"].as_str().unwrap_or_default(),
            invoices.join(" "),
            a.context["trigger"]["from"].as_str().unwrap_or_default()
        )
        .to_lowercase(),
    }
}

/// A view of the queue. Every field narrows it; `Default` is every item.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueueFilter {
    pub status: Option<ApprovalStatus>,
    /// Only items a reviewer of this role may approve (the role is among the item's
    /// approvers, e.g. `collector`).
    pub approvable_by: Option<String>,
    pub tool: Option<String>,
    /// One rule id that fired on the item.
    pub rule: Option<String>,
    pub segment: Option<String>,
    pub jurisdiction: Option<String>,
    pub currency: Option<String>,
    /// Amount range in minor units (inclusive).
    pub min_amount: Option<i64>,
    pub max_amount: Option<i64>,
    /// Queued at or before this instant (older than an age).
    pub queued_before: Option<DateTime<Utc>>,
    /// Substring of the customer's id or name, an invoice number or the sender's address
    /// (case-insensitive).
    pub search: Option<String>,
}

/// `LIKE` pattern for `needle` anywhere, with `%`, `_` and the escape character escaped.
fn contains(needle: &str) -> String {
    let mut p = String::from("%");
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// Appends the filter's conditions (always at least `1 = 1`) to `$q`, binding values.
macro_rules! push_filter {
    ($q:expr, $f:expr) => {{
        let f: &QueueFilter = $f;
        $q.push(" WHERE 1 = 1");
        if let Some(s) = f.status {
            $q.push(" AND status = ").push_bind(s.as_str().to_string());
        }
        if let Some(r) = &f.approvable_by {
            $q.push(" AND (',' || required_role || ',') LIKE ")
                .push_bind(contains(&format!(",{r},")))
                .push(" ESCAPE '\\'");
        }
        if let Some(t) = &f.tool {
            $q.push(" AND tool = ").push_bind(t.clone());
        }
        if let Some(r) = &f.rule {
            $q.push(" AND rule_ids LIKE ")
                .push_bind(contains(&format!(" {r} ")))
                .push(" ESCAPE '\\'");
        }
        if let Some(s) = &f.segment {
            $q.push(" AND segment = ").push_bind(s.clone());
        }
        if let Some(j) = &f.jurisdiction {
            $q.push(" AND jurisdiction = ").push_bind(j.clone());
        }
        if let Some(c) = &f.currency {
            $q.push(" AND currency = ").push_bind(c.clone());
        }
        if let Some(m) = f.min_amount {
            $q.push(" AND amount_minor >= ").push_bind(m);
        }
        if let Some(m) = f.max_amount {
            $q.push(" AND amount_minor <= ").push_bind(m);
        }
        if let Some(t) = f.queued_before {
            $q.push(" AND created_at <= ").push_bind(crate::micros(t));
        }
        if let Some(s) = f.search.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            $q.push(" AND search LIKE ")
                .push_bind(contains(&s.to_lowercase()))
                .push(" ESCAPE '\\'");
        }
    }};
}

impl Store {
    /// A page of the queue under `filter`, in queue order.
    pub async fn queue_page(
        &self,
        filter: &QueueFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<ApprovalItem>> {
        let rows: Vec<ApprovalRow> = dispatch!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(format!("SELECT {APPROVAL_COLS} FROM approvals"));
            push_filter!(q, filter);
            q.push(" ORDER BY priority DESC, created_at, id LIMIT ")
                .push_bind(limit.max(0))
                .push(" OFFSET ")
                .push_bind(offset.max(0));
            let mut out = Vec::new();
            for r in q.build().fetch_all(pool).await? {
                out.push(approval_row!(r));
            }
            out
        });
        rows.into_iter().map(ApprovalRow::into_item).collect()
    }

    /// How many items `filter` keeps.
    pub async fn queue_count(&self, filter: &QueueFilter) -> Result<i64> {
        Ok(dispatch!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new("SELECT COUNT(*) AS n FROM approvals");
            push_filter!(q, filter);
            q.build().fetch_one(pool).await?.try_get("n")?
        }))
    }

    /// The first item under `filter` that comes after item `id` in queue order (the next
    /// one to review once `id` is decided), or the first one when `id` is not in the
    /// queue. `None` when nothing is left.
    pub async fn queue_next(&self, filter: &QueueFilter, id: &str) -> Result<Option<ApprovalItem>> {
        self.queue_neighbour(filter, id, true).await
    }

    /// The last item under `filter` that comes before item `id` in queue order (the item
    /// page's "previous"), or the last one when `id` is not in the queue. `None` when
    /// nothing comes before it.
    pub async fn queue_prev(&self, filter: &QueueFilter, id: &str) -> Result<Option<ApprovalItem>> {
        self.queue_neighbour(filter, id, false).await
    }

    /// The item next to `id` in queue order under `filter`: after it (`forward`) or
    /// before it. Reads the `approvals_queue` index in one direction or the other.
    async fn queue_neighbour(
        &self,
        filter: &QueueFilter,
        id: &str,
        forward: bool,
    ) -> Result<Option<ApprovalItem>> {
        let at: Option<(i64, DateTime<Utc>)> = match self.approval(id).await {
            Ok(item) => Some((item.priority, item.created_at)),
            Err(crate::StoreError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        // After: lower priority, or the same and later, or the same time and a greater id.
        // Before: the mirror image.
        let (lower, later, greater) = if forward {
            ("<", ">", ">")
        } else {
            (">", "<", "<")
        };
        let rows: Vec<ApprovalRow> = dispatch!(self, |pool| {
            let mut q = sqlx::QueryBuilder::new(format!("SELECT {APPROVAL_COLS} FROM approvals"));
            push_filter!(q, filter);
            if let Some((priority, created_at)) = at {
                let created_at = crate::micros(created_at);
                q.push(format!(" AND (priority {lower} "))
                    .push_bind(priority)
                    .push(" OR (priority = ")
                    .push_bind(priority)
                    .push(format!(" AND (created_at {later} "))
                    .push_bind(created_at)
                    .push(" OR (created_at = ")
                    .push_bind(created_at)
                    .push(format!(" AND id {greater} "))
                    .push_bind(id.to_string())
                    .push("))))");
            }
            q.push(if forward {
                " ORDER BY priority DESC, created_at, id LIMIT 1"
            } else {
                " ORDER BY priority, created_at DESC, id DESC LIMIT 1"
            });
            let mut out = Vec::new();
            for r in q.build().fetch_all(pool).await? {
                out.push(approval_row!(r));
            }
            out
        });
        rows.into_iter()
            .map(ApprovalRow::into_item)
            .next()
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn facets_come_from_the_items_json() {
        let a = NewApproval {
            id: "apr-1".into(),
            call_id: "c".into(),
            run_id: "r".into(),
            customer_id: "C-ANN".into(),
            tool: "propose_plan".into(),
            action: json!({}),
            decision: json!({"outcome": "needs_approval", "rules": [{"id": "us.plan.high-risk"}, {"id": "b2b.x"}]}),
            context: json!({"segment": "high", "customer": {"name": "Ann Smith", "jurisdiction": "us"},
                "invoices": [{"number": "INV-1"}, {"number": "INV-2"}], "trigger": {"kind": "inbound", "from": "Ann@Example.com"}}),
            priority: 1,
            amount_minor: 100,
            currency: "USD".into(),
            required_role: "collector".into(),
            bundle_of: None,
        };
        let f = facets(&a);
        assert_eq!(f.segment, "high");
        assert_eq!(f.jurisdiction, "us");
        assert_eq!(f.rule_ids, " us.plan.high-risk b2b.x ");
        assert_eq!(f.search, "c-ann ann smith inv-1 inv-2 ann@example.com");
        assert_eq!(contains("50%_a\\"), "%50\\%\\_a\\\\%");
    }
}
