//! Eval runs from the web: the evaluator's list, reports and comparisons, and the runs a
//! manager starts on a draft document before activating it.
//!
//! A run is a background task (the offline model over the eval set the server was started
//! with); its record in the store says `running` until the report is written, and the
//! page refreshes itself until then. A run of a draft runs the active set first, as its
//! baseline, then the set with the draft in place, and stores the comparison.
//!
//! Runs are bounded (`crate::limits`): one going per user and two in all by default, the
//! next refused with 429 before anything is stored; each runs on a blocking thread of its
//! own (a single-threaded runtime) holding a CPU slot, never on the executor that serves
//! the pages.

use std::path::PathBuf;

use axum::Json;
use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::DocumentSet;
use argent_evals::{
    Comparison, EvalSet, Gate, ModelChoice, Report, RunOptions, compare,
    deny_rule_ids_in_documents, report_summary, run_documents,
};
use argent_store::{DocKind, EvalRunRecord, EvalRunStatus, EvalRunSummary, NewEvalRun, Store};

use super::{Page, Posted, page};
use crate::auth::{Allowed, EvalsRead, EvalsRun};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};
use crate::limits::CpuSlots;
use crate::web::page_offset;
use crate::{AppState, ServerConfig};

/// Runs per list page.
const EVALS_PAGE: i64 = 50;

fn new_id() -> String {
    format!("eval-{}", hex::encode(rand::random::<[u8; 6]>()))
}

fn eval_set(config: &ServerConfig) -> AppResult<(PathBuf, EvalSet)> {
    let dir = config.evals_dir.clone().ok_or_else(|| {
        AppError::Conflict("this server was started without an eval set (--evals)".into())
    })?;
    let set = EvalSet::load(&dir)
        .map_err(|e| AppError::internal(format!("eval set {}: {e}", dir.display())))?;
    Ok((dir, set))
}

/// What to evaluate: the active documents, or the active set with one draft in place.
pub(crate) struct EvalRequest {
    pub draft: Option<(DocKind, String, i64)>,
    pub started_by: String,
}

/// Records the run(s) and starts them in the background; returns the id of the run to
/// show (the draft's, when there is one).
pub(crate) async fn start(state: &AppState, req: EvalRequest) -> AppResult<String> {
    // The run's place first: a refused run stores nothing. It frees when the background
    // task ends (the run finished or failed), or on any error below.
    let slot = state.evals.start(&req.started_by)?;
    let store = state.store.clone();
    let cpu = state.cpu.clone();
    let (_, set) = eval_set(&state.config)?;
    let active_versions = store.active_documents().await?;
    if active_versions.is_empty() {
        return Err(AppError::Conflict(
            "the database has no documents to evaluate yet".into(),
        ));
    }
    let active = DocumentSet::from_versions(&active_versions);
    let model = ModelChoice::Offline;
    let baseline = store
        .insert_eval_run(&NewEvalRun {
            id: new_id(),
            label: "active".into(),
            model: model.label().into(),
            subject: "the active documents".into(),
            doc_kind: None,
            doc_name: None,
            doc_version: None,
            baseline_id: None,
            started_by: req.started_by.clone(),
        })
        .await?;
    let baseline_id = baseline.run.id.clone();
    let draft = match &req.draft {
        Some((kind, name, version)) => {
            let doc = store.document(*kind, name, *version).await?;
            let run = store
                .insert_eval_run(&NewEvalRun {
                    id: new_id(),
                    label: format!("draft {} {name} v{version}", kind.as_str()),
                    model: model.label().into(),
                    subject: format!(
                        "{} {name} version {version} in the active set",
                        kind.as_str()
                    ),
                    doc_kind: Some(kind.as_str().into()),
                    doc_name: Some(name.clone()),
                    doc_version: Some(*version),
                    baseline_id: Some(baseline_id.clone()),
                    started_by: req.started_by.clone(),
                })
                .await?;
            Some((run.run.id, active.with_document(*kind, name, &doc.body)))
        }
        None => None,
    };
    let show = draft
        .as_ref()
        .map_or_else(|| baseline_id.clone(), |(id, _)| id.clone());
    tracing::info!(run = %show, by = %req.started_by, "eval run started");
    // Both runs count executions against the ACTIVE deny rules, so a draft that weakens
    // a deny rule is still caught executing what it now allows.
    let opts = RunOptions {
        concurrency: 2,
        filter: state.config.eval_filter.clone(),
        deny_rules: deny_rule_ids_in_documents(&active)
            .map_err(|e| AppError::internal(format!("deny rules of the active set: {e}")))?,
        ..RunOptions::default()
    };
    tokio::spawn(async move {
        let _slot = slot;
        let base = run_and_record(&store, &cpu, &set, &opts, &baseline_id, &active, None).await;
        if let Some((id, docs)) = draft {
            match base {
                Some(base) => {
                    run_and_record(&store, &cpu, &set, &opts, &id, &docs, Some(&base)).await;
                }
                None => {
                    let _ = store
                        .fail_eval_run(&id, &format!("its baseline {baseline_id} failed"))
                        .await;
                }
            }
        }
    });
    Ok(show)
}

/// Runs the set over `docs` and writes the outcome to run `id`; the report on success.
async fn run_and_record(
    store: &Store,
    cpu: &CpuSlots,
    set: &EvalSet,
    opts: &RunOptions,
    id: &str,
    docs: &DocumentSet,
    baseline: Option<&Report>,
) -> Option<Report> {
    let outcome = run_off_executor(cpu, set, docs, opts).await;
    let written = match &outcome {
        Ok(report) => {
            let comparison = baseline.map(|b| compare(b, report, &Gate::default()));
            let mut summary = report_summary(report);
            if let Some(c) = &comparison {
                summary = summary.with_comparison(c);
            }
            let json = |v: serde_json::Result<Value>| v.unwrap_or(Value::Null);
            store
                .finish_eval_run(
                    id,
                    &json(serde_json::to_value(&summary)),
                    &json(serde_json::to_value(report)),
                    comparison
                        .as_ref()
                        .map(|c| json(serde_json::to_value(c)))
                        .as_ref(),
                )
                .await
        }
        Err(e) => store.fail_eval_run(id, e).await,
    };
    if let Err(e) = written {
        tracing::error!(run = %id, error = %e, "could not record an eval run");
    }
    outcome.ok()
}

/// Runs the set over `docs` on a blocking thread, in a single-threaded runtime of its own,
/// once a CPU slot is free.
async fn run_off_executor(
    cpu: &CpuSlots,
    set: &EvalSet,
    docs: &DocumentSet,
    opts: &RunOptions,
) -> Result<Report, String> {
    let (set, docs, opts) = (set.clone(), docs.clone(), opts.clone());
    cpu.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the eval run's runtime: {e}"))?;
        rt.block_on(run_documents(&set, &docs, ModelChoice::Offline, &opts))
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

fn summary_view(r: &EvalRunSummary) -> Value {
    let s = r.summary.clone().unwrap_or(Value::Null);
    json!({
        "id": r.id,
        "href": format!("/evals/{}", r.id),
        "label": r.label,
        "subject": r.subject,
        "model": r.model,
        "status": r.status.as_str(),
        "running": r.status == EvalRunStatus::Running,
        "started_by": r.started_by,
        "started_at": r.started_at.to_rfc3339(),
        "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
        "baseline_id": r.baseline_id,
        "baseline_href": r.baseline_id.as_ref().map(|b| format!("/evals/{b}")),
        "summary": s,
        "error": r.error,
    })
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub page: Option<i64>,
}

/// `GET /evals`.
pub async fn list(
    State(store): State<Store>,
    Page(user, _): Page<EvalsRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Html<String>> {
    let page_no = q.page.unwrap_or(1).max(1);
    let runs = store
        .eval_runs(EVALS_PAGE, page_offset(page_no, EVALS_PAGE)?)
        .await?;
    let total = store.count_eval_runs().await?;
    page(
        &user,
        "evals",
        "Eval runs",
        json!({
            "runs": runs.iter().map(summary_view).collect::<Vec<_>>(),
            "total": total,
            "may_run": crate::perm::EVALS_RUN.contains(&user.role),
            "prev": (page_no > 1).then(|| format!("/evals?page={}", page_no - 1)),
            "next": (page_no.saturating_mul(EVALS_PAGE) < total)
                .then(|| format!("/evals?page={}", page_no.saturating_add(1))),
        }),
    )
}

fn report_of(r: &EvalRunRecord) -> AppResult<Option<Report>> {
    r.report
        .clone()
        .map(serde_json::from_value::<Report>)
        .transpose()
        .map_err(|e| AppError::internal(format!("stored report of {}: {e}", r.run.id)))
}

/// `GET /evals/{id}`: the run's report, and its comparison with its baseline.
pub async fn show(
    State(store): State<Store>,
    Page(user, _): Page<EvalsRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Html<String>> {
    let rec = store.eval_run(&id).await?;
    let report = report_of(&rec)?;
    let comparison: Option<Comparison> = rec
        .comparison
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| AppError::internal(format!("stored comparison of {id}: {e}")))?;
    page(
        &user,
        "eval",
        &format!("Eval run {id}"),
        json!({
            "run": summary_view(&rec.run),
            "report_html": report.as_ref().map(Report::to_html_fragment),
            "comparison_html": comparison.as_ref().map(Comparison::to_html_fragment),
            "regressed": comparison.as_ref().map(Comparison::regressed),
        }),
    )
}

#[derive(Debug, Default, Deserialize)]
pub struct CompareQuery {
    pub a: Option<String>,
    pub b: Option<String>,
}

/// `GET /evals/compare?a=&b=`: any two finished runs, `a` as the baseline.
pub async fn compare_page(
    State(store): State<Store>,
    Page(user, _): Page<EvalsRead>,
    ApiQuery(q): ApiQuery<CompareQuery>,
) -> AppResult<Html<String>> {
    let (Some(a), Some(b)) = (q.a.filter(|s| !s.is_empty()), q.b.filter(|s| !s.is_empty())) else {
        return Err(AppError::BadRequest(
            "compare needs two runs: ?a=&b=".into(),
        ));
    };
    let ra = store.eval_run(&a).await?;
    let rb = store.eval_run(&b).await?;
    let (Some(rep_a), Some(rep_b)) = (report_of(&ra)?, report_of(&rb)?) else {
        return Err(AppError::Conflict("both runs must have finished".into()));
    };
    let c = compare(&rep_a, &rep_b, &Gate::default());
    page(
        &user,
        "eval_compare",
        &format!("{a} → {b}"),
        json!({
            "a": summary_view(&ra.run),
            "b": summary_view(&rb.run),
            "comparison_html": c.to_html_fragment(),
            "regressed": c.regressed(),
        }),
    )
}

/// The draft a `/documents/{kind}/{name}/{version}/eval` path names.
fn draft_of(kind: &str, name: String, version: i64) -> AppResult<Option<(DocKind, String, i64)>> {
    Ok(Some((super::documents::kind(kind)?, name, version)))
}

/// Starts a run for a page's form and shows it.
async fn start_page(
    state: &AppState,
    draft: Option<(DocKind, String, i64)>,
    user: &super::SessionUser,
) -> AppResult<Response> {
    let started_by = user.actor();
    let id = start(state, EvalRequest { draft, started_by }).await?;
    Ok(Redirect::to(&format!("/evals/{id}")).into_response())
}

/// `POST /evals`: run the eval set on the active documents.
pub async fn run_active(
    State(state): State<AppState>,
    Posted(user, _, _): Posted<EvalsRun, Vec<(String, String)>>,
) -> AppResult<Response> {
    start_page(&state, None, &user).await
}

/// `POST /documents/{kind}/{name}/{version}/eval`: the draft against the active set.
pub async fn run_draft(
    State(state): State<AppState>,
    ApiPath((kind, name, version)): ApiPath<(String, String, i64)>,
    Posted(user, _, _): Posted<EvalsRun, Vec<(String, String)>>,
) -> AppResult<Response> {
    start_page(&state, draft_of(&kind, name, version)?, &user).await
}

// ---------------------------------------------------------------------------------------
// JSON API

#[derive(Debug, Serialize)]
pub struct EvalRunPage {
    pub runs: Vec<EvalRunSummary>,
    pub total: i64,
}

/// `GET /api/evals?page=`.
pub async fn api_list(
    State(store): State<Store>,
    _: Allowed<EvalsRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Json<EvalRunPage>> {
    let page_no = q.page.unwrap_or(1).max(1);
    Ok(Json(EvalRunPage {
        runs: store
            .eval_runs(EVALS_PAGE, page_offset(page_no, EVALS_PAGE)?)
            .await?,
        total: store.count_eval_runs().await?,
    }))
}

/// `GET /api/evals/{id}`: the run with its report and comparison.
pub async fn api_show(
    State(store): State<Store>,
    _: Allowed<EvalsRead>,
    ApiPath(id): ApiPath<String>,
) -> AppResult<Json<EvalRunRecord>> {
    Ok(Json(store.eval_run(&id).await?))
}

#[derive(Debug, Serialize)]
pub struct Started {
    pub id: String,
    pub status: &'static str,
}

/// Starts a run for an API caller: 202 with the run's id to poll.
async fn start_api(
    state: &AppState,
    draft: Option<(DocKind, String, i64)>,
    user: &crate::auth::AuthUser,
) -> AppResult<Response> {
    let started_by = user.actor();
    let id = start(state, EvalRequest { draft, started_by }).await?;
    let started = Started {
        id,
        status: "running",
    };
    Ok((axum::http::StatusCode::ACCEPTED, Json(started)).into_response())
}

/// `POST /api/evals`: run the eval set on the active documents (202; poll the run).
pub async fn api_run(
    State(state): State<AppState>,
    Allowed(user, _): Allowed<EvalsRun>,
) -> AppResult<Response> {
    start_api(&state, None, &user).await
}

/// `POST /api/documents/{kind}/{name}/{version}/eval` (202; poll the run).
pub async fn api_run_draft(
    State(state): State<AppState>,
    Allowed(user, _): Allowed<EvalsRun>,
    ApiPath((kind, name, version)): ApiPath<(String, String, i64)>,
) -> AppResult<Response> {
    start_api(&state, draft_of(&kind, name, version)?, &user).await
}
