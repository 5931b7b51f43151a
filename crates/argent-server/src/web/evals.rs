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
use axum::extract::{RawQuery, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_agent::DocumentSet;
use argent_evals::{
    CaseReport, CaseTrace, Comparison, EvalSet, Gate, ModelChoice, Report, RunOptions,
    TracedReport, compare, deny_rule_ids_in_documents, report_summary, run_documents_traced,
};
use argent_store::{
    DocKind, DocumentVersion, EvalRunCase, EvalRunDocument, EvalRunRecord, EvalRunStatus,
    EvalRunSummary, NewEvalRun, NewEvalRunCase, Store, StoreError,
};

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
    let active_used = documents_used(&active_versions, None);
    let model = ModelChoice::Offline;
    let baseline = store
        .insert_eval_run_with_documents(
            &NewEvalRun {
                id: new_id(),
                label: "active".into(),
                model: model.label().into(),
                subject: "the active documents".into(),
                doc_kind: None,
                doc_name: None,
                doc_version: None,
                baseline_id: None,
                started_by: req.started_by.clone(),
            },
            &active_used,
        )
        .await?;
    let baseline_id = baseline.run.id.clone();
    let draft = match &req.draft {
        Some((kind, name, version)) => {
            let doc = store.document(*kind, name, *version).await?;
            let run = store
                .insert_eval_run_with_documents(
                    &NewEvalRun {
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
                    },
                    &documents_used(&active_versions, Some(&doc)),
                )
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

/// The prompt and policy versions a run evaluates: the active ones, with `draft` in place
/// of the active version of its name (or added, for a new name). Procedures are left out:
/// an eval run does not read them.
fn documents_used(
    active: &[DocumentVersion],
    draft: Option<&DocumentVersion>,
) -> Vec<EvalRunDocument> {
    let evaluated = |k: DocKind| matches!(k, DocKind::Prompt | DocKind::Policy);
    let entry = |v: &DocumentVersion, is_draft: bool| EvalRunDocument {
        kind: v.kind.as_str().to_string(),
        name: v.name.clone(),
        version: v.version,
        sha256: v.sha256.clone(),
        draft: is_draft,
    };
    let mut out: Vec<EvalRunDocument> = active
        .iter()
        .filter(|v| evaluated(v.kind))
        .filter(|v| draft.is_none_or(|d| !(d.kind == v.kind && d.name == v.name)))
        .map(|v| entry(v, false))
        .collect();
    if let Some(d) = draft.filter(|d| evaluated(d.kind)) {
        out.push(entry(d, true));
    }
    out.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    out
}

/// Each case's trace as the store keeps it.
fn case_rows(traces: &[CaseTrace]) -> Vec<NewEvalRunCase> {
    traces
        .iter()
        .map(|t| NewEvalRunCase {
            case_id: t.id.clone(),
            title: t.title.clone(),
            passed: t.passed,
            trace: serde_json::to_value(t).unwrap_or(Value::Null),
        })
        .collect()
}

/// Runs the set over `docs` and writes the outcome to run `id` (with each case's trace);
/// the report on success.
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
        Ok(TracedReport { report, traces }) => {
            let comparison = baseline.map(|b| compare(b, report, &Gate::default()));
            let mut summary = report_summary(report);
            if let Some(c) = &comparison {
                summary = summary.with_comparison(c);
            }
            let json = |v: serde_json::Result<Value>| v.unwrap_or(Value::Null);
            let done = store
                .finish_eval_run_with_cases(
                    id,
                    &json(serde_json::to_value(&summary)),
                    &json(serde_json::to_value(report)),
                    comparison
                        .as_ref()
                        .map(|c| json(serde_json::to_value(c)))
                        .as_ref(),
                    &case_rows(traces),
                )
                .await;
            if let Err(e) = &done {
                // Leave the run failed rather than running forever.
                let _ = store
                    .fail_eval_run(id, &format!("recording its report: {e}"))
                    .await;
            }
            done
        }
        Err(e) => store.fail_eval_run(id, e).await,
    };
    if let Err(e) = written {
        tracing::error!(run = %id, error = %e, "could not record an eval run");
    }
    outcome.ok().map(|t| t.report)
}

/// Runs the set over `docs` on a blocking thread, in a single-threaded runtime of its own,
/// once a CPU slot is free.
async fn run_off_executor(
    cpu: &CpuSlots,
    set: &EvalSet,
    docs: &DocumentSet,
    opts: &RunOptions,
) -> Result<TracedReport, String> {
    let (set, docs, opts) = (set.clone(), docs.clone(), opts.clone());
    cpu.run(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("starting the eval run's runtime: {e}"))?;
        rt.block_on(run_documents_traced(
            &set,
            &docs,
            ModelChoice::Offline,
            &opts,
        ))
        .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Finished runs the pass-rate trend reads (newest first) …
const TREND_RUNS: i64 = 500;
/// … and the most recent points it plots per eval set.
const TREND_POINTS: usize = 30;

fn summary_u64(s: &Value, key: &str) -> u64 {
    s.get(key).and_then(Value::as_u64).unwrap_or(0)
}

/// A finished run's verdict: against its baseline when it was compared (`regression` or
/// `pass`, as the gate judged), else on its own (`pass` when every case passed with no
/// executed violation and no run error, `fail` otherwise). `None` while it runs or when it
/// failed.
fn verdict(r: &EvalRunSummary) -> Option<Value> {
    if r.status != EvalRunStatus::Done {
        return None;
    }
    let s = r.summary.as_ref()?;
    let (word, good, why) = match s.get("regressed").and_then(Value::as_bool) {
        Some(true) => {
            let reasons: Vec<&str> = s
                .get("regressions")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            ("regression", false, reasons.join("; "))
        }
        Some(false) => ("pass", true, "no regression against its baseline".into()),
        None => {
            let (failed, violations, errors) = (
                summary_u64(s, "failed_cases"),
                summary_u64(s, "executed_violations"),
                summary_u64(s, "errors"),
            );
            if failed == 0 && violations == 0 && errors == 0 {
                ("pass", true, "every case passed".into())
            } else {
                (
                    "fail",
                    false,
                    format!(
                        "{failed} failed case(s), {violations} executed violation(s), {errors} run error(s)"
                    ),
                )
            }
        }
    };
    Some(json!({"word": word, "good": good, "why": why}))
}

fn short_sha(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The documents a run evaluated, for a page: the policies by name and version, the
/// prompts (many) by count with every one listed, the draft(s), and the prompt and policy
/// set hashes of the report's labels (all a run recorded without its documents has).
fn documents_view(r: &EvalRunSummary) -> Value {
    let labels = r.summary.as_ref().and_then(|s| s.get("labels"));
    let label = |k: &str| {
        labels
            .and_then(|l| l.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let doc = |d: &EvalRunDocument| {
        json!({
            "kind": d.kind,
            "name": d.name,
            "version": d.version,
            "sha": short_sha(&d.sha256),
            "sha256": d.sha256,
            "draft": d.draft,
        })
    };
    let of = |kind: &str| -> Vec<Value> {
        r.documents
            .iter()
            .filter(|d| d.kind == kind)
            .map(doc)
            .collect()
    };
    let prompts = of("prompt");
    json!({
        "recorded": !r.documents.is_empty(),
        "policies": of("policy"),
        "prompt_count": prompts.len(),
        "prompts": prompts,
        "draft_prompts": r.documents.iter().filter(|d| d.draft && d.kind == "prompt").map(doc).collect::<Vec<_>>(),
        "prompt_set": label("prompts"),
        "policy_set": label("policies"),
    })
}

/// A run's pass rate (cases whose every attempt passed ÷ cases), when it has cases.
fn pass_rate(r: &EvalRunSummary) -> Option<(u64, u64)> {
    let s = r.summary.as_ref()?;
    let cases = summary_u64(s, "cases");
    (r.status == EvalRunStatus::Done && cases > 0).then(|| (summary_u64(s, "passed_cases"), cases))
}

fn pct(passed: u64, cases: u64) -> String {
    if cases == 0 {
        return "-".into();
    }
    format!("{:.1}%", passed as f64 * 100.0 / cases as f64)
}

fn summary_view(r: &EvalRunSummary) -> Value {
    let s = r.summary.clone().unwrap_or(Value::Null);
    let set = s.get("set").and_then(Value::as_str).unwrap_or_default();
    json!({
        "id": r.id,
        "href": format!("/evals/{}", seg(&r.id)),
        "label": r.label,
        "subject": r.subject,
        "model": r.model,
        "status": r.status.as_str(),
        "running": r.status == EvalRunStatus::Running,
        "done": r.status == EvalRunStatus::Done,
        "started_by": r.started_by,
        "started_at": r.started_at.to_rfc3339(),
        "finished_at": r.finished_at.map(|t| t.to_rfc3339()),
        "baseline_id": r.baseline_id,
        "baseline_href": r.baseline_id.as_ref().map(|b| format!("/evals/{}", seg(b))),
        "set": set,
        "pass_rate": pass_rate(r).map(|(p, c)| pct(p, c)),
        "verdict": verdict(r),
        "documents": documents_view(r),
        "summary": s,
        "error": r.error,
    })
}

/// Percent-encodes one path segment or query value (case and run ids come from files and
/// the command line).
fn seg(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// The pass-rate trend: one small server-side SVG per eval set, and its points as a table.

struct TrendPoint<'a> {
    run: &'a EvalRunSummary,
    passed: u64,
    cases: u64,
    /// A run of the active documents (not a draft's).
    active: bool,
    regressed: bool,
}

impl TrendPoint<'_> {
    fn rate(&self) -> f64 {
        self.passed as f64 / self.cases as f64
    }
}

/// Per eval set (by name), its latest finished runs' pass rates, oldest first: an SVG line
/// through the runs of the active documents, draft runs as hollow points off the line,
/// regressions in red, each point a link to its run; and the same points as a table with
/// a bar each.
fn trend_view(runs: &[EvalRunSummary]) -> Vec<Value> {
    let mut by_set: std::collections::BTreeMap<String, Vec<TrendPoint<'_>>> =
        std::collections::BTreeMap::new();
    for r in runs {
        let Some((passed, cases)) = pass_rate(r) else {
            continue;
        };
        let s = r.summary.as_ref();
        let set = s
            .and_then(|s| s.get("set"))
            .and_then(Value::as_str)
            .unwrap_or("(unnamed set)")
            .to_string();
        let points = by_set.entry(set).or_default();
        if points.len() < TREND_POINTS {
            points.push(TrendPoint {
                run: r,
                passed,
                cases,
                active: r.doc_kind.is_none(),
                regressed: s.and_then(|s| s.get("regressed")).and_then(Value::as_bool)
                    == Some(true),
            });
        }
    }
    by_set
        .into_iter()
        .map(|(set, mut points)| {
            points.reverse();
            json!({
                "set": set,
                "count": points.len(),
                "svg": trend_svg(&set, &points),
                "points": points.iter().map(|p| json!({
                    "id": p.run.id,
                    "href": format!("/evals/{}", seg(&p.run.id)),
                    "label": p.run.label,
                    "started_at": p.run.started_at.to_rfc3339(),
                    "passed": p.passed,
                    "cases": p.cases,
                    "rate": format!("{:.4}", p.rate()),
                    "pct": pct(p.passed, p.cases),
                    "active": p.active,
                    "regressed": p.regressed,
                })).collect::<Vec<_>>(),
            })
        })
        .collect()
}

fn trend_svg(set: &str, points: &[TrendPoint<'_>]) -> String {
    use std::fmt::Write as _;
    let esc = argent_evals::report::escape_html;
    let (w, h) = (560.0_f64, 170.0_f64);
    let (left, right, top, bottom) = (44.0, 14.0, 10.0, 26.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let n = points.len();
    let x = |i: usize| {
        if n <= 1 {
            left + pw / 2.0
        } else {
            left + pw * i as f64 / (n - 1) as f64
        }
    };
    let y = |rate: f64| top + (1.0 - rate) * ph;
    let mut s = format!(
        "<svg class=\"trend\" role=\"img\" aria-label=\"pass rate of eval set {}\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\">",
        esc(set)
    );
    for (rate, text) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
        let _ = write!(
            s,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#dde2e7\"/><text x=\"{}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6570\">{text}</text>",
            left + pw,
            left - 6.0,
            y(rate) + 4.0,
            yy = y(rate),
        );
    }
    let line: Vec<String> = points
        .iter()
        .enumerate()
        .filter(|(_, p)| p.active)
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.rate())))
        .collect();
    if line.len() > 1 {
        let _ = write!(
            s,
            "<polyline class=\"trend-line\" points=\"{}\" fill=\"none\" stroke=\"#2b59c3\" stroke-width=\"2\"/>",
            line.join(" ")
        );
    }
    for (i, p) in points.iter().enumerate() {
        let colour = if p.regressed { "#b3261e" } else { "#2b59c3" };
        let fill = if p.active { colour } else { "#ffffff" };
        let _ = write!(
            s,
            "<a href=\"/evals/{}\"><circle class=\"point\" data-run=\"{}\" data-rate=\"{:.4}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4.5\" fill=\"{fill}\" stroke=\"{colour}\" stroke-width=\"2\"><title>{} · {} · {}/{} passed ({}){}</title></circle></a>",
            seg(&p.run.id),
            esc(&p.run.id),
            p.rate(),
            x(i),
            y(p.rate()),
            esc(&p.run.id),
            esc(&p.run.label),
            p.passed,
            p.cases,
            pct(p.passed, p.cases),
            if p.regressed { " · regression" } else { "" },
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let day = |p: &TrendPoint<'_>| p.run.started_at.format("%Y-%m-%d %H:%M UTC").to_string();
        let _ = write!(
            s,
            "<text x=\"{left}\" y=\"{:.1}\" font-size=\"11\" fill=\"#5b6570\">{}</text>",
            h - 6.0,
            esc(&day(first))
        );
        if n > 1 {
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6570\">{}</text>",
                left + pw,
                h - 6.0,
                esc(&day(last))
            );
        }
    }
    s.push_str("</svg>");
    s
}

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub page: Option<i64>,
}

/// `GET /evals`: the runs (verdict, model, documents; checkboxes to compare two) and the
/// pass-rate trend per eval set.
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
    let finished = store.finished_eval_runs(TREND_RUNS).await?;
    page(
        &user,
        "evals",
        "Eval runs",
        json!({
            "runs": runs.iter().map(summary_view).collect::<Vec<_>>(),
            "total": total,
            "trend": trend_view(&finished),
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

/// The cases of a report, failing first, each linking to its page.
fn case_links(report: &Report, href: impl Fn(&CaseReport) -> String) -> Vec<Value> {
    let mut cases: Vec<&CaseReport> = report.cases.iter().collect();
    cases.sort_by_key(|c| (c.passed, c.id.clone()));
    cases
        .into_iter()
        .map(|c| {
            json!({
                "id": c.id,
                "title": c.title,
                "passed": c.passed,
                "href": href(c),
                "calls": c.attempts.first().map(|a| a.calls.join(", ")).unwrap_or_default(),
                "reasons": c.first_failures(),
            })
        })
        .collect()
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
    let traced = store.count_eval_run_cases(&id).await? > 0;
    let run_seg = seg(&id);
    page(
        &user,
        "eval",
        &format!("Eval run {id}"),
        json!({
            "run": summary_view(&rec.run),
            "cases": report.as_ref().map(|r| case_links(r, |c| {
                format!("/evals/{run_seg}/cases/{}", seg(&c.id))
            })),
            "traced": traced,
            "baseline_compare_href": rec.run.baseline_id.as_ref().map(|b| {
                format!("/evals/compare?a={}&b={run_seg}", seg(b))
            }),
            "report_html": report.as_ref().map(Report::to_html_fragment),
            "comparison_html": comparison.as_ref().map(Comparison::to_html_fragment),
            "regressed": comparison.as_ref().map(Comparison::regressed),
        }),
    )
}

/// Which two runs a compare request names: `a` (baseline) and `b` (candidate), or two
/// `run` values (the list's checkboxes), the older of which is the baseline.
async fn pick_pair(
    store: &Store,
    raw: Option<String>,
) -> AppResult<(EvalRunRecord, EvalRunRecord)> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw.as_deref().unwrap_or(""))
        .map_err(|e| AppError::BadRequest(format!("the query string: {e}")))?;
    let one = |key: &str| {
        pairs
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
            .next_back()
    };
    let ticked: Vec<String> = pairs
        .iter()
        .filter(|(k, v)| k == "run" && !v.is_empty())
        .map(|(_, v)| v.clone())
        .collect();
    match (one("a"), one("b"), ticked.len()) {
        (Some(a), Some(b), 0) => Ok((store.eval_run(&a).await?, store.eval_run(&b).await?)),
        (None, None, 2) => {
            let x = store.eval_run(&ticked[0]).await?;
            let y = store.eval_run(&ticked[1]).await?;
            if (y.run.started_at, &y.run.id) < (x.run.started_at, &x.run.id) {
                Ok((y, x))
            } else {
                Ok((x, y))
            }
        }
        (None, None, n) if n != 0 => Err(AppError::BadRequest(format!(
            "tick exactly two runs to compare; {n} {} ticked",
            if n == 1 { "was" } else { "were" }
        ))),
        _ => Err(AppError::BadRequest(
            "compare needs two runs: tick two in the list, or give ?a=BASELINE&b=CANDIDATE".into(),
        )),
    }
}

fn finished_report(r: &EvalRunRecord) -> AppResult<Report> {
    report_of(r)?.ok_or_else(|| {
        AppError::Conflict(format!(
            "eval run {} has no report: it is {}",
            r.run.id,
            r.run.status.as_str()
        ))
    })
}

/// `GET /evals/compare?a=&b=` or `?run=&run=`: any two finished runs, A as the baseline,
/// with every case's result in each and a link to the two side by side.
pub async fn compare_page(
    State(store): State<Store>,
    Page(user, _): Page<EvalsRead>,
    RawQuery(raw): RawQuery,
) -> AppResult<Html<String>> {
    let (ra, rb) = pick_pair(&store, raw).await?;
    let (rep_a, rep_b) = (finished_report(&ra)?, finished_report(&rb)?);
    let c = compare(&rep_a, &rep_b, &Gate::default());
    let (a, b) = (ra.run.id.as_str(), rb.run.id.as_str());
    let query = format!("a={}&b={}", seg(a), seg(b));
    let mut ids: Vec<(&str, &str)> = rep_b
        .cases
        .iter()
        .map(|c| (c.id.as_str(), c.title.as_str()))
        .collect();
    ids.extend(
        rep_a
            .cases
            .iter()
            .filter(|c| rep_b.case(&c.id).is_none())
            .map(|c| (c.id.as_str(), c.title.as_str())),
    );
    let result = |r: &Report, id: &str| r.case(id).map(|c| if c.passed { "pass" } else { "fail" });
    let mut cases: Vec<Value> = ids
        .into_iter()
        .map(|(id, title)| {
            let (ra, rb) = (result(&rep_a, id), result(&rep_b, id));
            json!({
                "id": id,
                "title": title,
                "a": ra.unwrap_or("absent"),
                "b": rb.unwrap_or("absent"),
                "a_class": if ra == Some("pass") { "allow" } else { "deny" },
                "b_class": if rb == Some("pass") { "allow" } else { "deny" },
                "changed": ra != rb,
                "href": format!("/evals/compare/{}?{query}", seg(id)),
            })
        })
        .collect();
    cases.sort_by_key(|v| {
        (
            !v["changed"].as_bool().unwrap_or(false),
            v["id"].to_string(),
        )
    });
    page(
        &user,
        "eval_compare",
        &format!("{a} → {b}"),
        json!({
            "a": summary_view(&ra.run),
            "b": summary_view(&rb.run),
            "cases": cases,
            "comparison_html": c.to_html_fragment(),
            "regressed": c.regressed(),
        }),
    )
}

// ---------------------------------------------------------------------------------------
// One case: its trace, alone or A beside B.

fn status_class(status: argent_evals::CallStatus) -> &'static str {
    match status {
        argent_evals::CallStatus::Executed => "allow",
        argent_evals::CallStatus::Queued => "needs_approval",
        argent_evals::CallStatus::Refused | argent_evals::CallStatus::Invalid => "deny",
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A `propose_plan` call's terms: its scalar fields, its installments and its note.
fn plan_view(c: &argent_evals::CallRecord) -> Value {
    let obj = c.arguments.as_object();
    let terms: Vec<Value> = obj
        .map(|o| {
            o.iter()
                .filter(|(k, v)| {
                    !matches!(k.as_str(), "installments" | "note")
                        && !v.is_object()
                        && !v.is_array()
                })
                .map(|(k, v)| json!({"k": k, "v": text_of(v)}))
                .collect()
        })
        .unwrap_or_default();
    let installments: Vec<Value> = obj
        .and_then(|o| o.get("installments"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|i| {
                    json!({
                        "due_date": i.get("due_date").map(text_of).unwrap_or_default(),
                        "amount": i.get("amount").map(text_of).unwrap_or_default(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "status": c.status.as_str(),
        "status_class": status_class(c.status),
        "rules": c.rules,
        "terms": terms,
        "installments": installments,
        "note": obj.and_then(|o| o.get("note")).map(text_of).filter(|s| !s.is_empty()),
    })
}

fn money_text(minor: i64, currency: &str) -> String {
    match currency.parse::<argent_core::money::Currency>() {
        Ok(currency) => argent_core::money::Money { minor, currency }.to_string(),
        Err(_) => format!("{minor} minor units of {currency}"),
    }
}

fn attempt_view(trace: &CaseTrace, a: &argent_evals::AttemptTrace) -> Value {
    let turns_n = trace.messages.len().max(a.replies.len()).max(
        a.calls
            .iter()
            .map(|c| c.message as usize + 1)
            .max()
            .unwrap_or(0),
    );
    let turns: Vec<Value> = (0..turns_n)
        .map(|i| {
            let index = u32::try_from(i).unwrap_or(u32::MAX);
            let calls: Vec<Value> = a
                .calls_for(index)
                .enumerate()
                .map(|(n, c)| {
                    json!({
                        "n": n + 1,
                        "tool": c.tool,
                        "status": c.status.as_str(),
                        "status_class": status_class(c.status),
                        "rules": c.rules,
                        "arguments": (!c.arguments.is_null())
                            .then(|| serde_json::to_string_pretty(&c.arguments).unwrap_or_default()),
                        "raw_arguments": c.raw_arguments,
                        "model_text": c.model_text,
                    })
                })
                .collect();
            json!({
                "number": i + 1,
                "subject": trace.messages.get(i).map(|m| m.subject.clone()).unwrap_or_default(),
                "calls": calls,
                "reply": a.replies.get(i).cloned().flatten().filter(|r| !r.is_empty()),
            })
        })
        .collect();
    let e = &a.end_state;
    json!({
        "attempt": a.attempt + 1,
        "multiple": trace.attempts.len() > 1,
        "passed": a.passed,
        "failures": a.failures,
        "violations": a.violations,
        "error": a.error,
        "tokens": a.tokens,
        "latency_ms": a.latency_ms,
        "turns": turns,
        "calls_summary": "",
        "emails": a.emails.iter().map(|m| json!({
            "to": m.to,
            "subject": m.subject,
            "body": m.body,
            "status": m.status.as_str(),
            "status_class": status_class(m.status),
        })).collect::<Vec<_>>(),
        "plans": a.calls.iter().filter(|c| c.tool == "propose_plan").map(plan_view).collect::<Vec<_>>(),
        "end_state": {
            "promises": e.promises.iter().map(|p| format!(
                "{} by {}", money_text(p.amount_minor, &p.currency), p.promised_date
            )).collect::<Vec<_>>(),
            "cases": e.cases.join(", "),
            "plans_executed": e.plans_executed,
            "plans_queued": e.plans_queued,
            "escalated": e.escalated,
            "emails_sent": e.emails_sent,
        },
    })
}

/// What one run has of one case.
enum CaseFound {
    /// Its stored trace.
    Traced(Box<CaseTrace>),
    /// Only the report's line for it (a run stored before traces were kept).
    ReportOnly(CaseReport),
}

impl CaseFound {
    fn title(&self) -> &str {
        match self {
            CaseFound::Traced(t) => &t.title,
            CaseFound::ReportOnly(c) => &c.title,
        }
    }
}

/// One column of a case page: which run, under what heading, and what it has of the case.
struct Side<'a> {
    key: &'static str,
    role: &'static str,
    rec: &'a EvalRunRecord,
    case: Option<&'a CaseFound>,
}

/// What one run has of one case: its stored trace, else (a run stored before traces were
/// kept) the report's line for it; `None` when the run has no such case.
async fn case_of(
    store: &Store,
    rec: &EvalRunRecord,
    case_id: &str,
) -> AppResult<Option<CaseFound>> {
    match store.eval_run_case(&rec.run.id, case_id).await {
        Ok(EvalRunCase { trace, .. }) => {
            let t: CaseTrace = serde_json::from_value(trace).map_err(|e| {
                AppError::internal(format!(
                    "stored trace of case {case_id} of eval run {}: {e}",
                    rec.run.id
                ))
            })?;
            Ok(Some(CaseFound::Traced(Box::new(t))))
        }
        Err(StoreError::NotFound(_)) => Ok(report_of(rec)?
            .and_then(|r| r.case(case_id).cloned())
            .map(CaseFound::ReportOnly)),
        Err(e) => Err(e.into()),
    }
}

fn side_view(side: &Side<'_>) -> Value {
    let (key, role) = (side.key, side.role);
    let run = summary_view(&side.rec.run);
    match side.case {
        Some(CaseFound::Traced(t)) => json!({
            "key": key, "role": role, "run": run, "present": true, "passed": t.passed,
            "note": null,
            "attempts": t.attempts.iter().map(|a| attempt_view(t, a)).collect::<Vec<_>>(),
        }),
        Some(CaseFound::ReportOnly(c)) => json!({
            "key": key, "role": role, "run": run, "present": true, "passed": c.passed,
            "note": "This run was stored before per-case traces were kept: only the report's line for the case is shown.",
            "attempts": c.attempts.iter().map(|a| json!({
                "attempt": a.attempt + 1,
                "multiple": c.attempts.len() > 1,
                "passed": a.passed,
                "failures": a.failures,
                "violations": a.violations,
                "error": a.error,
                "tokens": a.tokens,
                "latency_ms": a.latency_ms,
                "turns": [],
                "calls_summary": a.calls.join(", "),
                "emails": [],
                "plans": [],
                "end_state": null,
            })).collect::<Vec<_>>(),
        }),
        None => json!({
            "key": key, "role": role, "run": run, "present": false, "passed": false,
            "note": "This run has no such case.",
            "attempts": [],
        }),
    }
}

fn case_page_view(case_id: &str, sides: &[Side<'_>], compare_href: Option<String>) -> Value {
    // B's (the later column's) account of the case first.
    let trace = sides.iter().rev().find_map(|s| match s.case {
        Some(CaseFound::Traced(t)) => Some(t.as_ref()),
        _ => None,
    });
    let title = sides
        .iter()
        .rev()
        .find_map(|s| s.case.map(CaseFound::title))
        .unwrap_or_default();
    json!({
        "case_id": case_id,
        "title": title,
        "customer": trace.map(|t| format!("{} ({})", t.customer_name, t.customer_id)),
        "now": trace.map(|t| t.now.to_rfc3339()),
        "tags": trace.map(|t| t.tags.clone()).unwrap_or_default(),
        "messages": trace.map(|t| t.messages.iter().enumerate().map(|(i, m)| json!({
            "number": i + 1, "from": m.from, "subject": m.subject, "body": m.body,
        })).collect::<Vec<_>>()).unwrap_or_default(),
        "side_count": sides.len(),
        "sides": sides.iter().map(side_view).collect::<Vec<_>>(),
        "compare_href": compare_href,
    })
}

/// `GET /evals/{id}/cases/{case}`: one case of a run: what the customer wrote, every tool
/// call with its arguments, status, rules and what the model was told, the model's replies,
/// the drafted emails and plans, the account as the run left it, and the scoring.
pub async fn case_page(
    State(store): State<Store>,
    Page(user, _): Page<EvalsRead>,
    ApiPath((id, case_id)): ApiPath<(String, String)>,
) -> AppResult<Html<String>> {
    let rec = store.eval_run(&id).await?;
    let case = case_of(&store, &rec, &case_id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("case {case_id} of eval run {id} not found")))?;
    page(
        &user,
        "eval_case",
        &format!("Case {case_id} in {id}"),
        case_page_view(
            &case_id,
            &[Side {
                key: "run",
                role: "Run",
                rec: &rec,
                case: Some(&case),
            }],
            None,
        ),
    )
}

/// `GET /evals/compare/{case}?a=&b=`: one case of two runs, A (baseline) beside B.
pub async fn compare_case_page(
    State(store): State<Store>,
    Page(user, _): Page<EvalsRead>,
    ApiPath(case_id): ApiPath<String>,
    RawQuery(raw): RawQuery,
) -> AppResult<Html<String>> {
    let (ra, rb) = pick_pair(&store, raw).await?;
    let ca = case_of(&store, &ra, &case_id).await?;
    let cb = case_of(&store, &rb, &case_id).await?;
    if ca.is_none() && cb.is_none() {
        return Err(AppError::NotFound(format!(
            "case {case_id} is in neither eval run {} nor {}",
            ra.run.id, rb.run.id
        )));
    }
    let compare_href = format!("/evals/compare?a={}&b={}", seg(&ra.run.id), seg(&rb.run.id));
    page(
        &user,
        "eval_case",
        &format!("Case {case_id}: {} → {}", ra.run.id, rb.run.id),
        case_page_view(
            &case_id,
            &[
                Side {
                    key: "a",
                    role: "A (baseline)",
                    rec: &ra,
                    case: ca.as_ref(),
                },
                Side {
                    key: "b",
                    role: "B (candidate)",
                    rec: &rb,
                    case: cb.as_ref(),
                },
            ],
            Some(compare_href),
        ),
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

/// `GET /api/evals/{id}/cases/{case}`: one case of a run with its trace.
pub async fn api_case(
    State(store): State<Store>,
    _: Allowed<EvalsRead>,
    ApiPath((id, case_id)): ApiPath<(String, String)>,
) -> AppResult<Json<EvalRunCase>> {
    Ok(Json(store.eval_run_case(&id, &case_id).await?))
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
