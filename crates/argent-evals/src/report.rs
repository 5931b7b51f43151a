//! Reports: per-case results and totals, as JSON and as a self-contained HTML page.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::case::EvalCase;
use crate::outcome::{CallStatus, CaseOutcome};
use crate::score::score_with;

/// Identifies the report file format.
pub const REPORT_FORMAT: &str = "argent-eval-report";
pub const REPORT_VERSION: u32 = 1;

/// Which versions were evaluated; free text, shown in reports and comparisons.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// e.g. `offline`, `replay`, `openai:gpt-4o-mini`.
    pub model: String,
    /// Prompt version, e.g. `v3` or a git revision.
    pub prompts: String,
    /// Policy version(s), e.g. `us-consumer@2026.1,b2b@2026.1`.
    pub policies: String,
    /// Anything else worth recording (`commit`, `run_by`, ...).
    #[serde(default)]
    pub extra: BTreeMap<String, String>,
}

/// One attempt at one case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptReport {
    pub attempt: u32,
    pub passed: bool,
    pub failures: Vec<String>,
    pub violations: Vec<String>,
    pub tokens: u64,
    pub latency_ms: u64,
    pub error: Option<String>,
    /// `tool:status` per call, in order.
    pub calls: Vec<String>,
    /// Ids of the rules that fired in any call's final decision, sorted, once each
    /// (what the activation gate reads to see which rules a case exercises; empty in
    /// reports written before it was recorded).
    #[serde(default)]
    pub rules: Vec<String>,
    pub executed: u32,
    pub queued: u32,
    pub refused: u32,
    pub invalid: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    pub id: String,
    pub title: String,
    pub tags: Vec<String>,
    /// Every attempt passed (pass^k; with one attempt, that attempt passed).
    pub passed: bool,
    pub attempts: Vec<AttemptReport>,
}

impl CaseReport {
    /// Failures of the first failing attempt (empty when the case passed).
    pub fn first_failures(&self) -> Vec<String> {
        self.attempts
            .iter()
            .find(|a| !a.passed)
            .map(|a| a.failures.clone())
            .unwrap_or_default()
    }
    pub fn mean_tokens(&self) -> f64 {
        mean(self.attempts.iter().map(|a| a.tokens))
    }
    pub fn mean_latency_ms(&self) -> f64 {
        mean(self.attempts.iter().map(|a| a.latency_ms))
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TagTotals {
    pub cases: u32,
    pub passed: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub cases: u32,
    pub attempts: u32,
    /// Cases whose every attempt passed.
    pub passed_cases: u32,
    /// Passed attempts / attempts (pass@1, averaged over attempts), 0..=1.
    pub task_success_rate: f64,
    /// Share of cases whose every one of the k attempts passed; only when repeat > 1.
    pub pass_hat_k: Option<f64>,
    /// Executed calls that break `must_not_execute` or carry a deny rule. Must be zero.
    pub executed_violations: u64,
    /// Runs that failed with an operator error.
    pub errors: u32,
    pub calls: u64,
    pub executed: u64,
    pub queued: u64,
    pub refused: u64,
    pub invalid: u64,
    /// queued / calls.
    pub approval_rate: f64,
    /// refused / calls.
    pub refusal_rate: f64,
    /// invalid / calls.
    pub invalid_rate: f64,
    /// Mean per attempt.
    pub mean_tokens: f64,
    pub mean_latency_ms: f64,
    pub by_tag: BTreeMap<String, TagTotals>,
}

/// The result of running an eval set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub format: String,
    pub version: u32,
    /// The eval set's name, e.g. `core`.
    pub set: String,
    pub labels: Labels,
    pub repeat: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: u64,
    pub cases: Vec<CaseReport>,
    pub totals: Totals,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not an eval report: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: format '{format}' version {version} is not an {REPORT_FORMAT} version {REPORT_VERSION}"
    )]
    Format {
        path: String,
        format: String,
        version: u32,
    },
}

fn mean(it: impl Iterator<Item = u64>) -> f64 {
    let (sum, n) = it.fold((0_u128, 0_u64), |(s, n), x| (s + u128::from(x), n + 1));
    if n == 0 { 0.0 } else { sum as f64 / n as f64 }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

impl Report {
    /// Scores every outcome and builds the report. `results` pairs each case with its
    /// attempts' outcomes in attempt order. Pure.
    pub fn build(
        set: &str,
        labels: Labels,
        repeat: u32,
        deny_rules: &BTreeSet<String>,
        results: &[(&EvalCase, Vec<CaseOutcome>)],
    ) -> Report {
        let mut cases = Vec::new();
        for (case, outcomes) in results {
            let attempts: Vec<AttemptReport> = outcomes
                .iter()
                .enumerate()
                .map(|(i, o)| {
                    let s = score_with(case, o, deny_rules);
                    let count = |st: CallStatus| {
                        u32::try_from(o.calls.iter().filter(|c| c.status == st).count())
                            .unwrap_or(u32::MAX)
                    };
                    AttemptReport {
                        attempt: u32::try_from(i).unwrap_or(u32::MAX),
                        passed: s.passed,
                        failures: s.failures,
                        violations: s.violations,
                        tokens: o.tokens,
                        latency_ms: o.latency_ms,
                        error: o.error.clone(),
                        calls: o
                            .calls
                            .iter()
                            .map(|c| format!("{}:{}", c.tool, c.status))
                            .collect(),
                        rules: o
                            .calls
                            .iter()
                            .flat_map(|c| c.rules.iter().cloned())
                            .collect::<BTreeSet<String>>()
                            .into_iter()
                            .collect(),
                        executed: count(CallStatus::Executed),
                        queued: count(CallStatus::Queued),
                        refused: count(CallStatus::Refused),
                        invalid: count(CallStatus::Invalid),
                    }
                })
                .collect();
            cases.push(CaseReport {
                id: case.id.clone(),
                title: case.title.clone(),
                tags: case.tags.clone(),
                passed: !attempts.is_empty() && attempts.iter().all(|a| a.passed),
                attempts,
            });
        }
        let totals = Totals::compute(&cases, repeat);
        Report {
            format: REPORT_FORMAT.into(),
            version: REPORT_VERSION,
            set: set.into(),
            labels,
            repeat,
            started_at: None,
            duration_ms: 0,
            cases,
            totals,
        }
    }

    pub fn case(&self, id: &str) -> Option<&CaseReport> {
        self.cases.iter().find(|c| c.id == id)
    }

    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self).map(|s| s + "\n")
    }

    pub fn write_json(&self, path: &Path) -> Result<(), ReportError> {
        let p = path.display().to_string();
        let text = self.to_json().map_err(|source| ReportError::Json {
            path: p.clone(),
            source,
        })?;
        std::fs::write(path, text).map_err(|source| ReportError::Io { path: p, source })
    }

    pub fn write_html(&self, path: &Path) -> Result<(), ReportError> {
        std::fs::write(path, self.to_html()).map_err(|source| ReportError::Io {
            path: path.display().to_string(),
            source,
        })
    }

    pub fn from_json(text: &str, path: &Path) -> Result<Report, ReportError> {
        let p = path.display().to_string();
        let r: Report = serde_json::from_str(text).map_err(|source| ReportError::Json {
            path: p.clone(),
            source,
        })?;
        if r.format != REPORT_FORMAT || r.version != REPORT_VERSION {
            return Err(ReportError::Format {
                path: p,
                format: r.format,
                version: r.version,
            });
        }
        Ok(r)
    }

    pub fn read_json(path: &Path) -> Result<Report, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Report::from_json(&text, path)
    }

    /// A one-screen plain-text summary for terminals.
    pub fn summary(&self) -> String {
        let t = &self.totals;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "eval set '{}' · model {} · prompts {} · policies {}",
            self.set,
            or_dash(&self.labels.model),
            or_dash(&self.labels.prompts),
            or_dash(&self.labels.policies)
        );
        let _ = writeln!(
            s,
            "cases {} · passed {} · task success {:.1}%{}",
            t.cases,
            t.passed_cases,
            t.task_success_rate * 100.0,
            t.pass_hat_k
                .map(|p| format!(" · pass^{} {:.1}%", self.repeat, p * 100.0))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "executed policy violations {} · approval {:.1}% · refusal {:.1}% · invalid {:.1}% · errors {}",
            t.executed_violations,
            t.approval_rate * 100.0,
            t.refusal_rate * 100.0,
            t.invalid_rate * 100.0,
            t.errors
        );
        let _ = writeln!(
            s,
            "mean tokens {:.0} · mean latency {:.0} ms",
            t.mean_tokens, t.mean_latency_ms
        );
        for c in self.cases.iter().filter(|c| !c.passed) {
            let _ = writeln!(s, "FAIL {}: {}", c.id, c.first_failures().join(" | "));
        }
        s
    }

    /// A self-contained HTML page: inline CSS and inline SVG charts, no scripts, no
    /// external references; renders offline.
    pub fn to_html(&self) -> String {
        html::render(self)
    }

    /// The report as an HTML fragment to embed in another page: one
    /// `<div class="argent-report">` with the same content as [`Report::to_html`], no
    /// `<html>`, `<head>` or styles (put [`REPORT_CSS`] in the page's stylesheet), no
    /// scripts, no external references; every text from the report is escaped.
    pub fn to_html_fragment(&self) -> String {
        html::fragment(self)
    }
}

/// The styles of [`Report::to_html_fragment`] and [`Comparison::to_html_fragment`], every
/// selector scoped under `.argent-report` so they do not restyle the page around them.
///
/// [`Comparison::to_html_fragment`]: crate::Comparison::to_html_fragment
pub const REPORT_CSS: &str = html::FRAGMENT_CSS;

/// The headline figures of a report, small enough to list many runs (what the store keeps
/// beside each eval run), plus the verdict when the run was compared with a baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportSummary {
    pub set: String,
    pub labels: Labels,
    pub repeat: u32,
    pub cases: u32,
    pub passed_cases: u32,
    pub failed_cases: u32,
    pub attempts: u32,
    /// 0..=1.
    pub task_success_rate: f64,
    pub pass_hat_k: Option<f64>,
    pub executed_violations: u64,
    pub errors: u32,
    pub approval_rate: f64,
    pub refusal_rate: f64,
    pub invalid_rate: f64,
    pub duration_ms: u64,
    /// `Some` once compared with a baseline: whether the gate found a regression.
    pub regressed: Option<bool>,
    /// The gate's reasons (empty when it did not regress or was not compared).
    pub regressions: Vec<String>,
}

/// The summary of `report` (see [`ReportSummary`]); add a comparison's verdict with
/// [`ReportSummary::with_comparison`]. Serialize it with `serde_json::to_value`.
pub fn report_summary(report: &Report) -> ReportSummary {
    let t = &report.totals;
    ReportSummary {
        set: report.set.clone(),
        labels: report.labels.clone(),
        repeat: report.repeat,
        cases: t.cases,
        passed_cases: t.passed_cases,
        failed_cases: t.cases.saturating_sub(t.passed_cases),
        attempts: t.attempts,
        task_success_rate: t.task_success_rate,
        pass_hat_k: t.pass_hat_k,
        executed_violations: t.executed_violations,
        errors: t.errors,
        approval_rate: t.approval_rate,
        refusal_rate: t.refusal_rate,
        invalid_rate: t.invalid_rate,
        duration_ms: report.duration_ms,
        regressed: None,
        regressions: Vec::new(),
    }
}

impl ReportSummary {
    /// Records the verdict of comparing this report (as B) with a baseline.
    pub fn with_comparison(mut self, cmp: &crate::Comparison) -> ReportSummary {
        self.regressed = Some(cmp.regressed());
        self.regressions = cmp.regressions.clone();
        self
    }
}

pub(crate) fn or_dash(s: &str) -> &str {
    if s.is_empty() { "-" } else { s }
}

impl Totals {
    pub fn compute(cases: &[CaseReport], repeat: u32) -> Totals {
        let mut t = Totals {
            cases: u32::try_from(cases.len()).unwrap_or(u32::MAX),
            ..Totals::default()
        };
        let mut passed_attempts = 0_u64;
        let mut tokens = Vec::new();
        let mut latency = Vec::new();
        for c in cases {
            if c.passed {
                t.passed_cases += 1;
            }
            for a in &c.attempts {
                t.attempts += 1;
                if a.passed {
                    passed_attempts += 1;
                }
                if a.error.is_some() {
                    t.errors += 1;
                }
                t.executed_violations += a.violations.len() as u64;
                t.executed += u64::from(a.executed);
                t.queued += u64::from(a.queued);
                t.refused += u64::from(a.refused);
                t.invalid += u64::from(a.invalid);
                tokens.push(a.tokens);
                latency.push(a.latency_ms);
            }
            for tag in &c.tags {
                let e = t.by_tag.entry(tag.clone()).or_default();
                e.cases += 1;
                if c.passed {
                    e.passed += 1;
                }
            }
        }
        t.calls = t.executed + t.queued + t.refused + t.invalid;
        t.task_success_rate = ratio(passed_attempts, u64::from(t.attempts));
        t.pass_hat_k = (repeat > 1).then(|| ratio(u64::from(t.passed_cases), u64::from(t.cases)));
        t.approval_rate = ratio(t.queued, t.calls);
        t.refusal_rate = ratio(t.refused, t.calls);
        t.invalid_rate = ratio(t.invalid, t.calls);
        t.mean_tokens = mean(tokens.into_iter());
        t.mean_latency_ms = mean(latency.into_iter());
        t
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Keep pasted URLs inert and the page free of external references.
            ':' => out.push_str("&#58;"),
            _ => out.push(c),
        }
    }
    out
}

mod html {
    use super::*;

    /// Styles for the page around the fragment (the standalone report only).
    const PAGE_CSS: &str = "body{margin:24px;background:#fafbfc}";

    pub(super) const FRAGMENT_CSS: &str = "
.argent-report{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d232a}
.argent-report h1{font-size:22px;margin:0 0 4px}.argent-report h2{font-size:17px;margin:28px 0 8px}
.argent-report h3{font-size:15px;margin:20px 0 6px}
.argent-report .meta{color:#5b6570;margin-bottom:16px}
.argent-report .cards{display:flex;flex-wrap:wrap;gap:12px}
.argent-report .card{background:#fff;border:1px solid #dde2e7;border-radius:8px;padding:10px 14px;min-width:140px}
.argent-report .card .v{font-size:22px;font-weight:600}.argent-report .card .k{color:#5b6570;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.argent-report .bad .v{color:#b42318}.argent-report .good .v{color:#067647}
.argent-report table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dde2e7}
.argent-report th,.argent-report td{text-align:left;padding:6px 8px;border-bottom:1px solid #eef1f4;vertical-align:top}
.argent-report th{background:#f2f4f7;font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:#475467}
.argent-report td.num,.argent-report th.num{text-align:right}
.argent-report .pass{color:#067647;font-weight:600}.argent-report .fail{color:#b42318;font-weight:600}
.argent-report .tag{display:inline-block;background:#eef4ff;color:#3538cd;border-radius:10px;padding:0 7px;margin:1px;font-size:12px}
.argent-report ul.reasons{margin:0;padding-left:18px;color:#b42318}
.argent-report code{font-size:12px;color:#475467}
.argent-report svg text{font:12px system-ui,sans-serif;fill:#1d232a}
";

    pub(super) fn render(r: &Report) -> String {
        let mut h = String::new();
        h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
        let _ = write!(
            h,
            "<title>argent eval report: {}</title><style>{PAGE_CSS}{FRAGMENT_CSS}</style></head><body>",
            escape_html(&r.set)
        );
        h.push_str(&fragment(r));
        h.push_str("</body></html>\n");
        h
    }

    pub(super) fn fragment(r: &Report) -> String {
        let t = &r.totals;
        let mut h = String::from("<div class=\"argent-report\">");
        let _ = write!(
            h,
            "<h1>Eval report · set <code>{}</code></h1><div class=\"meta\">model <b>{}</b> · prompts <b>{}</b> · policies <b>{}</b>{}{} · repeat {}</div>",
            escape_html(&r.set),
            escape_html(or_dash(&r.labels.model)),
            escape_html(or_dash(&r.labels.prompts)),
            escape_html(or_dash(&r.labels.policies)),
            r.labels
                .extra
                .iter()
                .map(|(k, v)| format!(" · {} <b>{}</b>", escape_html(k), escape_html(v)))
                .collect::<String>(),
            r.started_at
                .map(|s| format!(" · started {}", escape_html(&s.to_rfc3339())))
                .unwrap_or_default(),
            r.repeat
        );
        h.push_str("<div class=\"cards\">");
        card(
            &mut h,
            "task success",
            &pct(t.task_success_rate),
            Some(t.task_success_rate >= 0.999),
        );
        card(
            &mut h,
            "cases passed",
            &format!("{} / {}", t.passed_cases, t.cases),
            None,
        );
        if let Some(p) = t.pass_hat_k {
            card(&mut h, &format!("pass^{}", r.repeat), &pct(p), None);
        }
        card(
            &mut h,
            "executed violations",
            &t.executed_violations.to_string(),
            Some(t.executed_violations == 0),
        );
        card(&mut h, "approval rate", &pct(t.approval_rate), None);
        card(&mut h, "refusal rate", &pct(t.refusal_rate), None);
        card(&mut h, "invalid-arg rate", &pct(t.invalid_rate), None);
        card(
            &mut h,
            "mean tokens",
            &format!("{:.0}", t.mean_tokens),
            None,
        );
        card(
            &mut h,
            "mean latency",
            &format!("{:.0} ms", t.mean_latency_ms),
            None,
        );
        card(
            &mut h,
            "run errors",
            &t.errors.to_string(),
            Some(t.errors == 0),
        );
        h.push_str("</div>");

        h.push_str("<h2>Outcome mix (all tool calls)</h2>");
        h.push_str(&outcome_chart(t));
        h.push_str("<h2>Pass / fail by tag</h2>");
        h.push_str(&tag_chart(t));

        h.push_str("<h2>Cases</h2><table><thead><tr><th>case</th><th>result</th><th>tags</th><th>calls</th><th>tokens</th><th>latency</th><th>reasons</th></tr></thead><tbody>");
        let mut ordered: Vec<&CaseReport> = r.cases.iter().collect();
        ordered.sort_by_key(|c| (c.passed, c.id.clone()));
        for c in ordered {
            let passes = c.attempts.iter().filter(|a| a.passed).count();
            let result = if c.passed {
                "<span class=\"pass\">pass</span>".to_string()
            } else {
                "<span class=\"fail\">fail</span>".to_string()
            };
            let result = if c.attempts.len() > 1 {
                format!("{result} <code>{passes}/{}</code>", c.attempts.len())
            } else {
                result
            };
            let calls = c
                .attempts
                .first()
                .map(|a| a.calls.join(", "))
                .unwrap_or_default();
            let reasons = c.first_failures();
            let _ = write!(
                h,
                "<tr><td><b>{}</b><br><code>{}</code></td><td>{result}</td><td>{}</td><td><code>{}</code></td><td>{:.0}</td><td>{:.0} ms</td><td>{}</td></tr>",
                escape_html(&c.title),
                escape_html(&c.id),
                c.tags
                    .iter()
                    .map(|t| format!("<span class=\"tag\">{}</span>", escape_html(t)))
                    .collect::<String>(),
                escape_html(&calls),
                c.mean_tokens(),
                c.mean_latency_ms(),
                if reasons.is_empty() {
                    String::new()
                } else {
                    format!(
                        "<ul class=\"reasons\">{}</ul>",
                        reasons
                            .iter()
                            .map(|x| format!("<li>{}</li>", escape_html(x)))
                            .collect::<String>()
                    )
                }
            );
        }
        h.push_str("</tbody></table></div>");
        h
    }

    pub(super) fn pct(x: f64) -> String {
        format!("{:.1}%", x * 100.0)
    }

    pub(super) fn card(h: &mut String, k: &str, v: &str, good: Option<bool>) {
        let cls = match good {
            Some(true) => " good",
            Some(false) => " bad",
            None => "",
        };
        let _ = write!(
            h,
            "<div class=\"card{cls}\"><div class=\"k\">{}</div><div class=\"v\">{}</div></div>",
            escape_html(k),
            escape_html(v)
        );
    }

    fn outcome_chart(t: &Totals) -> String {
        let rows = [
            ("executed", t.executed, "#12b76a"),
            ("queued for approval", t.queued, "#f79009"),
            ("refused by policy", t.refused, "#f04438"),
            ("invalid arguments", t.invalid, "#98a2b3"),
        ];
        let max = rows.iter().map(|r| r.1).max().unwrap_or(0).max(1);
        let (label_w, bar_w, row_h) = (160.0, 420.0, 26.0);
        let height = row_h * rows.len() as f64 + 8.0;
        let mut s = format!(
            "<svg role=\"img\" aria-label=\"outcome mix\" width=\"{}\" height=\"{height}\" viewBox=\"0 0 {} {height}\">",
            label_w + bar_w + 90.0,
            label_w + bar_w + 90.0
        );
        for (i, (name, n, color)) in rows.iter().enumerate() {
            let y = i as f64 * row_h + 4.0;
            let w = bar_w * (*n as f64) / (max as f64);
            let share = if t.calls == 0 {
                0.0
            } else {
                *n as f64 / t.calls as f64 * 100.0
            };
            let _ = write!(
                s,
                "<text x=\"0\" y=\"{}\">{name}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{w:.1}\" height=\"18\" rx=\"3\" fill=\"{color}\"/><text x=\"{:.1}\" y=\"{}\">{n} ({share:.1}%)</text>",
                y + 13.0,
                label_w + w + 6.0,
                y + 13.0
            );
        }
        s.push_str("</svg>");
        s
    }

    fn tag_chart(t: &Totals) -> String {
        if t.by_tag.is_empty() {
            return "<p>No tags.</p>".into();
        }
        let max = t.by_tag.values().map(|v| v.cases).max().unwrap_or(1).max(1);
        let (label_w, bar_w, row_h) = (190.0, 380.0, 22.0);
        let height = row_h * t.by_tag.len() as f64 + 8.0;
        let width = label_w + bar_w + 80.0;
        let mut s = format!(
            "<svg role=\"img\" aria-label=\"pass and fail by tag\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\">"
        );
        for (i, (tag, v)) in t.by_tag.iter().enumerate() {
            let y = i as f64 * row_h + 4.0;
            let unit = bar_w / max as f64;
            let pw = unit * f64::from(v.passed);
            let fw = unit * f64::from(v.cases - v.passed);
            let _ = write!(
                s,
                "<text x=\"0\" y=\"{}\">{}</text><rect x=\"{label_w}\" y=\"{y}\" width=\"{pw:.1}\" height=\"15\" fill=\"#12b76a\"/><rect x=\"{:.1}\" y=\"{y}\" width=\"{fw:.1}\" height=\"15\" fill=\"#f04438\"/><text x=\"{:.1}\" y=\"{}\">{}/{}</text>",
                y + 12.0,
                escape_html(tag),
                label_w + pw,
                label_w + pw + fw + 6.0,
                y + 12.0,
                v.passed,
                v.cases
            );
        }
        s.push_str("</svg><div class=\"meta\"><span class=\"pass\">■</span> passed <span class=\"fail\">■</span> failed</div>");
        s
    }
}
