//! A customer's correspondence, oldest first, for the reviewer's item page: every message
//! the customer sent us and every email we wrote to them, not only the one that started
//! the run being reviewed.
//!
//! Three sources, read by the customer's indexes: the runs an inbound message started
//! (the run's trigger holds the customer's new text), received mail matched to the
//! customer that started no run (an out-of-office, a bounce, a message processed before
//! the run was linked: its text is in the raw message, which the caller may parse), and
//! the outbox. [`thread_of`] (pure) merges them: a received message whose run is one of
//! the runs read is shown once, from the run. Reads only.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mail_in::InboundMail;
use crate::timeline::RunRow;
use crate::{OutboxEmail, Result, Store};

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the customer (or someone writing in their thread) to us.
    Inbound,
    /// From us to the customer.
    Outbound,
}

/// One message of a customer's thread.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadMessage {
    /// When it was received (inbound), sent (outbound, once sent) or queued (outbound,
    /// not sent yet).
    pub at: DateTime<Utc>,
    pub direction: Direction,
    /// The sender (inbound) or the recipient (outbound).
    pub address: String,
    pub subject: String,
    /// The text; `None` for received mail that started no run, whose text is only in the
    /// raw message (`Store::inbound_raw(source_id)`).
    pub body: Option<String>,
    /// `runs`, `inbound_mail` or `outbox`.
    pub source: String,
    /// The row's id in that table.
    pub source_id: String,
    /// The run it started (inbound) or that wrote it (outbound: its tool call's run is not
    /// read; `None`).
    pub run_id: Option<String>,
    /// Inbound: `received`, or the received mail's kind (`auto_reply`, `hard_bounce`, …).
    /// Outbound: the outbox status (`pending`, `sent`, `failed`, `uncertain`).
    pub status: String,
}

/// Merges the sources into one thread, oldest first (by time, then inbound before
/// outbound, then source and id: a total order). Pure.
pub fn thread_of(
    runs: &[RunRow],
    mails: &[InboundMail],
    emails: &[OutboxEmail],
) -> Vec<ThreadMessage> {
    let mut out = Vec::new();
    let mut inbound_runs = std::collections::BTreeSet::new();
    for r in runs {
        let t = |k: &str| r.trigger.get(k).and_then(Value::as_str).unwrap_or("");
        if t("kind") != "inbound" {
            continue;
        }
        inbound_runs.insert(r.id.as_str());
        let at = r
            .trigger
            .get("received_at")
            .and_then(|v| serde_json::from_value::<DateTime<Utc>>(v.clone()).ok())
            .unwrap_or(r.created_at);
        out.push(ThreadMessage {
            at,
            direction: Direction::Inbound,
            address: t("from").to_string(),
            subject: t("subject").to_string(),
            body: Some(t("body").to_string()),
            source: "runs".into(),
            source_id: r.id.clone(),
            run_id: Some(r.id.clone()),
            status: "received".into(),
        });
    }
    for m in mails {
        if m.run_id
            .as_deref()
            .is_some_and(|r| inbound_runs.contains(r))
        {
            continue;
        }
        out.push(ThreadMessage {
            at: m.received_at,
            direction: Direction::Inbound,
            address: m.from_addr.clone().unwrap_or_default(),
            subject: m.subject.clone().unwrap_or_default(),
            body: None,
            source: "inbound_mail".into(),
            source_id: m.id.clone(),
            run_id: m.run_id.clone(),
            status: m.kind.clone().unwrap_or_else(|| m.status.clone()),
        });
    }
    for e in emails {
        out.push(ThreadMessage {
            at: e.sent_at.unwrap_or(e.created_at),
            direction: Direction::Outbound,
            address: e.to_addr.clone(),
            subject: e.subject.clone(),
            body: Some(e.body.clone()),
            source: "outbox".into(),
            source_id: e.id.clone(),
            run_id: None,
            status: e.status.clone(),
        });
    }
    out.sort_by(|a, b| {
        (a.at, a.direction, &a.source, &a.source_id).cmp(&(
            b.at,
            b.direction,
            &b.source,
            &b.source_id,
        ))
    });
    out
}

impl Store {
    /// Customer `id`'s thread, oldest first (see [`thread_of`]); empty for a customer
    /// with no messages, and for an unknown one.
    pub async fn customer_thread(&self, id: &str) -> Result<Vec<ThreadMessage>> {
        let runs = self.timeline_runs(id).await?;
        let mails = self.inbound_for_customer(id).await?;
        let emails = self.emails(Some(id)).await?;
        Ok(thread_of(&runs, &mails, &emails))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn run(id: &str, trigger: Value, at: &str) -> RunRow {
        RunRow {
            id: id.into(),
            trigger,
            status: "finished".into(),
            model: "m".into(),
            created_at: t(at),
            updated_at: t(at),
        }
    }

    fn mail(id: &str, run: Option<&str>, at: &str, kind: &str) -> InboundMail {
        InboundMail {
            id: id.into(),
            message_id: None,
            source: "imap".into(),
            received_at: t(at),
            status: "processed".into(),
            customer_id: Some("C".into()),
            processed_at: None,
            error: None,
            from_addr: Some("ann@mail.example".into()),
            subject: Some("Re: your account".into()),
            kind: Some(kind.into()),
            matched_by: Some("thread".into()),
            auth: None,
            run_id: run.map(str::to_string),
        }
    }

    fn email(id: &str, created: &str, sent: Option<&str>) -> OutboxEmail {
        OutboxEmail {
            id: id.into(),
            call_id: format!("call-{id}"),
            customer_id: "C".into(),
            to_addr: "ann@mail.example".into(),
            subject: format!("subject {id}"),
            body: format!("body {id}"),
            created_at: t(created),
            status: if sent.is_some() { "sent" } else { "pending" }.into(),
            sent_at: sent.map(t),
            ..Default::default()
        }
    }

    #[test]
    fn every_message_once_oldest_first() {
        let inbound = |at: &str, body: &str| {
            json!({"kind": "inbound", "from": "ann@mail.example", "subject": "My account",
                   "body": body, "received_at": at})
        };
        let runs = [
            run(
                "r2",
                inbound("2026-11-20T18:00:00Z", "second"),
                "2026-11-20T18:00:01Z",
            ),
            run(
                "r1",
                inbound("2026-11-01T09:00:00Z", "first"),
                "2026-11-01T09:00:02Z",
            ),
            run(
                "r-step",
                json!({"kind": "step", "step": "overdue_notice"}),
                "2026-11-05T10:00:00Z",
            ),
        ];
        let mails = [
            // Started r2: shown once, from the run.
            mail("in-2", Some("r2"), "2026-11-20T18:00:00Z", "human"),
            // An out-of-office that started no run.
            mail("in-ooo", None, "2026-11-06T08:00:00Z", "out_of_office"),
        ];
        let emails = [
            email("o1", "2026-11-05T10:00:05Z", Some("2026-11-05T10:01:00Z")),
            email("o2", "2026-11-20T18:00:05Z", None),
        ];
        let thread = thread_of(&runs, &mails, &emails);
        let got: Vec<(&str, Direction, &str)> = thread
            .iter()
            .map(|m| (m.source_id.as_str(), m.direction, m.status.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("r1", Direction::Inbound, "received"),
                ("o1", Direction::Outbound, "sent"),
                ("in-ooo", Direction::Inbound, "out_of_office"),
                ("r2", Direction::Inbound, "received"),
                ("o2", Direction::Outbound, "pending"),
            ]
        );
        assert_eq!(thread[0].body.as_deref(), Some("first"));
        assert_eq!(
            thread[0].at,
            t("2026-11-01T09:00:00Z"),
            "when it was received"
        );
        assert_eq!(thread[1].at, t("2026-11-05T10:01:00Z"), "when it was sent");
        assert_eq!(thread[2].body, None, "the text is in the raw message");
        assert_eq!(thread[4].at, t("2026-11-20T18:00:05Z"), "queued, not sent");
    }
}
