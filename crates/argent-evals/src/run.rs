//! Running an eval set: every selected case `repeat` times, concurrently, bounded by a
//! semaphore, with an optional progress bar.

use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::case::{EvalCase, EvalSet};
use crate::outcome::{CaseOutcome, CaseRunner};
use crate::report::{Labels, Report};
use crate::trace::{CaseTrace, TracedReport};

#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Most runs in flight at once (at least 1).
    pub concurrency: usize,
    /// Runs per case (at least 1); with k > 1 the report gives pass^k.
    pub repeat: u32,
    /// Selects cases: comma-separated terms, `tag:NAME` or an id substring
    /// (see [`EvalCase::matches`]); `None` runs all.
    pub filter: Option<String>,
    /// Skips cases carrying any of these tags (e.g. `offline-known-gap` for the offline model).
    pub exclude_tags: Vec<String>,
    /// Versions under evaluation, recorded in the report.
    pub labels: Labels,
    /// Rule ids whose presence on an executed call is a violation (see [`crate::deny_rule_ids`]).
    pub deny_rules: BTreeSet<String>,
    /// A run taking longer fails with an error; `None` waits forever.
    pub timeout: Option<Duration>,
    /// Print a line per finished run on stderr: its case, verdict and time (runs against
    /// a real endpoint take seconds to minutes each).
    pub case_log: bool,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 4,
            repeat: 1,
            filter: None,
            exclude_tags: Vec::new(),
            labels: Labels::default(),
            case_log: false,
            deny_rules: BTreeSet::new(),
            timeout: None,
        }
    }
}

impl RunOptions {
    /// The cases of `set` these options select, in set order.
    pub fn select<'a>(&self, set: &'a EvalSet) -> Vec<&'a EvalCase> {
        set.cases
            .iter()
            .filter(|c| self.filter.as_deref().is_none_or(|f| c.matches(f)))
            .filter(|c| !self.exclude_tags.iter().any(|t| c.has_tag(t)))
            .collect()
    }
}

/// A progress bar on stderr for `len` runs; hidden when stderr is not a terminal.
pub fn progress_bar(len: u64) -> ProgressBar {
    let target = if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let pb = ProgressBar::with_draw_target(Some(len), target);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} runs · {msg}",
    ) {
        pb.set_style(style);
    }
    pb
}

/// Runs the selected cases of `set` and scores them into a [`Report`]. A runner that
/// panics or exceeds the timeout yields a failed outcome for that run; the others go on.
/// `progress` (e.g. from [`progress_bar`]) advances once per run and shows failures.
pub async fn run_set(
    set: &EvalSet,
    runner: Arc<dyn CaseRunner>,
    opts: RunOptions,
    progress: Option<ProgressBar>,
) -> Report {
    run_set_traced(set, runner, opts, progress).await.report
}

/// [`run_set`], keeping each case's [`CaseTrace`] (its calls, arguments, rules, replies and
/// drafts) beside the report.
pub async fn run_set_traced(
    set: &EvalSet,
    runner: Arc<dyn CaseRunner>,
    opts: RunOptions,
    progress: Option<ProgressBar>,
) -> TracedReport {
    let started_at = Utc::now();
    let clock = Instant::now();
    let repeat = opts.repeat.max(1);
    let selected: Vec<Arc<EvalCase>> = opts
        .select(set)
        .into_iter()
        .map(|c| Arc::new(c.clone()))
        .collect();
    let total = selected.len() as u64 * u64::from(repeat);
    if let Some(pb) = &progress {
        pb.set_length(total);
        pb.set_position(0);
    }
    let sem = Arc::new(Semaphore::new(opts.concurrency.max(1)));
    let mut tasks = JoinSet::new();
    let mut which: BTreeMap<tokio::task::Id, (usize, u32)> = BTreeMap::new();
    for (idx, case) in selected.iter().enumerate() {
        for attempt in 0..repeat {
            let sem = Arc::clone(&sem);
            let runner = Arc::clone(&runner);
            let case = Arc::clone(case);
            let timeout = opts.timeout;
            let handle = tasks.spawn(async move {
                let _permit = sem.acquire_owned().await;
                let began = Instant::now();
                let fut = runner.run_case(&case, attempt);
                let outcome = match timeout {
                    Some(t) => match tokio::time::timeout(t, fut).await {
                        Ok(o) => o,
                        Err(_) => CaseOutcome::failed(format!("timed out after {t:?}")),
                    },
                    None => fut.await,
                };
                (idx, attempt, outcome, began.elapsed())
            });
            which.insert(handle.id(), (idx, attempt));
        }
    }
    let mut outcomes: Vec<BTreeMap<u32, CaseOutcome>> = vec![BTreeMap::new(); selected.len()];
    let mut failed_runs = 0_u64;
    let mut done = 0_u64;
    while let Some(joined) = tasks.join_next_with_id().await {
        let (idx, attempt, outcome, took) = match joined {
            Ok((_, r)) => r,
            Err(e) => {
                let Some(&(idx, attempt)) = which.get(&e.id()) else {
                    continue;
                };
                let why = if e.is_panic() {
                    "the runner panicked".to_string()
                } else {
                    format!("the run was cancelled: {e}")
                };
                (idx, attempt, CaseOutcome::failed(why), Duration::ZERO)
            }
        };
        done += 1;
        if opts.case_log {
            let case = &selected[idx];
            let passed = crate::score::score_with(case, &outcome, &opts.deny_rules).passed;
            let line = format!(
                "[{done}/{total}] {}{} {} in {:.1} s ({} tokens){}",
                case.id,
                if repeat > 1 {
                    format!(" #{}", attempt + 1)
                } else {
                    String::new()
                },
                if passed { "passed" } else { "FAILED" },
                took.as_secs_f64(),
                outcome.tokens,
                outcome
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            );
            match &progress {
                Some(pb) if !pb.is_hidden() => pb.println(line),
                _ => eprintln!("{line}"),
            }
        }
        if let Some(pb) = &progress {
            let case = &selected[idx];
            let passed = crate::score::score_with(case, &outcome, &opts.deny_rules).passed;
            if !passed {
                failed_runs += 1;
            }
            pb.set_message(format!("{failed_runs} failed · last {}", case.id));
            pb.inc(1);
        }
        outcomes[idx].insert(attempt, outcome);
    }
    if let Some(pb) = &progress {
        pb.finish_with_message(format!("{failed_runs} failed"));
    }
    let results: Vec<(&EvalCase, Vec<CaseOutcome>)> = selected
        .iter()
        .zip(outcomes)
        .map(|(c, o)| (c.as_ref(), o.into_values().collect()))
        .collect();
    let mut report = Report::build(
        &set.name,
        opts.labels.clone(),
        repeat,
        &opts.deny_rules,
        &results,
    );
    report.started_at = Some(started_at);
    report.duration_ms = u64::try_from(clock.elapsed().as_millis()).unwrap_or(u64::MAX);
    let traces = results
        .iter()
        .map(|(case, outcomes)| CaseTrace::build(case, outcomes, &opts.deny_rules))
        .collect();
    TracedReport { report, traces }
}
