//! `testing::seed_plan_queue`: the bulk-seeded approval queue the load benchmark uses must
//! be what the planner loop itself would have queued, and must review like it.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use argent_agent::testing::seed_plan_queue;
use argent_agent::{Agent, AgentConfig, AgentError, CallOutcome, Clock, Reviewer, Trigger};
use argent_core::Role;
use argent_llm::{ScriptedModel, ToolCall};
use argent_store::testkit::{TestStore, consumer_portfolio};
use argent_store::{ApprovalStatus, AuditVerification, Store, ToolCallStatus};

const NOW: &str = "2026-11-20T18:00:00Z";

fn now() -> DateTime<Utc> {
    NOW.parse().unwrap()
}

fn repo(dir: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(dir)
}

fn agent(store: &Store, model: ScriptedModel) -> Agent {
    let config = AgentConfig {
        clock: Clock::Fixed(now()),
        ..Default::default()
    };
    Agent::from_dirs(
        store.clone(),
        Arc::new(model),
        &repo("prompts"),
        &repo("policies"),
        config,
    )
    .unwrap()
}

fn collector() -> Reviewer {
    Reviewer {
        name: "alice".into(),
        role: Role::Collector,
    }
}

#[tokio::test]
async fn seeded_items_are_what_the_planner_loop_queues_and_review_like_them() {
    for ts in TestStore::all().await.unwrap() {
        let (store, label) = (&ts.store, ts.label);
        let portfolio = consumer_portfolio(40);
        let seeder = agent(store, ScriptedModel::new());
        let ids = seed_plan_queue(&seeder, &portfolio).await.unwrap();
        assert_eq!(ids.len(), 40, "{label}");
        assert_eq!(
            store
                .count_approvals(Some(ApprovalStatus::Pending))
                .await
                .unwrap(),
            40,
            "{label}"
        );
        let v = store.audit_verify().await.unwrap();
        assert!(
            matches!(v, AuditVerification::Intact { events: 200, .. }),
            "{label}: five events per seeded run: {v:?}"
        );

        // The planner loop, asked to make the same plan for the same customer after the
        // same message, queues an identical item.
        let seeded = store.approval(&ids[6]).await.unwrap();
        let model = ScriptedModel::new();
        model.push_tool_calls(vec![ToolCall::new(
            "c1",
            "propose_plan",
            seeded.action.to_string(),
        )]);
        model.push_text("Done.");
        let looped = agent(store, model);
        let trigger: Trigger = serde_json::from_value(seeded.context["trigger"].clone()).unwrap();
        let out = looped.start(&seeded.customer_id, trigger).await.unwrap();
        let real = store
            .approval(out.calls[0].approval_id.as_ref().unwrap())
            .await
            .unwrap();
        assert_eq!(
            (
                &real.tool,
                &real.customer_id,
                &real.action,
                &real.decision,
                &real.context,
                real.priority,
                real.amount_minor,
                &real.currency,
                &real.required_role
            ),
            (
                &seeded.tool,
                &seeded.customer_id,
                &seeded.action,
                &seeded.decision,
                &seeded.context,
                seeded.priority,
                seeded.amount_minor,
                &seeded.currency,
                &seeded.required_role
            ),
            "{label}"
        );
        assert!(seeded.required_role.split(',').any(|r| r == "collector"));
        assert_eq!(seeded.decision["outcome"], "needs_approval", "{label}");
        let tc = store.tool_call(&seeded.call_id).await.unwrap().unwrap();
        assert_eq!(tc.status, ToolCallStatus::Queued, "{label}");
        let outcome: CallOutcome = serde_json::from_value(tc.result.unwrap()).unwrap();
        assert_eq!(outcome.approval_id.as_deref(), Some(seeded.id.as_str()));

        // Reviewing a seeded item works like reviewing any other, and on the SQLite writer
        // an approve or a reject is one round trip to its thread (the commit).
        let trips = store.writer_round_trips().await;
        let r = seeder.approve(&ids[0], &collector(), None).await.unwrap();
        assert_eq!(r.decision.outcome.as_str(), "needs_approval", "{label}");
        assert!(r.result["plan_id"].is_string(), "{label}: {}", r.result);
        seeder
            .reject(&ids[1], &collector(), "customer withdrew the request")
            .await
            .unwrap();
        if let (Some(before), Some(after)) = (trips, store.writer_round_trips().await) {
            assert_eq!(after - before, 2, "{label}: one round trip per decision");
        }
        assert!(matches!(
            seeder.approve(&ids[0], &collector(), None).await,
            Err(AgentError::AlreadyDecided(_))
        ));
        // Two reviewers deciding the same items at once: exactly one wins each, the other
        // is told it was already decided (whether the agent's check of the item or the
        // store's conditional update caught it).
        let seeder = Arc::new(seeder);
        for id in &ids[2..12] {
            let (a, b) = (seeder.clone(), seeder.clone());
            let (x, y) = (id.clone(), id.clone());
            let first = tokio::spawn(async move { a.approve(&x, &collector(), None).await });
            let second =
                tokio::spawn(async move { b.reject(&y, &collector(), "a second reviewer").await });
            let (first, second) = (first.await.unwrap(), second.await.unwrap());
            match (&first, &second) {
                (Ok(_), Err(AgentError::AlreadyDecided(_)))
                | (Err(AgentError::AlreadyDecided(_)), Ok(())) => {}
                other => panic!("{label} {id}: want one winner, got {other:?}"),
            }
        }
        let approved = store.approval(&ids[0]).await.unwrap();
        assert_eq!(approved.status, ApprovalStatus::Approved, "{label}");
        assert_eq!(
            store
                .tool_call(&approved.call_id)
                .await
                .unwrap()
                .unwrap()
                .status,
            ToolCallStatus::Approved,
            "{label}"
        );
        assert_eq!(
            store.approval(&ids[1]).await.unwrap().status,
            ApprovalStatus::Rejected
        );
        assert!(
            matches!(
                store.audit_verify().await.unwrap(),
                AuditVerification::Intact { .. }
            ),
            "{label}"
        );
        ts.cleanup().await;
    }
}
