//! Dashboard snapshots (migration `0022_dashboard_snapshots`): the manager dashboard's
//! figures ([`argent_core::analytics::Dashboard`]) kept once per day, keyed by the date
//! they are as of, so the dashboard can draw DSO, CEI, days delinquent and promise
//! outcomes over time.
//!
//! Taking a snapshot is idempotent: the date's row is inserted `ON CONFLICT DO NOTHING`
//! first, and only the transaction that inserted it writes the figures and the
//! `dashboard.snapshot` audit event, so a tick run twice, or two processes at once, store
//! one snapshot per date. Snapshots are append-only (database triggers refuse UPDATE and
//! DELETE): a snapshot records what the figures were when it was taken.

use argent_core::analytics::{Dashboard, SegmentRow};
use argent_core::{Currency, RiskSegment};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

use crate::audit::NewAuditEvent;
use crate::tx::{dispatch_tx, tx_write};
use crate::{Result, Store, StoreError, dispatch, now};

/// The audit event kind of a snapshot taken.
pub const SNAPSHOT_EVENT: &str = "dashboard.snapshot";

/// One stored day: when and by whom it was taken, the periods its figures used, and its
/// rows (segment rows and, with `segment: None`, one total row per currency; by currency,
/// then total first, then segment).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDay {
    pub as_of: NaiveDate,
    pub period_days: u32,
    pub grace_days: i64,
    pub taken_at: DateTime<Utc>,
    pub taken_by: String,
    pub rows: Vec<SegmentRow>,
}

/// What [`Store::save_dashboard_snapshot`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum SnapshotTaken {
    /// Stored now, with this many rows.
    Taken { rows: usize },
    /// The date already had a snapshot; nothing was written.
    AlreadyTaken,
}

fn segment_key(s: Option<RiskSegment>) -> &'static str {
    s.map_or("all", |s| s.as_str())
}

fn parse_segment(as_of: NaiveDate, v: &str) -> Result<Option<RiskSegment>> {
    Ok(match v {
        "all" => None,
        "low" => Some(RiskSegment::Low),
        "medium" => Some(RiskSegment::Medium),
        "high" => Some(RiskSegment::High),
        "in_review" => Some(RiskSegment::InReview),
        other => {
            return Err(StoreError::Corrupt {
                what: "dashboard snapshot segment",
                id: as_of.to_string(),
                why: format!("'{other}' is not a segment"),
            });
        }
    })
}

fn count(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

macro_rules! row_cols {
    () => {
        "as_of, currency, segment, customers, bucket_current, bucket_1_30, bucket_31_60, \
     bucket_61_90, bucket_over_90, open_total, overdue_total, receivables_begin, credit_sales, \
     dso_days, best_dso_days, cei_percent, avg_days_delinquent, promises_kept, promises_broken, \
     promises_open, promised_kept_amount, promised_broken_amount, promised_open_amount"
    };
}

const INSERT_ROW: &str = concat!(
    "INSERT INTO dashboard_snapshot_rows (",
    row_cols!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
     $18, $19, $20, $21, $22, $23)"
);

const SELECT_ROWS: &str = concat!(
    "SELECT ",
    row_cols!(),
    " FROM dashboard_snapshot_rows WHERE as_of >= $1 AND as_of <= $2 \
     ORDER BY as_of, currency, CASE segment WHEN 'all' THEN 0 WHEN 'low' THEN 1 \
     WHEN 'medium' THEN 2 WHEN 'high' THEN 3 ELSE 4 END"
);

macro_rules! snapshot_row {
    ($r:expr) => {{
        let as_of: NaiveDate = $r.try_get("as_of")?;
        let currency: String = $r.try_get("currency")?;
        let segment: String = $r.try_get("segment")?;
        (
            as_of,
            currency,
            segment,
            [
                $r.try_get::<i64, _>("customers")?,
                $r.try_get::<i64, _>("bucket_current")?,
                $r.try_get::<i64, _>("bucket_1_30")?,
                $r.try_get::<i64, _>("bucket_31_60")?,
                $r.try_get::<i64, _>("bucket_61_90")?,
                $r.try_get::<i64, _>("bucket_over_90")?,
                $r.try_get::<i64, _>("open_total")?,
                $r.try_get::<i64, _>("overdue_total")?,
                $r.try_get::<i64, _>("receivables_begin")?,
                $r.try_get::<i64, _>("credit_sales")?,
                $r.try_get::<i64, _>("promises_kept")?,
                $r.try_get::<i64, _>("promises_broken")?,
                $r.try_get::<i64, _>("promises_open")?,
                $r.try_get::<i64, _>("promised_kept_amount")?,
                $r.try_get::<i64, _>("promised_broken_amount")?,
                $r.try_get::<i64, _>("promised_open_amount")?,
            ],
            [
                $r.try_get::<Option<f64>, _>("dso_days")?,
                $r.try_get::<Option<f64>, _>("best_dso_days")?,
                $r.try_get::<Option<f64>, _>("cei_percent")?,
                $r.try_get::<Option<f64>, _>("avg_days_delinquent")?,
            ],
        )
    }};
}

type RawRow = (NaiveDate, String, String, [i64; 16], [Option<f64>; 4]);

fn into_row(raw: RawRow) -> Result<(NaiveDate, SegmentRow)> {
    let (as_of, currency, segment, i, f) = raw;
    let n = |v: i64| usize::try_from(v).unwrap_or(0);
    let currency: Currency =
        crate::parse_col("dashboard snapshot currency", &as_of.to_string(), &currency)?;
    Ok((
        as_of,
        SegmentRow {
            segment: parse_segment(as_of, &segment)?,
            currency,
            customers: n(i[0]),
            buckets: [i[1], i[2], i[3], i[4], i[5]],
            open_total: i[6],
            overdue_total: i[7],
            receivables_begin: i[8],
            credit_sales: i[9],
            dso_days: f[0],
            best_possible_dso_days: f[1],
            cei_percent: f[2],
            avg_days_delinquent: f[3],
            promises_kept: n(i[10]),
            promises_broken: n(i[11]),
            promises_open: n(i[12]),
            promised_kept_amount: i[13],
            promised_broken_amount: i[14],
            promised_open_amount: i[15],
        },
    ))
}

impl Store {
    /// Whether `as_of` has a snapshot (so a caller need not compute one again).
    pub async fn snapshot_taken(&self, as_of: NaiveDate) -> Result<bool> {
        Ok(dispatch!(self, |pool| {
            sqlx::query("SELECT 1 AS one FROM dashboard_snapshots WHERE as_of = $1")
                .bind(as_of)
                .fetch_optional(pool)
                .await?
                .is_some()
        }))
    }

    /// Stores `dashboard` as the snapshot of its `as_of` date, with a `dashboard.snapshot`
    /// audit event (actor `taken_by`), in one transaction, unless that date already has
    /// one: then nothing is written ([`SnapshotTaken::AlreadyTaken`]).
    pub async fn save_dashboard_snapshot(
        &self,
        dashboard: &Dashboard,
        taken_by: &str,
    ) -> Result<SnapshotTaken> {
        let as_of = dashboard.as_of;
        let mut tx = self.begin().await?;
        let inserted = dispatch_tx!(tx, |conn| {
            sqlx::query(
                "INSERT INTO dashboard_snapshots (as_of, period_days, grace_days, taken_at, taken_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (as_of) DO NOTHING",
            )
            .bind(as_of)
            .bind(i64::from(dashboard.period_days))
            .bind(dashboard.promise_grace_days)
            .bind(now())
            .bind(taken_by)
            .execute(&mut *conn)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            tx.rollback().await?;
            return Ok(SnapshotTaken::AlreadyTaken);
        }
        let rows: Vec<&SegmentRow> = dashboard.totals.iter().chain(&dashboard.rows).collect();
        for r in &rows {
            tx_write!(
                tx,
                INSERT_ROW,
                [
                    as_of,
                    r.currency.as_str().to_string(),
                    segment_key(r.segment),
                    count(r.customers),
                    r.buckets[0],
                    r.buckets[1],
                    r.buckets[2],
                    r.buckets[3],
                    r.buckets[4],
                    r.open_total,
                    r.overdue_total,
                    r.receivables_begin,
                    r.credit_sales,
                    r.dso_days,
                    r.best_possible_dso_days,
                    r.cei_percent,
                    r.avg_days_delinquent,
                    count(r.promises_kept),
                    count(r.promises_broken),
                    count(r.promises_open),
                    r.promised_kept_amount,
                    r.promised_broken_amount,
                    r.promised_open_amount,
                ]
            );
        }
        let currencies: Vec<&str> = dashboard
            .totals
            .iter()
            .map(|t| t.currency.as_str())
            .collect();
        tx.audit_append(NewAuditEvent {
            run_id: None,
            customer_id: None,
            actor: taken_by.to_string(),
            kind: SNAPSHOT_EVENT.into(),
            payload: json!({
                "as_of": as_of.to_string(),
                "period_days": dashboard.period_days,
                "grace_days": dashboard.promise_grace_days,
                "rows": rows.len(),
                "currencies": currencies,
            }),
        })
        .await?;
        tx.commit().await?;
        Ok(SnapshotTaken::Taken { rows: rows.len() })
    }

    /// The snapshots of the dates `from..=to`, oldest first.
    pub async fn dashboard_snapshots(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<SnapshotDay>> {
        let mut days: Vec<SnapshotDay> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(
                "SELECT as_of, period_days, grace_days, taken_at, taken_by FROM dashboard_snapshots \
                 WHERE as_of >= $1 AND as_of <= $2 ORDER BY as_of",
            )
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
            {
                let period: i64 = r.try_get("period_days")?;
                out.push(SnapshotDay {
                    as_of: r.try_get("as_of")?,
                    period_days: u32::try_from(period).unwrap_or(0),
                    grace_days: r.try_get("grace_days")?,
                    taken_at: r.try_get("taken_at")?,
                    taken_by: r.try_get("taken_by")?,
                    rows: Vec::new(),
                });
            }
            out
        });
        let raw: Vec<RawRow> = dispatch!(self, |pool| {
            let mut out = Vec::new();
            for r in sqlx::query(SELECT_ROWS)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?
            {
                out.push(snapshot_row!(r));
            }
            out
        });
        let mut k = 0;
        for raw in raw {
            let (as_of, row) = into_row(raw)?;
            while k < days.len() && days[k].as_of < as_of {
                k += 1;
            }
            match days.get_mut(k) {
                Some(day) if day.as_of == as_of => day.rows.push(row),
                _ => {
                    return Err(StoreError::Corrupt {
                        what: "dashboard snapshot row",
                        id: as_of.to_string(),
                        why: "no snapshot of that date".into(),
                    });
                }
            }
        }
        Ok(days)
    }
}
