//! The collector's pages: the approval queue, one item with everything a reviewer needs,
//! and approve / edit (with the re-checked decision shown before submitting) / reject.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use argent_agent::{Agent, AgentError};
use argent_core::action::ProposePlanArgs;
use argent_core::ledger::{AgingBucket, aging_report};
use argent_core::{Currency, Decision, Frequency, Money, PlanTerms};
use argent_store::{ApprovalItem, ApprovalStatus, QueueFilter};

use super::{Page, Posted, SessionUser, age, encode_query, money, page};
use crate::api::reviewer_for;
use crate::auth::{QueueDecide, QueueRead};
use crate::error::{AppError, AppResult};
use crate::extract::{ApiPath, ApiQuery};

/// Items per queue page.
pub const QUEUE_PAGE: i64 = 50;

#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    pub status: Option<String>,
    pub page: Option<i64>,
    /// What just happened, shown once: `approved`, `edited` or `rejected`.
    pub done: Option<String>,
    pub id: Option<String>,
    #[serde(flatten)]
    pub filter: FilterQuery,
    /// After a bulk approval: how many were approved, and the items left pending because
    /// their decision changed or the approval was refused (comma-separated ids).
    pub bulk_ok: Option<usize>,
    pub bulk_changed: Option<String>,
    pub bulk_refused: Option<String>,
}

/// The workbench's filters, kept in the URL (`/queue?mine=1&tool=propose_plan&…`).
#[derive(Clone, Debug, Default, Deserialize)]
pub struct FilterQuery {
    /// `1`: only items the viewer's role may approve.
    pub mine: Option<String>,
    pub tool: Option<String>,
    /// A rule id that fired on the item.
    pub rule: Option<String>,
    pub segment: Option<String>,
    pub jurisdiction: Option<String>,
    pub currency: Option<String>,
    /// Amount range, in the currency's units (`1500.00`); two decimals without a currency.
    pub min: Option<String>,
    pub max: Option<String>,
    /// Queued at least this long ago: `<n>h` or `<n>d`.
    pub age: Option<String>,
    /// Customer name or id, invoice number or sender's email.
    pub q: Option<String>,
}

const TOOLS: &[&str] = &[
    "send_email",
    "propose_plan",
    "log_promise",
    "open_case",
    "escalate",
    "request_call",
];

impl FilterQuery {
    /// The filters that are set, as query pairs in a fixed order (for links).
    fn pairs(&self) -> Vec<(&'static str, String)> {
        [
            ("mine", &self.mine),
            ("tool", &self.tool),
            ("rule", &self.rule),
            ("segment", &self.segment),
            ("jurisdiction", &self.jurisdiction),
            ("currency", &self.currency),
            ("min", &self.min),
            ("max", &self.max),
            ("age", &self.age),
            ("q", &self.q),
        ]
        .into_iter()
        .filter_map(|(k, v)| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(|v| (k, v.to_string()))
        })
        .collect()
    }

    /// `a=1&b=2` of the filters that are set (empty when none).
    pub(crate) fn query_string(&self) -> String {
        serde_urlencoded::to_string(self.pairs()).unwrap_or_default()
    }

    /// Parses a query string made by [`query_string`](Self::query_string) (the
    /// `back` field of the item page's forms).
    fn from_query_string(qs: &str) -> AppResult<FilterQuery> {
        serde_urlencoded::from_str(qs)
            .map_err(|e| AppError::BadRequest(format!("back: not a queue filter ({e})")))
    }

    /// The store filter, for `status`, as `user` sees it. A value that cannot be read is
    /// an error naming the parameter.
    fn to_filter(
        &self,
        status: Option<ApprovalStatus>,
        user: &SessionUser,
        now: chrono::DateTime<chrono::Utc>,
    ) -> AppResult<QueueFilter> {
        let get = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let currency = match get(&self.currency) {
            Some(c) => Some(c.to_ascii_uppercase().parse::<Currency>().map_err(|_| {
                AppError::BadRequest(format!("currency: '{c}' is not a currency code"))
            })?),
            None => None,
        };
        let amount = |name: &str, v: &Option<String>| -> AppResult<Option<i64>> {
            match get(v) {
                None => Ok(None),
                Some(a) => Money::parse(&a.replace(',', ""), currency.unwrap_or(Currency::USD))
                    .map(|m| Some(m.minor))
                    .map_err(|e| {
                        AppError::BadRequest(format!("{name}: '{a}' is not an amount ({e})"))
                    }),
            }
        };
        let queued_before = match get(&self.age) {
            None => None,
            Some(a) => {
                let bad = || {
                    AppError::BadRequest(format!(
                        "age: '{a}' is not a number of hours or days such as 4h or 3d"
                    ))
                };
                let (n, unit) = a.split_at(a.len().saturating_sub(1));
                let n: i64 = n.parse().map_err(|_| bad())?;
                let d = match unit {
                    "h" => chrono::Duration::try_hours(n),
                    "d" => chrono::Duration::try_days(n),
                    _ => None,
                }
                .filter(|_| n >= 0)
                .ok_or_else(bad)?;
                Some(now.checked_sub_signed(d).ok_or_else(bad)?)
            }
        };
        let tool = get(&self.tool);
        if let Some(t) = &tool
            && !TOOLS.contains(&t.as_str())
        {
            return Err(AppError::BadRequest(format!(
                "tool: '{t}' is not one of: {}",
                TOOLS.join(", ")
            )));
        }
        let mine = match get(&self.mine).as_deref() {
            None | Some("0") => false,
            Some("1") => true,
            Some(other) => {
                return Err(AppError::BadRequest(format!(
                    "mine: '{other}' is not 1 or 0"
                )));
            }
        };
        Ok(QueueFilter {
            status,
            approvable_by: mine.then(|| {
                reviewer_for(&user.name, user.role)
                    .map(|r| r.role.as_str().to_string())
                    .unwrap_or_else(|_| user.role.as_str().to_string())
            }),
            tool,
            rule: get(&self.rule),
            segment: get(&self.segment),
            jurisdiction: get(&self.jurisdiction),
            currency: currency.map(|c| c.as_str().to_string()),
            min_amount: amount("min", &self.min)?,
            max_amount: amount("max", &self.max)?,
            queued_before,
            search: get(&self.q),
        })
    }
}

fn parse_status(s: Option<&str>) -> AppResult<Option<ApprovalStatus>> {
    match s {
        None | Some("") | Some("pending") => Ok(Some(ApprovalStatus::Pending)),
        Some("all") => Ok(None),
        Some(s) => s.parse::<ApprovalStatus>().map(Some).map_err(|_| {
            AppError::BadRequest(format!(
                "status '{s}' is not one of: pending, approved, rejected, all"
            ))
        }),
    }
}

/// One row of the queue.
fn row(item: &ApprovalItem, now: chrono::DateTime<chrono::Utc>) -> Value {
    let decision: Decision = serde_json::from_value(item.decision.clone()).unwrap_or_default();
    let ctx = &item.context;
    json!({
        "id": item.id,
        "customer_id": item.customer_id,
        "account_href": format!("/accounts/{}", super::encode_query(&item.customer_id)),
        "customer_name": ctx["customer"]["name"].as_str().unwrap_or(&item.customer_id),
        "segment": ctx["segment"].as_str().unwrap_or("?"),
        "tool": item.tool,
        "summary": summary(&item.tool, &item.action),
        "amount": money(item.amount_minor, &item.currency),
        "balance": ctx["balance"].as_str().unwrap_or(""),
        "priority": item.priority,
        "age": age(item.created_at, now),
        "created_at": item.created_at.to_rfc3339(),
        "status": item.status.as_str(),
        "outcome": decision.outcome.as_str(),
        "rules": decision.rules.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        "approvers": item.required_role.replace(',', ", "),
        "decided_by": item.decided_by,
        "rule_message": decision.decisive_rules().next().map(|r| r.message.clone()),
        "snippet": snippet(&ctx["trigger"]),
        "plan": plan_terms(&item.tool, &item.action),
    })
}

/// One line of what the customer wrote (the inbound message that started the run), at
/// most 140 characters.
fn snippet(trigger: &Value) -> Option<String> {
    let body = trigger["body"].as_str()?;
    let line = body
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('>'))?;
    let mut out: String = line.chars().take(140).collect();
    if line.chars().count() > 140 {
        out.push('…');
    }
    Some(out)
}

/// A plan's terms in one line: down payment, instalment amount × count, currency.
fn plan_terms(tool: &str, args: &Value) -> Option<String> {
    if tool != "propose_plan" {
        return None;
    }
    let cur = args["currency"].as_str().unwrap_or("");
    let inst = args["installments"].as_array()?;
    let amounts: Vec<&str> = inst.iter().filter_map(|i| i["amount"].as_str()).collect();
    let each = match amounts.first() {
        Some(first) if amounts.iter().all(|a| a == first) => (*first).to_string(),
        Some(first) => format!("{first} (varies)"),
        None => "?".to_string(),
    };
    Some(format!(
        "down {} {cur} · {} × {each} {cur}",
        args["down_payment"].as_str().unwrap_or("0"),
        inst.len()
    ))
}

/// A line saying what the action does.
fn summary(tool: &str, args: &Value) -> String {
    match tool {
        "send_email" => format!(
            "Email: {}",
            args["subject"].as_str().unwrap_or("(no subject)")
        ),
        "propose_plan" => {
            let n = args["installments"].as_array().map_or(0, Vec::len);
            let discount = args["discount"].as_str().unwrap_or("0");
            format!("Plan: {n} instalment(s), discount {discount}")
        }
        "log_promise" => format!(
            "Promise: {} by {}",
            args["amount"].as_str().unwrap_or("?"),
            args["promised_date"].as_str().unwrap_or("?")
        ),
        "open_case" => format!("Case: {}", args["kind"].as_str().unwrap_or("?")),
        "escalate" => format!("Escalate: {}", args["reason"].as_str().unwrap_or("?")),
        "request_call" => format!("Call request: {}", args["reason"].as_str().unwrap_or("?")),
        other => other.to_string(),
    }
}

/// `GET /queue?status=&page=&mine=&tool=&rule=&segment=&jurisdiction=&currency=&min=&max=&age=&q=`:
/// highest priority first (risk, then age, then amount), filtered as the URL says.
pub async fn list(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<QueueRead>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> AppResult<Html<String>> {
    let status = parse_status(q.status.as_deref())?;
    let page_no = q.page.unwrap_or(1);
    if page_no < 1 {
        return Err(AppError::BadRequest("page must be 1 or more".into()));
    }
    let offset = (page_no - 1).saturating_mul(QUEUE_PAGE);
    let store = &agent.store;
    let now = agent.now();
    let filter = q.filter.to_filter(status, &user, now)?;
    let items = store.queue_page(&filter, QUEUE_PAGE, offset).await?;
    let total = store.queue_count(&filter).await?;
    let pages = ((total + QUEUE_PAGE - 1) / QUEUE_PAGE).max(1);
    let status_str = status.map_or("all", |s| s.as_str());
    let back = q.filter.query_string();
    let with_filter = |base: String| {
        if back.is_empty() {
            base
        } else {
            format!("{base}&{back}")
        }
    };
    let link = |p: i64| with_filter(format!("/queue?status={status_str}&page={p}"));
    let mut flash = match (q.done.as_deref(), q.id.as_deref()) {
        (Some(done @ ("approved" | "edited" | "rejected")), Some(id)) => {
            Some(format!("{id} {done}."))
        }
        _ => None,
    };
    if let Some(n) = q.bulk_ok {
        let mut m = format!("{n} approved.");
        if let Some(c) = q.bulk_changed.as_deref().filter(|c| !c.is_empty()) {
            m.push_str(&format!(
                " Left pending because the decision changed since it was queued: {c}."
            ));
        }
        if let Some(r) = q.bulk_refused.as_deref().filter(|r| !r.is_empty()) {
            m.push_str(&format!(" Refused on approval (left pending): {r}."));
        }
        flash = Some(m);
    }
    let statuses: Vec<Value> = ["pending", "approved", "rejected", "all"]
        .iter()
        .map(|s| json!({"name": s, "current": *s == status_str, "href": with_filter(format!("/queue?status={s}"))}))
        .collect();
    let reviewer = reviewer_for(&user.name, user.role).ok();
    let can_decide = crate::perm::QUEUE_DECIDE.contains(&user.role);
    let rows: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut r = row(i, now);
            let decision: Decision = serde_json::from_value(i.decision.clone()).unwrap_or_default();
            r["bulk"] = json!(
                can_decide
                    && i.status == ApprovalStatus::Pending
                    && i.bundle_of.is_none()
                    && reviewer
                        .as_ref()
                        .is_some_and(|w| decision.may_approve(w.role))
            );
            r["href"] = json!(if back.is_empty() {
                format!("/queue/{}", encode_query(&i.id))
            } else {
                format!("/queue/{}?{back}", encode_query(&i.id))
            });
            r
        })
        .collect();
    let f = &q.filter;
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    page(
        &user,
        "queue",
        "Approval queue",
        json!({
            "items": rows,
            "total": total,
            "status": status_str,
            "statuses": statuses,
            "page": page_no,
            "pages": pages,
            "prev": (page_no > 1).then(|| link(page_no - 1)),
            "next": (page_no < pages).then(|| link(page_no + 1)),
            "flash": flash,
            "can_decide": can_decide,
            "back": back,
            "filter": {
                "mine": f.mine.as_deref() == Some("1"),
                "tools": options(TOOLS, f.tool.as_deref()),
                "segments": options(&["low", "medium", "high", "in_review"], f.segment.as_deref()),
                "jurisdictions": options(&["us-consumer", "uk-consumer", "b2b"], f.jurisdiction.as_deref()),
                "rule": opt(&f.rule),
                "currency": opt(&f.currency),
                "min": opt(&f.min),
                "max": opt(&f.max),
                "age": opt(&f.age),
                "q": opt(&f.q),
                "status": status_str,
            },
        }),
    )
}

/// A select's options, the current one selected.
fn options(names: &[&str], current: Option<&str>) -> Vec<Value> {
    names
        .iter()
        .map(|n| json!({"name": n, "selected": current == Some(*n)}))
        .collect()
}

#[derive(Debug, Default, Deserialize)]
struct BulkForm {
    ids: Vec<String>,
    back: String,
    note: String,
}

/// Most items one bulk approval takes.
pub const BULK_MAX: usize = 200;

/// `POST /queue/bulk-approve` with `ids` (repeated), `back` (the list's filters) and an
/// optional note: approves each item the reviewer may approve. Each one is judged again
/// first; an item whose decision changed since it was queued (another outcome or other
/// rules) is left pending and named, as is one whose approval is refused; each approval
/// is its own audited decision, exactly as from the item page.
pub async fn bulk_approve(
    State(agent): State<Arc<Agent>>,
    Posted(user, form, _): Posted<QueueDecide, Vec<(String, String)>>,
) -> AppResult<Response> {
    let who = reviewer_for(&user.name, user.role)?;
    let mut f = BulkForm::default();
    for (k, v) in form {
        match k.as_str() {
            "ids" => f.ids.push(v),
            "back" => f.back = v,
            "note" => f.note = v,
            _ => {}
        }
    }
    if f.ids.is_empty() {
        return Err(AppError::Unprocessable(
            "ids: tick at least one item to approve".into(),
        ));
    }
    if f.ids.len() > BULK_MAX {
        return Err(AppError::Unprocessable(format!(
            "ids: at most {BULK_MAX} items at once ({} ticked)",
            f.ids.len()
        )));
    }
    let back = FilterQuery::from_query_string(&f.back)?;
    let note = Some(f.note.trim()).filter(|n| !n.is_empty());
    let (mut ok, mut changed, mut refused) = (0usize, Vec::new(), Vec::new());
    for id in &f.ids {
        match agent.rejudge(id).await {
            Ok((item, now_d)) => {
                let queued: Decision =
                    serde_json::from_value(item.decision.clone()).unwrap_or_default();
                if !same_decision(&queued, &now_d) {
                    changed.push(id.clone());
                    continue;
                }
            }
            Err(_) => {
                refused.push(id.clone());
                continue;
            }
        }
        match agent.approve(id, &who, note).await {
            Ok(_) => ok += 1,
            Err(_) => refused.push(id.clone()),
        }
    }
    let mut url = format!(
        "/queue?bulk_ok={ok}&bulk_changed={}&bulk_refused={}",
        encode_query(&changed.join(",")),
        encode_query(&refused.join(","))
    );
    let qs = back.query_string();
    if !qs.is_empty() {
        url.push('&');
        url.push_str(&qs);
    }
    Ok(Redirect::to(&url).into_response())
}

/// Whether a decision made now is the one the item was queued with: the same outcome and
/// the same decisive rules.
fn same_decision(queued: &Decision, now: &Decision) -> bool {
    let ids = |d: &Decision| {
        let mut v: Vec<String> = d.decisive_rules().map(|r| r.id.clone()).collect();
        v.sort();
        v
    };
    queued.outcome == now.outcome && ids(queued) == ids(now)
}

/// The editable form of an action's arguments: one field per top-level key, typed by the
/// value the agent proposed (text, number, true/false, or JSON for lists and objects).
fn fields(args: &Value) -> Vec<Value> {
    let Some(obj) = args.as_object() else {
        return Vec::new();
    };
    obj.iter()
        .map(|(k, v)| {
            let (kind, text) = match v {
                Value::String(s) => ("text", s.clone()),
                Value::Number(n) => ("number", n.to_string()),
                Value::Bool(b) => ("bool", b.to_string()),
                other => (
                    "json",
                    serde_json::to_string_pretty(other).unwrap_or_default(),
                ),
            };
            let long = kind == "json" || text.len() > 60 || text.contains('\n');
            json!({
                "key": k,
                "name": format!("{}.{k}", &kind[..1]),
                "kind": kind,
                "value": text,
                "long": long,
                "readonly": k == "customer_id",
                "rows": text.lines().count().clamp(3, 24),
            })
        })
        .collect()
}

/// Rebuilds arguments from the edit form's fields (see [`fields`]). Unknown prefixes and
/// unparsable numbers or JSON are errors naming the field.
fn args_from_form(form: &[(String, String)]) -> AppResult<Value> {
    let mut out = Map::new();
    for (name, raw) in form {
        let Some((kind, key)) = name.split_once('.') else {
            continue; // _csrf, note
        };
        let value = match kind {
            "t" => Value::String(raw.replace("\r\n", "\n")),
            "n" => {
                let t = raw.trim();
                if let Ok(i) = t.parse::<i64>() {
                    Value::from(i)
                } else {
                    t.parse::<f64>()
                        .ok()
                        .and_then(serde_json::Number::from_f64)
                        .map(Value::Number)
                        .ok_or_else(|| {
                            AppError::Unprocessable(format!("field '{key}': '{t}' is not a number"))
                        })?
                }
            }
            "b" => match raw.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                t => {
                    return Err(AppError::Unprocessable(format!(
                        "field '{key}': '{t}' is not true or false"
                    )));
                }
            },
            "j" => serde_json::from_str(raw).map_err(|e| {
                AppError::Unprocessable(format!("field '{key}' is not valid JSON: {e}"))
            })?,
            _ => {
                return Err(AppError::BadRequest(format!(
                    "form field '{name}' is not one this page sends"
                )));
            }
        };
        out.insert(key.to_string(), value);
    }
    Ok(Value::Object(out))
}

fn rules_view(decision: &Decision) -> Vec<Value> {
    decision
        .rules
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "outcome": r.outcome.as_str(),
                "message": r.message,
                "citation": r.citation,
                "approvers": r.approvers.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", "),
                "href": format!("/rules/{}", encode_query(&r.id)),
            })
        })
        .collect()
}

/// `GET /queue/{id}`: the item, the account's aging, the thread, the draft, the decision.
pub async fn show(
    State(agent): State<Arc<Agent>>,
    Page(user, _): Page<QueueRead>,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<FilterQuery>,
) -> AppResult<Html<String>> {
    let item = agent.store.approval(&id).await?;
    item_page_with(
        &agent,
        &user,
        &item,
        None,
        fields(&item.action),
        None,
        &q.query_string(),
    )
    .await
}

/// The item page again, with an error and what the reviewer typed: the generic fields,
/// or (`plan_typed`) the plan editor's.
async fn item_page(
    agent: &Agent,
    user: &SessionUser,
    item: &ApprovalItem,
    error: Option<String>,
    edit_fields: Vec<Value>,
    plan_typed: Option<&[(String, String)]>,
) -> AppResult<Html<String>> {
    item_page_with(agent, user, item, error, edit_fields, plan_typed, "").await
}

/// The item page, with `back`: the queue filters the reviewer came from (carried by the
/// "& next" buttons and the link back to the list).
#[allow(clippy::too_many_arguments)]
async fn item_page_with(
    agent: &Agent,
    user: &SessionUser,
    item: &ApprovalItem,
    error: Option<String>,
    edit_fields: Vec<Value>,
    plan_typed: Option<&[(String, String)]>,
    back: &str,
) -> AppResult<Html<String>> {
    let store = &agent.store;
    let now = agent.now();
    let invoices = store.invoices(Some(&item.customer_id)).await?;
    let payments = store.payments(Some(&item.customer_id)).await?;
    let aging = aging_report(&invoices, &payments, now.date_naive(), 90)?;
    let aging_rows: Vec<Value> = aging
        .rows
        .iter()
        .map(|r| {
            let cur = r.currency.as_str();
            json!({
                "currency": cur,
                "buckets": r.buckets.iter().map(|b| money(*b, cur)).collect::<Vec<_>>(),
                "total": money(r.total, cur),
                "oldest": r.oldest_days_past_due,
            })
        })
        .collect();
    let decision: Decision = serde_json::from_value(item.decision.clone()).unwrap_or_default();
    let trigger = &item.context["trigger"];
    let (thread, zone) = thread_view(store, item).await?;
    // The drafts held with this item, and the item this one is held with (if it waits).
    let held: Vec<Value> = store
        .bundled_with(&item.id)
        .await?
        .iter()
        .map(|h| json!({"id": h.id, "status": h.status.as_str(), "draft": draft_view(&h.tool, &h.action)}))
        .collect();
    let held_by_pending = match &item.bundle_of {
        Some(parent) => store.approval(parent).await?.status == ApprovalStatus::Pending,
        None => false,
    };
    // Judged again when a new policy version became active (issue #15).
    let rejudged: Vec<Value> = store
        .rejudgements(&item.id)
        .await?
        .iter()
        .map(|r| {
            let rules = r
                .rules
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x["id"].as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            json!({
                "policy": r.policy,
                "version": r.policy_version,
                "was": r.was,
                "now": r.now,
                "rules": rules,
                "closed": r.closed,
                "at": r.judged_at.to_rfc3339(),
                "actor": r.actor,
            })
        })
        .collect();
    let pending = item.status == ApprovalStatus::Pending;
    let reviewer = reviewer_for(&user.name, user.role).ok();
    let may_approve = pending
        && !held_by_pending
        && reviewer.as_ref().is_some_and(|r| {
            decision.may_approve(r.role) && crate::perm::QUEUE_DECIDE.contains(&user.role)
        });
    let can_decide = pending && !held_by_pending && crate::perm::QUEUE_DECIDE.contains(&user.role);
    let (prev_href, next_href) = neighbours(agent, user, item, back).await?;
    let title = format!(
        "{} — {}",
        item.id,
        item.context["customer"]["name"]
            .as_str()
            .unwrap_or(&item.customer_id)
    );
    page(
        user,
        "item",
        &title,
        json!({
            "item": row(item, now),
            "context": {
                "tier": item.context["customer"]["tier"],
                "jurisdiction": item.context["customer"]["jurisdiction"],
                "risk_reasons": item.context["risk_reasons"],
            },
            "buckets": AgingBucket::ALL.iter().map(|b| b.label()).collect::<Vec<_>>(),
            "aging": aging_rows,
            "thread": thread,
            "thread_zone": zone,
            "trigger_step": trigger["step"].as_str(),
            "draft": draft_view(&item.tool, &item.action),
            "final_action": item.final_action.as_ref().map(|a| serde_json::to_string_pretty(a).unwrap_or_default()),
            "note": item.note,
            "decided_at": item.decided_at.map(|t| t.to_rfc3339()),
            "decided_role": item.decided_role,
            "decision": {"outcome": decision.outcome.as_str(), "rules": rules_view(&decision)},
            "pending": pending,
            "can_decide": can_decide,
            "may_approve": may_approve,
            "fields": edit_fields,
            "plan_editor": plan_editor(item, plan_typed),
            "error": error,
            "held": held,
            "bundle_of": item.bundle_of,
            "held_by_pending": held_by_pending,
            "rejudged": rejudged,
            "back": back,
            "prev_href": prev_href,
            "next_href": next_href,
            "list_href": if back.is_empty() { "/queue".to_string() } else { format!("/queue?{back}") },
        }),
    )
}

/// The draft as a reviewer reads it: an email as an email, a plan as a schedule, anything
/// else as its arguments.
fn draft_view(tool: &str, args: &Value) -> Value {
    let pretty = serde_json::to_string_pretty(args).unwrap_or_default();
    let email = (tool == "send_email").then(|| {
        json!({
            "to": args["to"].as_str().unwrap_or("(the customer's address on file)"),
            "subject": args["subject"],
            "body": args["body"],
        })
    });
    let plan = (tool == "propose_plan").then(|| {
        let installments: Vec<Value> = args["installments"]
            .as_array()
            .map(|a| {
                a.iter()
                    .enumerate()
                    .map(|(i, inst)| {
                        json!({"n": i + 1, "due_date": inst["due_date"], "amount": inst["amount"]})
                    })
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "currency": args["currency"],
            "balance": args["balance"],
            "discount": args["discount"],
            "down_payment": args["down_payment"],
            "start_date": args["start_date"],
            "installments": installments,
        })
    });
    json!({"email": email, "plan": plan, "args": pretty})
}

#[derive(Debug, Default, Deserialize)]
pub struct NoteForm {
    #[serde(default)]
    pub note: String,
    /// `1`: go on to the next pending item under `back`'s filters.
    #[serde(default)]
    pub next: String,
    /// The queue filters the reviewer came from (a query string).
    #[serde(default)]
    pub back: String,
}

fn done(id: &str, what: &str) -> Response {
    Redirect::to(&format!("/queue?done={what}&id={}", encode_query(id))).into_response()
}

/// Where to go once `id` is decided: with `next`, the next pending item under the filters
/// the reviewer came from (or the list when none is left); else the list.
async fn after_decision(
    agent: &Agent,
    user: &SessionUser,
    id: &str,
    what: &str,
    form: &NoteForm,
) -> AppResult<Response> {
    if form.next != "1" {
        return Ok(done(id, what));
    }
    let back = FilterQuery::from_query_string(&form.back)?;
    let qs = back.query_string();
    let filter = back.to_filter(Some(ApprovalStatus::Pending), user, agent.now())?;
    let suffix = if qs.is_empty() {
        String::new()
    } else {
        format!("?{qs}")
    };
    Ok(match agent.store.queue_next(&filter, id).await? {
        Some(next) => Redirect::to(&format!("/queue/{}{suffix}", encode_query(&next.id))),
        None => Redirect::to(&format!(
            "/queue?done={what}&id={}{}",
            encode_query(id),
            if qs.is_empty() {
                String::new()
            } else {
                format!("&{qs}")
            }
        )),
    }
    .into_response())
}

/// `POST /queue/{id}/approve`.
pub async fn approve(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<QueueDecide, NoteForm>,
) -> AppResult<Response> {
    let who = reviewer_for(&user.name, user.role)?;
    let note = Some(form.note.trim()).filter(|n| !n.is_empty());
    match agent.approve(&id, &who, note).await {
        Ok(_) => after_decision(&agent, &user, &id, "approved", &form).await,
        Err(e) => Err(refusal(&agent, &id, None, e).await),
    }
}

/// `POST /queue/{id}/reject` with a note saying why.
pub async fn reject(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<QueueDecide, NoteForm>,
) -> AppResult<Response> {
    let who = reviewer_for(&user.name, user.role)?;
    if form.note.trim().is_empty() {
        let item = agent.store.approval(&id).await?;
        let html = item_page(
            &agent,
            &user,
            &item,
            Some("A rejection needs a note saying why.".into()),
            fields(&item.action),
            None,
        )
        .await?;
        return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, html).into_response());
    }
    agent.reject(&id, &who, form.note.trim()).await?;
    after_decision(&agent, &user, &id, "rejected", &form).await
}

/// `POST /queue/{id}/preview` with the edit form: the decision the edited arguments would
/// get, and a form to submit them. Acts on nothing.
pub async fn preview(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<QueueDecide, Vec<(String, String)>>,
) -> AppResult<Response> {
    let who = reviewer_for(&user.name, user.role)?;
    let item = agent.store.approval(&id).await?;
    let submitted: Vec<Value> = {
        let original = fields(&item.action);
        original
            .into_iter()
            .map(|mut f| {
                if let Some((_, v)) = form
                    .iter()
                    .find(|(n, _)| Some(n.as_str()) == f["name"].as_str())
                {
                    f["value"] = Value::String(v.clone());
                }
                f
            })
            .collect()
    };
    let plan_edit = item.tool == "propose_plan" && form.iter().any(|(k, _)| k.starts_with("plan."));
    let args = if plan_edit {
        match plan_args_from_form(&item, &form) {
            Ok(a) => a,
            Err(why) => {
                let html = item_page(
                    &agent,
                    &user,
                    &item,
                    Some(format!("The plan cannot be checked: {why}")),
                    submitted,
                    Some(form.as_slice()),
                )
                .await?;
                return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, html).into_response());
            }
        }
    } else {
        match args_from_form(&form) {
            Ok(a) => a,
            Err(AppError::Unprocessable(why)) => {
                let html = item_page(&agent, &user, &item, Some(why), submitted, None).await?;
                return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, html).into_response());
            }
            Err(e) => return Err(e),
        }
    };
    let decision = match agent.preview_edit(&id, args.clone()).await {
        Ok(d) => d,
        Err(AgentError::EditInvalid(why)) => {
            let html = item_page(
                &agent,
                &user,
                &item,
                Some(format!("The edited arguments are invalid: {why}")),
                submitted,
                plan_edit.then_some(form.as_slice()),
            )
            .await?;
            return Ok((axum::http::StatusCode::UNPROCESSABLE_ENTITY, html).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    let may_submit = decision.is_allowed() || decision.may_approve(who.role);
    let note = form
        .iter()
        .find(|(k, _)| k == "note")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let html = page(
        &user,
        "preview",
        &format!("Edit {id}: check before submitting"),
        json!({
            "item": row(&item, agent.now()),
            "draft": draft_view(&item.tool, &args),
            "args_json": args.to_string(),
            "decision": {"outcome": decision.outcome.as_str(), "rules": rules_view(&decision)},
            "approvers": decision.approvers().iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
            "may_submit": may_submit,
            "denied": decision.outcome == argent_core::Outcome::Deny,
            "note": note,
        }),
    )?;
    Ok(html.into_response())
}

#[derive(Debug, Deserialize)]
pub struct EditForm {
    /// The arguments exactly as previewed (JSON).
    pub args: String,
    #[serde(default)]
    pub note: String,
}

/// `POST /queue/{id}/edit`: submits previewed arguments; the agent judges them once more.
pub async fn edit(
    State(agent): State<Arc<Agent>>,
    ApiPath(id): ApiPath<String>,
    Posted(user, form, _): Posted<QueueDecide, EditForm>,
) -> AppResult<Response> {
    let who = reviewer_for(&user.name, user.role)?;
    let args: Value = serde_json::from_str(&form.args)
        .map_err(|e| AppError::BadRequest(format!("the edited arguments are not JSON: {e}")))?;
    let note = Some(form.note.trim()).filter(|n| !n.is_empty());
    match agent.edit(&id, &who, args.clone(), note).await {
        Ok(_) => Ok(done(&id, "edited")),
        Err(e) => Err(refusal(&agent, &id, Some(args), e).await),
    }
}

/// A refused decision as an error page, with the rules when policy denied it.
async fn refusal(agent: &Agent, id: &str, args: Option<Value>, e: AgentError) -> AppError {
    let args = match args {
        Some(a) => a,
        None => match agent.store.approval(id).await {
            Ok(item) => item.action,
            Err(_) => Value::Null,
        },
    };
    crate::api::review_error(agent, id, args, e).await
}

// ---------------------------------------------------------------------------------------
// The thread (the item page's "Thread" section)

/// The one format the thread's times are shown in: the customer's local date and time
/// with the zone's abbreviation (`2026-11-20 12:00 CST`); the page names the zone.
fn local_time(at: chrono::DateTime<chrono::Utc>, tz: chrono_tz::Tz) -> String {
    at.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// Every message of the item's customer, oldest first (`Store::customer_thread`), with
/// times in the customer's zone; the message that started this item's run, and those
/// received or written after the item was queued, are marked. A received message that
/// started no run (an out-of-office, a bounce) is read from its raw text. Returns the
/// messages and the zone's name.
async fn thread_view(
    store: &argent_store::Store,
    item: &ApprovalItem,
) -> AppResult<(Vec<Value>, String)> {
    let tz = store.customer(&item.customer_id).await?.time_zone;
    let mut out = Vec::new();
    for m in store.customer_thread(&item.customer_id).await? {
        let inbound = m.direction == argent_store::Direction::Inbound;
        let body = match m.body {
            Some(b) => b,
            None => match store.inbound_raw(&m.source_id).await {
                Ok(raw) => match argent_mail::inbound::parse(&raw) {
                    Ok(p) => p.new_text,
                    Err(e) => format!("(the message could not be read: {e})"),
                },
                Err(e) => return Err(e.into()),
            },
        };
        out.push(json!({
            "direction": if inbound { "from the customer" } else { "to the customer" },
            "class": if inbound { "inbound" } else { "outbound" },
            "who": m.address,
            "subject": m.subject,
            "body": body,
            "at": local_time(m.at, tz),
            "at_utc": m.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "status": m.status,
            "this_run": inbound && m.run_id.as_deref() == Some(item.run_id.as_str()),
            "after_queued": m.at > item.created_at,
        }));
    }
    Ok((out, tz.name().to_string()))
}

// ---------------------------------------------------------------------------------------
// The plan editor (the item page's edit section for `propose_plan`)

/// The plan editor's form fields, by name.
const PLAN_FIELDS: [&str; 5] = [
    "plan.discount",
    "plan.down_payment",
    "plan.count",
    "plan.frequency",
    "plan.start_date",
];

/// The proposed plan's arguments and terms, when the item is a plan that reads as one.
fn proposed_plan(item: &ApprovalItem) -> Option<(ProposePlanArgs, PlanTerms, Option<Frequency>)> {
    if item.tool != "propose_plan" {
        return None;
    }
    let args: ProposePlanArgs = serde_json::from_value(item.action.clone()).ok()?;
    let plan = args.to_plan(&item.id).ok()?;
    let (terms, frequency) = PlanTerms::of_plan(&plan);
    Some((args, terms, frequency))
}

/// What the plan editor shows: the customer, the currency and the balance (not
/// editable); the discount, the down payment, the number of instalments, their frequency
/// and the start date, as proposed or (`typed`) as the reviewer typed them. `None` for an
/// item that is not a plan (its page shows one field per argument).
fn plan_editor(item: &ApprovalItem, typed: Option<&[(String, String)]>) -> Option<Value> {
    let (args, terms, frequency) = proposed_plan(item)?;
    let cur = terms.currency;
    let amount = |minor: i64| Money::new(minor, cur).amount_string();
    let proposed = [
        amount(terms.discount_minor),
        amount(terms.down_payment_minor),
        terms.count.to_string(),
        terms.frequency.as_str().to_string(),
        terms.start_date.to_string(),
    ];
    let value = |i: usize| {
        typed
            .and_then(|t| t.iter().find(|(k, _)| k == PLAN_FIELDS[i]))
            .map_or_else(|| proposed[i].clone(), |(_, v)| v.clone())
    };
    let frequency_now = value(3);
    let even = {
        let amounts: Vec<&str> = args
            .installments
            .iter()
            .map(|i| i.amount.as_str())
            .collect();
        let schedule = terms.schedule().ok();
        schedule.is_some_and(|s| {
            s.iter()
                .map(|i| amount(i.amount_minor))
                .zip(&amounts)
                .all(|(a, b)| Money::parse(b, cur).is_ok_and(|m| amount(m.minor) == a))
        })
    };
    Some(json!({
        "customer": item.context["customer"]["name"].as_str().unwrap_or(&item.customer_id),
        "customer_id": args.customer_id,
        "currency": cur.as_str(),
        "balance": Money::new(terms.balance_minor, cur).grouped(),
        "discount": value(0),
        "down_payment": value(1),
        "count": value(2),
        "start_date": value(4),
        "frequencies": Frequency::ALL.iter().map(|f| json!({
            "name": f.as_str(),
            "selected": f.as_str() == frequency_now,
        })).collect::<Vec<_>>(),
        // The agent's instalments are not what the terms give (uneven amounts, or dates
        // on no regular schedule): checking the edit replaces them with an even schedule.
        "irregular": frequency.is_none() || !even,
        "max_count": argent_core::action::MAX_INSTALLMENTS,
    }))
}

/// The arguments the plan editor's terms give (the proposal with the new discount, down
/// payment, start date and recomputed instalments), or what is wrong, in the currency's
/// units and naming the field.
fn plan_args_from_form(item: &ApprovalItem, form: &[(String, String)]) -> Result<Value, String> {
    let (args, proposed, _) = proposed_plan(item)
        .ok_or_else(|| "the proposed plan's arguments cannot be read as a plan".to_string())?;
    let get = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_string())
    };
    let cur = proposed.currency;
    let amount = |name: &str, what: &str, default: i64| -> Result<i64, String> {
        match get(name) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(0),
            Some(v) => Money::parse(&v.replace(',', ""), cur)
                .map(|m| m.minor)
                .map_err(|e| format!("{what}: {e}")),
        }
    };
    let count = match get("plan.count") {
        None => proposed.count,
        Some(v) => v.parse::<u32>().map_err(|_| {
            format!(
                "number of instalments: '{v}' is not a whole number from 1 to {}",
                argent_core::action::MAX_INSTALLMENTS
            )
        })?,
    };
    let frequency = match get("plan.frequency") {
        None => proposed.frequency,
        Some(v) => v
            .parse::<Frequency>()
            .map_err(|e| format!("frequency: {e}"))?,
    };
    let start_date = match get("plan.start_date") {
        None => proposed.start_date,
        Some(v) => {
            let d = chrono::NaiveDate::parse_from_str(&v, "%Y-%m-%d")
                .map_err(|_| format!("start date: '{v}' is not a date (YYYY-MM-DD)"))?;
            argent_core::bounds::check_date("start date", d).map_err(|e| e.to_string())?
        }
    };
    let terms = PlanTerms {
        discount_minor: amount("plan.discount", "discount", proposed.discount_minor)?,
        down_payment_minor: amount(
            "plan.down_payment",
            "down payment",
            proposed.down_payment_minor,
        )?,
        count,
        frequency,
        start_date,
        ..proposed
    };
    let edited = args.with_terms(&terms).map_err(|e| e.to_string())?;
    let mut v = serde_json::to_value(&edited)
        .map_err(|e| format!("the edited plan cannot be written: {e}"))?;
    // No `"note": null` where the agent wrote no note: the edit changes only the terms.
    if let Some(o) = v.as_object_mut()
        && o.get("note") == Some(&Value::Null)
        && item.action.get("note").is_none()
    {
        o.remove("note");
    }
    Ok(v)
}

/// The item page's "previous" and "next" links (`j` / `k`): the pending items before and
/// after this one in queue order under the filters the reviewer came from. None when the
/// filters do not read (the page still shows; the list says what is wrong with them).
async fn neighbours(
    agent: &Agent,
    user: &SessionUser,
    item: &ApprovalItem,
    back: &str,
) -> AppResult<(Option<String>, Option<String>)> {
    let Ok(filter) = FilterQuery::from_query_string(back)
        .and_then(|f| f.to_filter(Some(ApprovalStatus::Pending), user, agent.now()))
    else {
        return Ok((None, None));
    };
    let href = |i: Option<ApprovalItem>| {
        i.map(|i| {
            if back.is_empty() {
                format!("/queue/{}", encode_query(&i.id))
            } else {
                format!("/queue/{}?{back}", encode_query(&i.id))
            }
        })
    };
    let prev = agent.store.queue_prev(&filter, &item.id).await?;
    let next = agent.store.queue_next(&filter, &item.id).await?;
    Ok((href(prev), href(next)))
}
