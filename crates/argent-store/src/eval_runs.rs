//! Eval runs: each run of an eval set (from the web or `argent eval run --save`), what was
//! evaluated, and once finished its report and its comparison with a baseline run.
//!
//! The store does not know what a report is (it must not depend on argent-evals): the
//! summary, the report and the comparison are JSON values it keeps as they were given.
//! A run is inserted `running` and finished exactly once, as `done` (with its report) or
//! `failed` (with an error); a finished run cannot be finished again.
//!
//! Beside the report, a run keeps the exact documents it evaluated
//! ([`EvalRunDocument`]: kind, name, version, SHA-256) and, once finished, one trace per
//! case (`eval_run_cases`, migration `0025_eval_traces`): JSON written by argent-evals,
//! stored in the transaction that finishes the run, read one case at a time.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

use crate::tx::tx_write;
use crate::{Result, Store, StoreError, dispatch, from_json, now, parse_col, str_enum, to_json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalRunStatus {
    Running,
    Done,
    Failed,
}
str_enum!(EvalRunStatus {
    Running => "running",
    Done => "done",
    Failed => "failed",
});

/// A run about to start. `id` is the caller's (unique).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewEvalRun {
    pub id: String,
    /// A human label, e.g. the eval set's name and a note.
    pub label: String,
    /// The model label: `offline`, `replay`, `openai:…`.
    pub model: String,
    /// What was evaluated, free text: `active`, `draft policy us-consumer v3`.
    pub subject: String,
    /// The draft document under test, if any (kind, name, version).
    pub doc_kind: Option<String>,
    pub doc_name: Option<String>,
    pub doc_version: Option<i64>,
    /// The eval run this one is compared with; it must exist.
    pub baseline_id: Option<String>,
    /// Who started it: a user name, or `$USER`/`cli` from the command line.
    pub started_by: String,
}

/// One document version a run evaluated.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvalRunDocument {
    /// `prompt` or `policy`.
    pub kind: String,
    pub name: String,
    /// The stored version number.
    pub version: i64,
    /// Hex SHA-256 of the body.
    pub sha256: String,
    /// This is the draft under test (not an active version).
    #[serde(default)]
    pub draft: bool,
}

/// One case of a finished run, with its trace (JSON the store keeps as given).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRunCase {
    pub run_id: String,
    pub case_id: String,
    pub title: String,
    pub passed: bool,
    pub trace: Value,
}

/// A case's trace to store with a run: [`Store::finish_eval_run_with_cases`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewEvalRunCase {
    pub case_id: String,
    pub title: String,
    pub passed: bool,
    pub trace: Value,
}

/// A run as listed: everything but the report and the comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRunSummary {
    pub id: String,
    pub label: String,
    pub model: String,
    pub subject: String,
    pub doc_kind: Option<String>,
    pub doc_name: Option<String>,
    pub doc_version: Option<i64>,
    pub baseline_id: Option<String>,
    pub status: EvalRunStatus,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// The report's summary (pass counts, violations, …) once `done`.
    pub summary: Option<Value>,
    /// Why the run failed, when `failed`.
    pub error: Option<String>,
    /// Whether a comparison with the baseline is stored.
    pub has_comparison: bool,
    /// The exact documents evaluated, when recorded (see
    /// [`Store::insert_eval_run_with_documents`]); empty otherwise.
    pub documents: Vec<EvalRunDocument>,
}

/// One run with its report and comparison.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EvalRunRecord {
    #[serde(flatten)]
    pub run: EvalRunSummary,
    pub report: Option<Value>,
    pub comparison: Option<Value>,
}

const SUMMARY_COLS: &str = "id, label, model, subject, doc_kind, doc_name, doc_version, baseline_id, status, \
                            started_by, started_at, finished_at, summary, error, \
                            (comparison IS NOT NULL) AS has_comparison, documents";

struct SummaryRow {
    id: String,
    label: String,
    model: String,
    subject: String,
    doc_kind: Option<String>,
    doc_name: Option<String>,
    doc_version: Option<i64>,
    baseline_id: Option<String>,
    status: String,
    started_by: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    summary: Option<String>,
    error: Option<String>,
    has_comparison: bool,
    documents: Option<String>,
}

macro_rules! summary_row {
    ($r:expr) => {
        SummaryRow {
            id: $r.try_get("id")?,
            label: $r.try_get("label")?,
            model: $r.try_get("model")?,
            subject: $r.try_get("subject")?,
            doc_kind: $r.try_get("doc_kind")?,
            doc_name: $r.try_get("doc_name")?,
            doc_version: $r.try_get("doc_version")?,
            baseline_id: $r.try_get("baseline_id")?,
            status: $r.try_get("status")?,
            started_by: $r.try_get("started_by")?,
            started_at: $r.try_get("started_at")?,
            finished_at: $r.try_get("finished_at")?,
            summary: $r.try_get("summary")?,
            error: $r.try_get("error")?,
            has_comparison: $r.try_get("has_comparison")?,
            documents: $r.try_get("documents")?,
        }
    };
}

fn opt_json(what: &'static str, id: &str, v: Option<String>) -> Result<Option<Value>> {
    v.map(|s| from_json(what, id, &s)).transpose()
}

impl SummaryRow {
    fn into_summary(self) -> Result<EvalRunSummary> {
        let id = self.id;
        Ok(EvalRunSummary {
            status: parse_col("eval run status", &id, &self.status)?,
            summary: opt_json("eval run summary", &id, self.summary)?,
            documents: match self.documents {
                Some(d) => from_json("eval run documents", &id, &d)?,
                None => Vec::new(),
            },
            label: self.label,
            model: self.model,
            subject: self.subject,
            doc_kind: self.doc_kind,
            doc_name: self.doc_name,
            doc_version: self.doc_version,
            baseline_id: self.baseline_id,
            started_by: self.started_by,
            started_at: self.started_at,
            finished_at: self.finished_at,
            error: self.error,
            has_comparison: self.has_comparison,
            id,
        })
    }
}

impl Store {
    /// Records a run as `running`, started now. Fails if the id is taken or the baseline
    /// does not exist.
    pub async fn insert_eval_run(&self, r: &NewEvalRun) -> Result<EvalRunRecord> {
        self.insert_eval_run_with_documents(r, &[]).await
    }

    /// [`Store::insert_eval_run`], recording the exact documents the run evaluates.
    pub async fn insert_eval_run_with_documents(
        &self,
        r: &NewEvalRun,
        documents: &[EvalRunDocument],
    ) -> Result<EvalRunRecord> {
        let _writer = self.write_lock().await?;
        if let Some(base) = &r.baseline_id
            && !self.eval_run_exists(base).await?
        {
            return Err(StoreError::NotFound(format!("baseline eval run {base}")));
        }
        let sql = "INSERT INTO eval_runs (id, label, model, subject, doc_kind, doc_name, doc_version, \
                   baseline_id, status, started_by, started_at, documents) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'running', $9, $10, $11)";
        let documents = (!documents.is_empty()).then(|| to_json(&documents));
        dispatch!(self, |pool| {
            sqlx::query(sql)
                .bind(r.id.as_str())
                .bind(r.label.as_str())
                .bind(r.model.as_str())
                .bind(r.subject.as_str())
                .bind(r.doc_kind.as_deref())
                .bind(r.doc_name.as_deref())
                .bind(r.doc_version)
                .bind(r.baseline_id.as_deref())
                .bind(r.started_by.as_str())
                .bind(now())
                .bind(documents.as_deref())
                .execute(pool)
                .await?;
        });
        self.eval_run(&r.id).await
    }

    async fn eval_run_exists(&self, id: &str) -> Result<bool> {
        Ok(dispatch!(self, |pool| {
            sqlx::query("SELECT 1 AS one FROM eval_runs WHERE id = $1")
                .bind(id)
                .fetch_optional(pool)
                .await?
                .is_some()
        }))
    }

    /// Marks a running run `done` with its summary, report and (if it had a baseline)
    /// comparison. `NotFound` for an unknown id; `Invalid` if it already finished.
    pub async fn finish_eval_run(
        &self,
        id: &str,
        summary: &Value,
        report: &Value,
        comparison: Option<&Value>,
    ) -> Result<()> {
        self.finish_eval_run_with_cases(id, summary, report, comparison, &[])
            .await
    }

    /// [`Store::finish_eval_run`], storing each case's trace in the same transaction (all
    /// or nothing). `Invalid` for two traces of one case.
    pub async fn finish_eval_run_with_cases(
        &self,
        id: &str,
        summary: &Value,
        report: &Value,
        comparison: Option<&Value>,
        cases: &[NewEvalRunCase],
    ) -> Result<()> {
        let mut seen = std::collections::BTreeSet::new();
        if let Some(dup) = cases.iter().find(|c| !seen.insert(c.case_id.as_str())) {
            return Err(StoreError::Invalid(format!(
                "eval run {id}: case {} is traced twice",
                dup.case_id
            )));
        }
        if !self.eval_run_exists(id).await? {
            return Err(StoreError::NotFound(format!("eval run {id}")));
        }
        let mut tx = self.begin().await?;
        let sql = "UPDATE eval_runs SET status = 'done', finished_at = $1, summary = $2, report = $3, \
                   comparison = $4 WHERE id = $5 AND status = 'running'";
        tx_write!(
            tx,
            sql,
            [
                now(),
                to_json(summary),
                to_json(report),
                comparison.map(to_json),
                id,
            ],
            or: StoreError::Invalid(format!("eval run {id} has already finished"))
        );
        let insert = "INSERT INTO eval_run_cases (run_id, case_id, title, passed, trace) \
                      VALUES ($1, $2, $3, $4, $5)";
        for c in cases {
            tx_write!(
                tx,
                insert,
                [
                    id,
                    c.case_id.as_str(),
                    c.title.as_str(),
                    c.passed,
                    to_json(&c.trace),
                ]
            );
        }
        tx.commit().await
    }

    /// Marks a running run `failed` with the reason. `NotFound` for an unknown id;
    /// `Invalid` if it already finished.
    pub async fn fail_eval_run(&self, id: &str, error: &str) -> Result<()> {
        let _writer = self.write_lock().await?;
        let sql = "UPDATE eval_runs SET status = 'failed', finished_at = $1, error = $2 \
                   WHERE id = $3 AND status = 'running'";
        let n = dispatch!(self, |pool| {
            sqlx::query(sql)
                .bind(now())
                .bind(error)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        self.finished(id, n).await
    }

    async fn finished(&self, id: &str, updated: u64) -> Result<()> {
        if updated == 1 {
            return Ok(());
        }
        if self.eval_run_exists(id).await? {
            Err(StoreError::Invalid(format!(
                "eval run {id} has already finished"
            )))
        } else {
            Err(StoreError::NotFound(format!("eval run {id}")))
        }
    }

    /// Runs, newest first (then by id, descending), without reports or comparisons.
    pub async fn eval_runs(&self, limit: i64, offset: i64) -> Result<Vec<EvalRunSummary>> {
        let sql = format!(
            "SELECT {SUMMARY_COLS} FROM eval_runs ORDER BY started_at DESC, id DESC LIMIT $1 OFFSET $2"
        );
        let rows: Vec<SummaryRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql)
                .bind(limit.max(0))
                .bind(offset.max(0))
                .fetch_all(pool)
                .await?
            {
                out.push(summary_row!(r));
            }
            out
        });
        rows.into_iter().map(SummaryRow::into_summary).collect()
    }

    pub async fn count_eval_runs(&self) -> Result<i64> {
        Ok(dispatch!(self, |pool| {
            sqlx::query("SELECT COUNT(*) AS n FROM eval_runs")
                .fetch_one(pool)
                .await?
                .try_get("n")?
        }))
    }

    /// One run with its report and comparison. `NotFound` for an unknown id.
    pub async fn eval_run(&self, id: &str) -> Result<EvalRunRecord> {
        let sql = format!("SELECT {SUMMARY_COLS}, report, comparison FROM eval_runs WHERE id = $1");
        let row: Option<(SummaryRow, Option<String>, Option<String>)> = dispatch!(self, |pool| {
            match sqlx::query(&sql).bind(id).fetch_optional(pool).await? {
                Some(r) => Some((
                    summary_row!(r),
                    r.try_get("report")?,
                    r.try_get("comparison")?,
                )),
                None => None,
            }
        });
        let (row, report, comparison) =
            row.ok_or_else(|| StoreError::NotFound(format!("eval run {id}")))?;
        Ok(EvalRunRecord {
            report: opt_json("eval run report", id, report)?,
            comparison: opt_json("eval run comparison", id, comparison)?,
            run: row.into_summary()?,
        })
    }

    /// Finished (`done`) runs, newest first, at most `limit`: what the pass-rate trend
    /// plots.
    pub async fn finished_eval_runs(&self, limit: i64) -> Result<Vec<EvalRunSummary>> {
        let sql = format!(
            "SELECT {SUMMARY_COLS} FROM eval_runs WHERE status = 'done' \
             ORDER BY started_at DESC, id DESC LIMIT $1"
        );
        let rows: Vec<SummaryRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(&sql).bind(limit.max(0)).fetch_all(pool).await? {
                out.push(summary_row!(r));
            }
            out
        });
        rows.into_iter().map(SummaryRow::into_summary).collect()
    }

    /// One case of a run with its trace. `NotFound` when the run has no trace of that case
    /// (an unknown run or case, a run not finished, or one stored before traces were kept).
    pub async fn eval_run_case(&self, run_id: &str, case_id: &str) -> Result<EvalRunCase> {
        let sql =
            "SELECT title, passed, trace FROM eval_run_cases WHERE run_id = $1 AND case_id = $2";
        let row: Option<(String, bool, String)> = dispatch!(self, |pool| {
            match sqlx::query(sql)
                .bind(run_id)
                .bind(case_id)
                .fetch_optional(pool)
                .await?
            {
                Some(r) => Some((
                    r.try_get("title")?,
                    r.try_get("passed")?,
                    r.try_get("trace")?,
                )),
                None => None,
            }
        });
        let (title, passed, trace) = row
            .ok_or_else(|| StoreError::NotFound(format!("case {case_id} of eval run {run_id}")))?;
        let key = format!("{run_id}/{case_id}");
        Ok(EvalRunCase {
            trace: from_json("eval run case trace", &key, &trace)?,
            run_id: run_id.to_string(),
            case_id: case_id.to_string(),
            title,
            passed,
        })
    }

    /// How many case traces a run has (0 for a run stored before they were kept).
    pub async fn count_eval_run_cases(&self, run_id: &str) -> Result<i64> {
        Ok(dispatch!(self, |pool| {
            sqlx::query("SELECT COUNT(*) AS n FROM eval_run_cases WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(pool)
                .await?
                .try_get("n")?
        }))
    }
}
