//! Work queues for people: tasks (escalations, account-manager alerts, credit-hold reviews,
//! follow-ups) with comments, and the case list with who owns each case.
//!
//! **Invariants.** A task belongs to a role (`owner_role`) and at most one user
//! (`assignee`); it goes `open` → `in_progress` (assigned) → `done` | `cancelled`, and a
//! closed task has an outcome (a CHECK ties them) and never changes again. Every change
//! (create, assign, comment, close; taking a case) is one transaction with its audit event
//! (`task.created`, `task.assigned`, `task.commented`, `task.closed`, `case.in_progress`),
//! and every update is conditional on the state the permission check read (status and
//! assignee), so of two people racing for one task exactly one wins (`Conflict` for the
//! other). Who may do what is [`argent_core::check_task_act`], checked here against the
//! row as the transaction reads it: a refused role is [`StoreError::Invalid`] starting
//! with [`NOT_PERMITTED`] (the server answers 403), a closed task [`StoreError::Conflict`].
//! Listings are filtered in SQL (role, assignee, customer, status, due before, and what a
//! viewer may see), so a collector's list never carries another role's tasks.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use argent_core::{Case, CaseKind, CaseStatus, Role, TaskAct, TaskKind, TaskStatus};

use crate::audit::NewAuditEvent;
use crate::records::{CaseRow, case_row, cases_from};
use crate::tx::{dispatch_tx, tx_write};
use crate::{Result, Store, StoreError, StoreTx, dispatch, micros, now};

/// The prefix of the `Invalid` error a refused role gets (see the module docs).
pub const NOT_PERMITTED: &str = "not permitted: ";

/// A task for a person.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub id: String,
    pub kind: TaskKind,
    pub customer_id: String,
    pub owner_role: Role,
    pub assignee: Option<String>,
    pub title: String,
    pub body: String,
    pub due_at: Option<DateTime<Utc>>,
    pub status: TaskStatus,
    /// How it ended (set when closed).
    pub outcome: Option<String>,
    /// What created it: a tool call id, an approval id, a procedure work id.
    pub source: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A task to create ([`StoreTx::create_task`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTask {
    /// Derive it from what created the task (e.g. `TASK-<tool call id>`), so a replay
    /// collides instead of duplicating.
    pub id: String,
    pub kind: TaskKind,
    pub customer_id: String,
    pub owner_role: Role,
    pub assignee: Option<String>,
    pub title: String,
    pub body: String,
    pub due_at: Option<DateTime<Utc>>,
    pub source: String,
    pub created_at: DateTime<Utc>,
    /// Who creates it, for the audit trail (`agent`, a user name, a worker).
    pub actor: String,
}

/// One comment on a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskComment {
    pub id: i64,
    pub task_id: String,
    pub author: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

/// The person acting on a task: their user name and role.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskActor {
    pub name: String,
    pub role: Role,
}

impl TaskActor {
    fn check(&self, t: &Task, act: TaskAct<'_>) -> Result<()> {
        argent_core::check_task_act(
            self.role,
            &self.name,
            t.owner_role,
            t.assignee.as_deref(),
            act,
        )
        .map_err(|why| StoreError::Invalid(format!("{NOT_PERMITTED}task {}: {why}", t.id)))
    }
}

/// Which tasks to list. Every field narrows; the default is every task.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    pub owner_role: Option<Role>,
    pub assignee: Option<String>,
    pub customer_id: Option<String>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<TaskStatus>,
    /// Only tasks due at or before this instant (tasks with no due time are left out).
    pub due_before: Option<DateTime<Utc>>,
    /// Only tasks this person may see ([`argent_core::check_task_act`] with `See`).
    pub visible_to: Option<TaskActor>,
    /// At most this many (default 500).
    pub limit: Option<i64>,
    pub offset: i64,
}

impl TaskFilter {
    /// Open and in-progress tasks.
    pub fn open() -> TaskFilter {
        TaskFilter {
            statuses: vec![TaskStatus::Open, TaskStatus::InProgress],
            ..TaskFilter::default()
        }
    }
}

/// Open tasks of one role in one status, for the managers' counts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TaskCount {
    pub owner_role: Role,
    pub status: TaskStatus,
    pub count: i64,
    /// Of them, due before the instant asked about.
    pub overdue: i64,
}

/// A case with who works it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaseListing {
    #[serde(flatten)]
    pub case: Case,
    pub owner: Option<String>,
}

/// Which cases to list. The default is every case, oldest first.
#[derive(Clone, Debug, Default)]
pub struct CaseFilter {
    pub kinds: Vec<CaseKind>,
    /// Only these statuses (empty: all).
    pub statuses: Vec<CaseStatus>,
    pub customer_id: Option<String>,
    pub owner: Option<String>,
    pub limit: Option<i64>,
    pub offset: i64,
}

const TASK_COLS: &str = "id, kind, customer_id, owner_role, assignee, title, body, due_at, \
                         status, outcome, source, created_at, updated_at";
const MAX_LIST: i64 = 5000;

macro_rules! task_row {
    ($r:expr) => {{
        let id: String = $r.try_get("id")?;
        let kind: String = $r.try_get("kind")?;
        let role: String = $r.try_get("owner_role")?;
        let status: String = $r.try_get("status")?;
        Task {
            kind: crate::parse_col("task kind", &id, &kind)?,
            owner_role: crate::parse_col("task owner role", &id, &role)?,
            status: crate::parse_col("task status", &id, &status)?,
            customer_id: $r.try_get("customer_id")?,
            assignee: $r.try_get("assignee")?,
            title: $r.try_get("title")?,
            body: $r.try_get("body")?,
            due_at: $r.try_get("due_at")?,
            outcome: $r.try_get("outcome")?,
            source: $r.try_get("source")?,
            created_at: $r.try_get("created_at")?,
            updated_at: $r.try_get("updated_at")?,
            id,
        }
    }};
}

/// A value bound to a listing's query.
enum Bind {
    Text(String),
    At(DateTime<Utc>),
    Int(i64),
}

/// Binds `$binds` in order to `$q` (of either backend).
macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::At(t) => q.bind(*t),
                Bind::Int(n) => q.bind(*n),
            };
        }
        q
    }};
}

/// `column IN ('a', 'b')` for values of a closed set (never user text).
fn in_list(column: &str, values: &[&'static str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("'{v}'")).collect();
    format!("{column} IN ({})", quoted.join(", "))
}

fn task_query(f: &TaskFilter) -> Result<(String, Vec<Bind>)> {
    let mut conds: Vec<String> = Vec::new();
    let mut binds: Vec<Bind> = Vec::new();
    let param = |binds: &mut Vec<Bind>, b: Bind| {
        binds.push(b);
        format!("${}", binds.len())
    };
    if let Some(r) = f.owner_role {
        conds.push(in_list("owner_role", &[r.as_str()]));
    }
    if let Some(a) = &f.assignee {
        let p = param(&mut binds, Bind::Text(a.clone()));
        conds.push(format!("assignee = {p}"));
    }
    if let Some(c) = &f.customer_id {
        let p = param(&mut binds, Bind::Text(c.clone()));
        conds.push(format!("customer_id = {p}"));
    }
    if !f.statuses.is_empty() {
        let s: Vec<&'static str> = f.statuses.iter().map(|s| s.as_str()).collect();
        conds.push(in_list("status", &s));
    }
    if let Some(t) = f.due_before {
        let p = param(&mut binds, Bind::At(micros(t)));
        conds.push(format!("due_at <= {p}"));
    }
    if let Some(v) = &f.visible_to
        && !matches!(v.role, Role::Manager | Role::Admin | Role::Compliance)
    {
        let p = param(&mut binds, Bind::Text(v.name.clone()));
        conds.push(format!(
            "({} OR assignee = {p})",
            in_list("owner_role", &[v.role.as_str()])
        ));
    }
    let limit = f.limit.unwrap_or(500);
    if !(1..=MAX_LIST).contains(&limit) || f.offset < 0 {
        return Err(StoreError::Invalid(format!(
            "limit must be 1..={MAX_LIST} and offset not negative"
        )));
    }
    let lp = param(&mut binds, Bind::Int(limit));
    let op = param(&mut binds, Bind::Int(f.offset));
    let wh = if conds.is_empty() {
        "1 = 1".to_string()
    } else {
        conds.join(" AND ")
    };
    Ok((
        format!(
            "SELECT {TASK_COLS} FROM tasks WHERE {wh} \
             ORDER BY due_at IS NULL, due_at, created_at, id LIMIT {lp} OFFSET {op}"
        ),
        binds,
    ))
}

impl StoreTx {
    /// Creates a task, audited as `task.created` (actor: `t.actor`) in this transaction.
    /// The customer must exist; an id already used fails (a replay collides). Open, or
    /// in progress when created with an assignee.
    pub async fn create_task(&mut self, t: &NewTask) -> Result<Task> {
        let status = if t.assignee.is_some() {
            TaskStatus::InProgress
        } else {
            TaskStatus::Open
        };
        let at = micros(t.created_at);
        tx_write!(
            self,
            "INSERT INTO tasks (id, kind, customer_id, owner_role, assignee, title, body, due_at, \
             status, outcome, source, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, $10, $11, $11)",
            [
                t.id.as_str(),
                t.kind.as_str(),
                t.customer_id.as_str(),
                t.owner_role.as_str(),
                t.assignee.as_deref(),
                t.title.as_str(),
                t.body.as_str(),
                t.due_at.map(micros),
                status.as_str(),
                t.source.as_str(),
                at,
            ]
        );
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(t.customer_id.clone()),
            actor: t.actor.clone(),
            kind: "task.created".into(),
            payload: json!({
                "task_id": t.id,
                "kind": t.kind.as_str(),
                "owner_role": t.owner_role.as_str(),
                "assignee": t.assignee,
                "title": t.title,
                "due_at": t.due_at.map(micros),
                "source": t.source,
            }),
        })
        .await?;
        Ok(Task {
            id: t.id.clone(),
            kind: t.kind,
            customer_id: t.customer_id.clone(),
            owner_role: t.owner_role,
            assignee: t.assignee.clone(),
            title: t.title.clone(),
            body: t.body.clone(),
            due_at: t.due_at.map(micros),
            status,
            outcome: None,
            source: t.source.clone(),
            created_at: at,
            updated_at: at,
        })
    }

    /// The task `id` as this transaction sees it (`NotFound` when there is none).
    pub async fn task(&mut self, id: &str) -> Result<Task> {
        let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1");
        let found = dispatch_tx!(self, |conn| {
            match sqlx::query(&sql)
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?
            {
                Some(r) => Some(task_row!(r)),
                None => None,
            }
        });
        found.ok_or_else(|| StoreError::NotFound(format!("task {id}")))
    }

    /// Reads an open task for `act` by `who` (`Conflict` if it is closed, `Invalid`
    /// "not permitted" if `who` may not).
    async fn open_task_for(&mut self, id: &str, who: &TaskActor, act: TaskAct<'_>) -> Result<Task> {
        let t = self.task(id).await?;
        who.check(&t, act)?;
        if !t.status.is_open() {
            return Err(StoreError::Conflict(format!(
                "task {id} is {}; a closed task does not change",
                t.status
            )));
        }
        Ok(t)
    }

    /// Assigns task `id` to user `to` (taking it when `to` is `who`); it becomes
    /// `in_progress`. Audited as `task.assigned`.
    pub async fn assign_task(&mut self, id: &str, who: &TaskActor, to: &str) -> Result<Task> {
        let mut t = self.open_task_for(id, who, TaskAct::Assign(to)).await?;
        let at = now();
        tx_write!(
            self,
            "UPDATE tasks SET assignee = $1, status = 'in_progress', updated_at = $2 \
             WHERE id = $3 AND status = $4 AND COALESCE(assignee, '') = $5",
            [to, at, id, t.status.as_str(), t.assignee.as_deref().unwrap_or("")],
            or: StoreError::Conflict(format!("task {id} changed meanwhile; reload it"))
        );
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(t.customer_id.clone()),
            actor: who.name.clone(),
            kind: "task.assigned".into(),
            payload: json!({"task_id": id, "from": t.assignee, "to": to, "role": who.role.as_str()}),
        })
        .await?;
        t.assignee = Some(to.to_string());
        t.status = TaskStatus::InProgress;
        t.updated_at = at;
        Ok(t)
    }

    /// Adds a comment to task `id` (open or closed). Audited as `task.commented`.
    pub async fn comment_task(&mut self, id: &str, who: &TaskActor, body: &str) -> Result<()> {
        let t = self.task(id).await?;
        who.check(&t, TaskAct::Comment)?;
        let at = now();
        tx_write!(
            self,
            "INSERT INTO task_comments (task_id, author, body, created_at) VALUES ($1, $2, $3, $4)",
            [id, who.name.as_str(), body, at]
        );
        tx_write!(
            self,
            "UPDATE tasks SET updated_at = $1 WHERE id = $2",
            [at, id]
        );
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(t.customer_id.clone()),
            actor: who.name.clone(),
            kind: "task.commented".into(),
            payload: json!({"task_id": id, "body": body, "role": who.role.as_str()}),
        })
        .await?;
        Ok(())
    }

    /// Closes task `id` as `done` or `cancelled` with `outcome`. Audited as `task.closed`.
    pub async fn close_task(
        &mut self,
        id: &str,
        who: &TaskActor,
        status: TaskStatus,
        outcome: &str,
    ) -> Result<Task> {
        if status.is_open() {
            return Err(StoreError::Invalid(format!(
                "task {id}: close it as done or cancelled, not {status}"
            )));
        }
        let mut t = self.open_task_for(id, who, TaskAct::Close).await?;
        let at = now();
        tx_write!(
            self,
            "UPDATE tasks SET status = $1, outcome = $2, updated_at = $3 \
             WHERE id = $4 AND status = $5 AND COALESCE(assignee, '') = $6",
            [status.as_str(), outcome, at, id, t.status.as_str(), t.assignee.as_deref().unwrap_or("")],
            or: StoreError::Conflict(format!("task {id} changed meanwhile; reload it"))
        );
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(t.customer_id.clone()),
            actor: who.name.clone(),
            kind: "task.closed".into(),
            payload: json!({"task_id": id, "status": status.as_str(), "outcome": outcome, "role": who.role.as_str()}),
        })
        .await?;
        t.status = status;
        t.outcome = Some(outcome.to_string());
        t.updated_at = at;
        Ok(t)
    }

    /// A person takes case `id`: it moves `open` → `in_progress` (a step of every kind's
    /// lifecycle) with `owner` as its owner, audited as `case.in_progress` naming both.
    pub async fn take_case(&mut self, id: &str, owner: &str, actor: &str) -> Result<Case> {
        let mut case = self.case(id).await?;
        let from = case.status;
        case.kind
            .check_transition(from, CaseStatus::InProgress)
            .map_err(|e| StoreError::Invalid(format!("case {id}: {e}")))?;
        tx_write!(
            self,
            "UPDATE cases SET status = 'in_progress', owner = $1 WHERE id = $2 AND status = $3",
            [owner, id, from.as_str()],
            or: StoreError::Conflict(format!("case {id} is no longer {from}"))
        );
        self.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: Some(case.customer_id.clone()),
            actor: actor.to_string(),
            kind: "case.in_progress".into(),
            payload: json!({
                "case_id": id,
                "kind": case.kind.as_str(),
                "from": from.as_str(),
                "to": "in_progress",
                "owner": owner,
                "invoices": case.invoice_numbers,
            }),
        })
        .await?;
        case.status = CaseStatus::InProgress;
        Ok(case)
    }
}

impl Store {
    /// [`StoreTx::create_task`] in a transaction of its own.
    pub async fn create_task(&self, t: &NewTask) -> Result<Task> {
        let mut tx = self.begin().await?;
        let task = tx.create_task(t).await?;
        tx.commit().await?;
        Ok(task)
    }

    /// The task `id` (`NotFound` when there is none).
    pub async fn task(&self, id: &str) -> Result<Task> {
        let sql = format!("SELECT {TASK_COLS} FROM tasks WHERE id = $1");
        let found = dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some(task_row!(r)),
                None => None,
            }
        });
        found.ok_or_else(|| StoreError::NotFound(format!("task {id}")))
    }

    /// Tasks as `f` narrows them, soonest due first (those without a due time last), then
    /// oldest first.
    pub async fn tasks(&self, f: &TaskFilter) -> Result<Vec<Task>> {
        let (sql, binds) = task_query(f)?;
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in bind_all!(sqlx::query(&sql), &binds).fetch_all(pool).await? {
                out.push(task_row!(r));
            }
            out
        }))
    }

    /// The comments on task `id`, oldest first.
    pub async fn task_comments(&self, id: &str) -> Result<Vec<TaskComment>> {
        let sql = "SELECT id, task_id, author, body, created_at FROM task_comments \
                   WHERE task_id = $1 ORDER BY id";
        Ok(dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(id).fetch_all(pool).await? {
                out.push(TaskComment {
                    id: r.try_get("id")?,
                    task_id: r.try_get("task_id")?,
                    author: r.try_get("author")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                });
            }
            out
        }))
    }

    /// [`StoreTx::assign_task`] in a transaction of its own.
    pub async fn assign_task(&self, id: &str, who: &TaskActor, to: &str) -> Result<Task> {
        let mut tx = self.begin().await?;
        let t = tx.assign_task(id, who, to).await?;
        tx.commit().await?;
        Ok(t)
    }

    /// [`StoreTx::comment_task`] in a transaction of its own.
    pub async fn comment_task(&self, id: &str, who: &TaskActor, body: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        tx.comment_task(id, who, body).await?;
        tx.commit().await
    }

    /// [`StoreTx::close_task`] in a transaction of its own.
    pub async fn close_task(
        &self,
        id: &str,
        who: &TaskActor,
        status: TaskStatus,
        outcome: &str,
    ) -> Result<Task> {
        let mut tx = self.begin().await?;
        let t = tx.close_task(id, who, status, outcome).await?;
        tx.commit().await?;
        Ok(t)
    }

    /// [`StoreTx::take_case`] in a transaction of its own.
    pub async fn take_case(&self, id: &str, owner: &str, actor: &str) -> Result<Case> {
        let mut tx = self.begin().await?;
        let c = tx.take_case(id, owner, actor).await?;
        tx.commit().await?;
        Ok(c)
    }

    /// Open and in-progress tasks per owner role and status, each with how many are due
    /// before `now`.
    pub async fn task_counts(&self, now: DateTime<Utc>) -> Result<Vec<TaskCount>> {
        let sql = "SELECT owner_role, status, COUNT(*) AS n, \
                   SUM(CASE WHEN due_at < $1 THEN 1 ELSE 0 END) AS overdue FROM tasks \
                   WHERE status IN ('open', 'in_progress') \
                   GROUP BY owner_role, status ORDER BY owner_role, status";
        let rows: Vec<(String, String, i64, Option<i64>)> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(sql).bind(micros(now)).fetch_all(pool).await? {
                out.push((
                    r.try_get("owner_role")?,
                    r.try_get("status")?,
                    r.try_get("n")?,
                    r.try_get("overdue")?,
                ));
            }
            out
        });
        rows.into_iter()
            .map(|(role, status, count, overdue)| {
                Ok(TaskCount {
                    owner_role: crate::parse_col("task owner role", &role, &role)?,
                    status: crate::parse_col("task status", &status, &status)?,
                    count,
                    overdue: overdue.unwrap_or(0),
                })
            })
            .collect()
    }

    /// Cases as `f` narrows them, oldest first, with their owners.
    pub async fn case_list(&self, f: &CaseFilter) -> Result<Vec<CaseListing>> {
        let mut conds: Vec<String> = Vec::new();
        let mut binds: Vec<Bind> = Vec::new();
        if !f.kinds.is_empty() {
            let k: Vec<&'static str> = f.kinds.iter().map(|k| k.as_str()).collect();
            conds.push(in_list("kind", &k));
        }
        if !f.statuses.is_empty() {
            let s: Vec<&'static str> = f.statuses.iter().map(|s| s.as_str()).collect();
            conds.push(in_list("status", &s));
        }
        if let Some(c) = &f.customer_id {
            binds.push(Bind::Text(c.clone()));
            conds.push(format!("customer_id = ${}", binds.len()));
        }
        if let Some(o) = &f.owner {
            binds.push(Bind::Text(o.clone()));
            conds.push(format!("owner = ${}", binds.len()));
        }
        let limit = f.limit.unwrap_or(500);
        if !(1..=MAX_LIST).contains(&limit) || f.offset < 0 {
            return Err(StoreError::Invalid(format!(
                "limit must be 1..={MAX_LIST} and offset not negative"
            )));
        }
        binds.push(Bind::Int(limit));
        let lp = binds.len();
        binds.push(Bind::Int(f.offset));
        let op = binds.len();
        let wh = if conds.is_empty() {
            "1 = 1".to_string()
        } else {
            conds.join(" AND ")
        };
        let sql = format!(
            "SELECT id, customer_id, kind, status, invoice_numbers, disputed_currency, \
             disputed_minor, summary, opened_at, owner FROM cases WHERE {wh} \
             ORDER BY opened_at, id LIMIT ${lp} OFFSET ${op}"
        );
        let rows: Vec<(CaseRow, Option<String>)> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in bind_all!(sqlx::query(&sql), &binds).fetch_all(pool).await? {
                let owner: Option<String> = r.try_get("owner")?;
                out.push((case_row!(r), owner));
            }
            out
        });
        let (cases, owners): (Vec<CaseRow>, Vec<Option<String>>) = rows.into_iter().unzip();
        Ok(cases_from(cases)?
            .into_iter()
            .zip(owners)
            .map(|(case, owner)| CaseListing { case, owner })
            .collect())
    }
}
