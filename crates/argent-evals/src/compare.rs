//! Comparing two reports (A = baseline, B = candidate) and gating B on regressions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::report::Report;

/// What counts as a regression of B against A. Percentages are percentage points of rates
/// in 0..=100.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Gate {
    /// Largest allowed drop in task success, in points (default 0).
    pub max_success_drop_pp: f64,
    /// Largest allowed drop in pass^k, in points, when both reports have it (default 0).
    pub max_pass_k_drop_pp: f64,
    /// Most executed policy violations B may have (default 0).
    pub max_violations: u64,
    /// Most cases that may flip from pass to fail (default 0).
    pub max_flips_to_fail: usize,
    /// Largest allowed rise in the refusal rate, in points (`None`: not gated; default 5).
    pub max_refusal_increase_pp: Option<f64>,
    /// Largest allowed rise in the invalid-argument rate, in points (`None`: not gated).
    pub max_invalid_increase_pp: Option<f64>,
    /// Largest allowed rise in mean tokens per case, in percent (`None`: not gated).
    pub max_tokens_increase_pct: Option<f64>,
    /// Whether a case in A but missing from B is a regression (default true).
    pub fail_on_missing_cases: bool,
    /// Most run errors B may have (`None`: not gated; default 0).
    pub max_errors: Option<u32>,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            max_success_drop_pp: 0.0,
            max_pass_k_drop_pp: 0.0,
            max_violations: 0,
            max_flips_to_fail: 0,
            max_refusal_increase_pp: Some(5.0),
            max_invalid_increase_pp: None,
            max_tokens_increase_pct: None,
            fail_on_missing_cases: true,
            max_errors: Some(0),
        }
    }
}

/// A case that passed in one report and failed in the other.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Flip {
    pub id: String,
    pub title: String,
    /// B's failure reasons (for pass→fail) or A's (for fail→pass).
    pub reasons: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricDelta {
    pub metric: String,
    pub a: f64,
    pub b: f64,
    /// b - a; rates in percentage points.
    pub delta: f64,
    /// How the value is shown: `pct` (rates, shown ×100), `count` or `num`.
    pub unit: String,
}

impl MetricDelta {
    /// A, B and the delta as shown to people: rates as percentages (delta in points),
    /// counts as integers, other numbers with one decimal.
    pub fn formatted(&self) -> (String, String, String) {
        match self.unit.as_str() {
            "pct" => (
                format!("{:.1}%", self.a * 100.0),
                format!("{:.1}%", self.b * 100.0),
                format!("{:+.1} pp", self.delta),
            ),
            "count" => (
                format!("{:.0}", self.a),
                format!("{:.0}", self.b),
                format!("{:+.0}", self.delta),
            ),
            _ => (
                format!("{:.1}", self.a),
                format!("{:.1}", self.b),
                format!("{:+.1}", self.delta),
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub a_set: String,
    pub b_set: String,
    pub a_labels: crate::report::Labels,
    pub b_labels: crate::report::Labels,
    pub pass_to_fail: Vec<Flip>,
    pub fail_to_pass: Vec<Flip>,
    pub only_in_a: Vec<String>,
    pub only_in_b: Vec<String>,
    pub deltas: Vec<MetricDelta>,
    /// Why B regressed, one reason per broken gate; empty when it did not.
    pub regressions: Vec<String>,
}

impl Comparison {
    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }

    /// The comparison as an HTML fragment to embed in a page: one
    /// `<div class="argent-report argent-comparison">` with the verdict and the gate's
    /// reasons, the metric table (A, B, delta), the flipped cases with their reasons and
    /// the cases found in only one report. Styled by [`crate::report::REPORT_CSS`]; no
    /// scripts, no external references; every text is escaped.
    pub fn to_html_fragment(&self) -> String {
        html_fragment(self)
    }
}

fn html_fragment(c: &Comparison) -> String {
    use crate::report::escape_html as esc;
    use std::fmt::Write as _;

    let labels = |set: &str, l: &crate::report::Labels| {
        format!("set <code>{}</code> · {}", esc(set), esc(&label(l)))
    };
    let mut h = String::from("<div class=\"argent-report argent-comparison\">");
    let _ = write!(
        h,
        "<div class=\"meta\">A (baseline): {}<br>B (candidate): {}</div>",
        labels(&c.a_set, &c.a_labels),
        labels(&c.b_set, &c.b_labels)
    );
    h.push_str("<div class=\"cards\">");
    let (verdict, class) = if c.regressed() {
        ("REGRESSED", "bad")
    } else {
        ("OK", "good")
    };
    let _ = write!(
        h,
        "<div class=\"card {class}\"><div class=\"k\">verdict</div><div class=\"v\">{verdict}</div></div>"
    );
    for (k, n) in [
        ("pass → fail", c.pass_to_fail.len()),
        ("fail → pass", c.fail_to_pass.len()),
    ] {
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"k\">{k}</div><div class=\"v\">{n}</div></div>"
        );
    }
    h.push_str("</div>");
    if c.regressed() {
        h.push_str("<h3>Why it regressed</h3><ul class=\"reasons\">");
        for r in &c.regressions {
            let _ = write!(h, "<li>{}</li>", esc(r));
        }
        h.push_str("</ul>");
    }
    h.push_str(
        "<h3>Metrics</h3><table><thead><tr><th>metric</th><th class=\"num\">A</th>\
         <th class=\"num\">B</th><th class=\"num\">delta</th></tr></thead><tbody>",
    );
    for d in &c.deltas {
        let (a, b, delta) = d.formatted();
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&d.metric),
            esc(&a),
            esc(&b),
            esc(&delta)
        );
    }
    h.push_str("</tbody></table>");
    for (title, class, flips) in [
        ("pass → fail", "fail", &c.pass_to_fail),
        ("fail → pass", "pass", &c.fail_to_pass),
    ] {
        if flips.is_empty() {
            continue;
        }
        let _ = write!(
            h,
            "<h3><span class=\"{class}\">{title}</span> ({})</h3><table><thead><tr><th>case</th><th>reasons</th></tr></thead><tbody>",
            flips.len()
        );
        for f in flips {
            let _ = write!(
                h,
                "<tr><td><b>{}</b><br><code>{}</code></td><td><ul class=\"reasons\">{}</ul></td></tr>",
                esc(&f.title),
                esc(&f.id),
                f.reasons
                    .iter()
                    .map(|r| format!("<li>{}</li>", esc(r)))
                    .collect::<String>()
            );
        }
        h.push_str("</tbody></table>");
    }
    for (title, ids) in [("Only in A", &c.only_in_a), ("Only in B", &c.only_in_b)] {
        if !ids.is_empty() {
            let _ = write!(
                h,
                "<h3>{title}</h3><p>{}</p>",
                ids.iter()
                    .map(|id| format!("<code>{}</code>", esc(id)))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    h.push_str("</div>");
    h
}

const EPS: f64 = 1e-9;

/// Compares candidate `b` against baseline `a` under `gate`.
pub fn compare(a: &Report, b: &Report, gate: &Gate) -> Comparison {
    let mut pass_to_fail = Vec::new();
    let mut fail_to_pass = Vec::new();
    let mut only_in_a = Vec::new();
    for ca in &a.cases {
        match b.case(&ca.id) {
            None => only_in_a.push(ca.id.clone()),
            Some(cb) if ca.passed && !cb.passed => pass_to_fail.push(Flip {
                id: cb.id.clone(),
                title: cb.title.clone(),
                reasons: cb.first_failures(),
            }),
            Some(cb) if !ca.passed && cb.passed => fail_to_pass.push(Flip {
                id: cb.id.clone(),
                title: cb.title.clone(),
                reasons: ca.first_failures(),
            }),
            Some(_) => {}
        }
    }
    let only_in_b: Vec<String> = b
        .cases
        .iter()
        .filter(|c| a.case(&c.id).is_none())
        .map(|c| c.id.clone())
        .collect();

    let (ta, tb) = (&a.totals, &b.totals);
    let mut deltas = Vec::new();
    let mut d = |metric: &str, x: f64, y: f64, unit: &str| {
        deltas.push(MetricDelta {
            metric: metric.into(),
            a: x,
            b: y,
            delta: if unit == "pct" {
                (y - x) * 100.0
            } else {
                y - x
            },
            unit: unit.into(),
        });
    };
    d(
        "task_success_rate",
        ta.task_success_rate,
        tb.task_success_rate,
        "pct",
    );
    if let (Some(x), Some(y)) = (ta.pass_hat_k, tb.pass_hat_k) {
        d("pass_hat_k", x, y, "pct");
    }
    d(
        "executed_violations",
        ta.executed_violations as f64,
        tb.executed_violations as f64,
        "count",
    );
    d("approval_rate", ta.approval_rate, tb.approval_rate, "pct");
    d("refusal_rate", ta.refusal_rate, tb.refusal_rate, "pct");
    d("invalid_rate", ta.invalid_rate, tb.invalid_rate, "pct");
    d("mean_tokens", ta.mean_tokens, tb.mean_tokens, "num");
    d(
        "mean_latency_ms",
        ta.mean_latency_ms,
        tb.mean_latency_ms,
        "num",
    );
    d(
        "errors",
        f64::from(ta.errors),
        f64::from(tb.errors),
        "count",
    );

    let mut regressions = Vec::new();
    let drop = (ta.task_success_rate - tb.task_success_rate) * 100.0;
    if drop > gate.max_success_drop_pp + EPS {
        regressions.push(format!(
            "task success dropped {drop:.1} points ({:.1}% → {:.1}%; gate allows {:.1})",
            ta.task_success_rate * 100.0,
            tb.task_success_rate * 100.0,
            gate.max_success_drop_pp
        ));
    }
    if let (Some(x), Some(y)) = (ta.pass_hat_k, tb.pass_hat_k) {
        let drop = (x - y) * 100.0;
        if drop > gate.max_pass_k_drop_pp + EPS {
            regressions.push(format!(
                "pass^k dropped {drop:.1} points (gate allows {:.1})",
                gate.max_pass_k_drop_pp
            ));
        }
    }
    if tb.executed_violations > gate.max_violations {
        regressions.push(format!(
            "{} executed policy violation(s) (gate allows {})",
            tb.executed_violations, gate.max_violations
        ));
    }
    if pass_to_fail.len() > gate.max_flips_to_fail {
        regressions.push(format!(
            "{} case(s) flipped from pass to fail: {} (gate allows {})",
            pass_to_fail.len(),
            pass_to_fail
                .iter()
                .map(|f| f.id.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            gate.max_flips_to_fail
        ));
    }
    if let Some(max) = gate.max_refusal_increase_pp {
        let rise = (tb.refusal_rate - ta.refusal_rate) * 100.0;
        if rise > max + EPS {
            regressions.push(format!(
                "refusal rate rose {rise:.1} points (gate allows {max:.1})"
            ));
        }
    }
    if let Some(max) = gate.max_invalid_increase_pp {
        let rise = (tb.invalid_rate - ta.invalid_rate) * 100.0;
        if rise > max + EPS {
            regressions.push(format!(
                "invalid-argument rate rose {rise:.1} points (gate allows {max:.1})"
            ));
        }
    }
    if let Some(max) = gate.max_tokens_increase_pct
        && ta.mean_tokens > 0.0
    {
        let rise = (tb.mean_tokens - ta.mean_tokens) / ta.mean_tokens * 100.0;
        if rise > max + EPS {
            regressions.push(format!(
                "mean tokens rose {rise:.1}% (gate allows {max:.1}%)"
            ));
        }
    }
    if gate.fail_on_missing_cases && !only_in_a.is_empty() {
        regressions.push(format!(
            "{} case(s) of A are missing from B: {}",
            only_in_a.len(),
            only_in_a.join(", ")
        ));
    }
    if let Some(max) = gate.max_errors
        && tb.errors > max
    {
        regressions.push(format!("{} run error(s) (gate allows {max})", tb.errors));
    }

    Comparison {
        a_set: a.set.clone(),
        b_set: b.set.clone(),
        a_labels: a.labels.clone(),
        b_labels: b.labels.clone(),
        pass_to_fail,
        fail_to_pass,
        only_in_a,
        only_in_b,
        deltas,
        regressions,
    }
}

fn label(l: &crate::report::Labels) -> String {
    let part = |s: &str| {
        if s.is_empty() {
            "-".to_string()
        } else {
            s.to_string()
        }
    };
    format!(
        "model {} · prompts {} · policies {}",
        part(&l.model),
        part(&l.prompts),
        part(&l.policies)
    )
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "A: set {} · {}", self.a_set, label(&self.a_labels))?;
        writeln!(f, "B: set {} · {}", self.b_set, label(&self.b_labels))?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<22} {:>12} {:>12} {:>12}",
            "metric", "A", "B", "delta"
        )?;
        for d in &self.deltas {
            let (a, b, delta) = d.formatted();
            writeln!(f, "{:<22} {a:>12} {b:>12} {delta:>12}", d.metric)?;
        }
        if !self.pass_to_fail.is_empty() {
            writeln!(f, "\npass → fail ({}):", self.pass_to_fail.len())?;
            for x in &self.pass_to_fail {
                writeln!(f, "  {} ({})", x.id, x.title)?;
                for r in &x.reasons {
                    writeln!(f, "      {r}")?;
                }
            }
        }
        if !self.fail_to_pass.is_empty() {
            writeln!(f, "\nfail → pass ({}):", self.fail_to_pass.len())?;
            for x in &self.fail_to_pass {
                writeln!(f, "  {} ({})", x.id, x.title)?;
            }
        }
        if !self.only_in_a.is_empty() {
            writeln!(f, "\nonly in A: {}", self.only_in_a.join(", "))?;
        }
        if !self.only_in_b.is_empty() {
            writeln!(f, "\nonly in B: {}", self.only_in_b.join(", "))?;
        }
        writeln!(f)?;
        if self.regressions.is_empty() {
            writeln!(f, "verdict: OK, B does not regress against A")
        } else {
            writeln!(f, "verdict: REGRESSED")?;
            for r in &self.regressions {
                writeln!(f, "  - {r}")?;
            }
            Ok(())
        }
    }
}
