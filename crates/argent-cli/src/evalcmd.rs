//! `argent eval run|compare`: offline evals against recorded threads; `run --save` also
//! stores the run in the database, where the web lists it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use argent_evals::{
    AgentRunner, EvalSet, Gate, Labels, ModelChoice, Report, RunOptions, TracedReport, compare,
    deny_rule_ids_in_dir, load_compliance_set, progress_bar, report_summary, run_compliance,
    run_set_traced,
};
use argent_store::{NewEvalRun, NewEvalRunCase, Store};

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Run an eval set (a directory, or a name under evals/) and write a JSON + HTML report.
    /// `--model offline|replay|openai|record-offline|record:DIR|replay:DIR` picks the model
    /// (replay plays each case's cassette; record-offline re-records them; record:DIR runs
    /// the configured endpoint and records each case to DIR/<case id>.json, which
    /// replay:DIR plays back); `--prompts DIR` and `--policies DIR` pick the versions under
    /// evaluation (e.g. a draft's directories).
    Run {
        /// e.g. `core` or `evals/core`.
        set: String,
        /// Runs per case; with k > 1 the report gives pass^k.
        #[arg(long, default_value_t = 1)]
        repeat: u32,
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Comma-separated case id substrings or tag:NAME.
        #[arg(long)]
        filter: Option<String>,
        /// Report path; the HTML page is written beside it.
        #[arg(long, default_value = "out/eval-report.json")]
        out: PathBuf,
        /// Also store the run (report and summary) in the database given by -d, so it is
        /// listed with the web's eval runs; started_by is $USER (or `cli`).
        #[arg(long)]
        save: bool,
        /// With --save: a stored eval run to compare this one with (default gate); the
        /// comparison is printed and stored too.
        #[arg(long, requires = "save")]
        baseline: Option<String>,
        /// With --save: the run's label (default: the set's name).
        #[arg(long, requires = "save")]
        label: Option<String>,
        /// With --save: what was evaluated, free text (default: `active`, or the prompt
        /// and policy directories when they are not the defaults).
        #[arg(long, requires = "save")]
        subject: Option<String>,
    },
    /// Run the content compliance check over its labelled drafts (`evals/compliance`) and
    /// print precision and recall per category and overall, with the check's latency.
    /// `--model offline` (default) is the deterministic classifier; `--model openai` the
    /// model check on the configured endpoint (ARGENT_CHECK_MODEL overrides
    /// ARGENT_LLM_MODEL for it), instructed by the `compliance_check` prompt in --prompts.
    Compliance {
        /// The labelled drafts' directory.
        #[arg(long, default_value = "evals/compliance")]
        dir: PathBuf,
        /// Also write the report (every draft's result and the figures) as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Seconds the check may take per draft before it counts as a hold (an error).
        #[arg(long, default_value_t = 20)]
        timeout_secs: u64,
    },
    /// Compare two reports; exits non-zero when B regresses past the gate.
    Compare {
        a: PathBuf,
        b: PathBuf,
        /// A JSON gate file (fields of argent_evals::Gate); defaults: no drop in success, no violations.
        #[arg(long)]
        gate: Option<PathBuf>,
    },
}

fn dir(p: &Path) -> PathBuf {
    if p.exists() || p.is_absolute() {
        return p.to_path_buf();
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

/// Who started a run from the command line: `$USER`, else `cli`.
fn started_by() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| "cli".to_string())
}

/// What `--save` records besides the report.
struct SaveTo {
    store: Store,
    id: String,
    baseline: Option<Report>,
}

pub async fn eval(
    cmd: EvalCommand,
    models: &crate::agentcmd::ModelArgs,
    database: &str,
) -> Result<()> {
    match cmd {
        EvalCommand::Run {
            set,
            repeat,
            concurrency,
            filter,
            out,
            save,
            baseline,
            label,
            subject,
        } => {
            let evals_root = dir(Path::new("evals"));
            let set_dir = EvalSet::resolve(&set, &evals_root);
            let set = EvalSet::load(&set_dir)?;
            let (prompts_dir, policies_dir) = (dir(&models.prompts), dir(&models.policies));
            let model = ModelChoice::parse(&models.model).map_err(anyhow::Error::msg)?;
            if matches!(model, ModelChoice::RecordTo(_)) && repeat > 1 {
                bail!(
                    "--model {} records one cassette per case: use --repeat 1 (replay:DIR may repeat)",
                    models.model
                );
            }
            let model_label = model.label();
            let prompts_version = argent_agent::PromptSet::load(&prompts_dir)?
                .version()
                .to_string();
            let (_, policies_version) = argent_agent::load_policies(&policies_dir)?;
            let settings = crate::modelcmd::resolve_settings(models)?.agent.settings;
            let mut labels = Labels {
                model: model_label.into(),
                prompts: prompts_version,
                policies: policies_version,
                ..Default::default()
            };
            // The report records the agent's model settings (and, for a live endpoint,
            // which one).
            labels
                .extra
                .insert("model_settings".into(), settings.to_json().to_string());
            let live = model.is_live();
            if live {
                let c = argent_llm::OpenAiConfig::from_env()?;
                labels
                    .extra
                    .insert("endpoint".into(), format!("{} at {}", c.model, c.base_url));
            }
            // A single-slot server only queues what is sent beyond its slots: run no more
            // cases at once than the endpoint takes requests.
            let concurrency = match settings.concurrency {
                Some(n) if live && (n as usize) < concurrency => {
                    eprintln!(
                        "argent: running {n} case(s) at once (the endpoint's concurrency setting; --concurrency {concurrency} asked for more)"
                    );
                    n as usize
                }
                _ => concurrency,
            };
            let runner = Arc::new(
                AgentRunner::new(&prompts_dir, &policies_dir, model).with_settings(Some(settings)),
            );
            let opts = RunOptions {
                case_log: live,
                concurrency,
                repeat,
                filter,
                labels,
                deny_rules: deny_rule_ids_in_dir(&policies_dir)?,
                ..Default::default()
            };
            let save = if save {
                let store = Store::open(database)
                    .await
                    .with_context(|| format!("opening database {database}"))?;
                let baseline_report = match &baseline {
                    Some(id) => Some(stored_report(&store, id).await?),
                    None => None,
                };
                let default_dirs = models.prompts == Path::new("prompts")
                    && models.policies == Path::new("policies");
                let subject = subject.unwrap_or_else(|| {
                    if default_dirs {
                        "active".to_string()
                    } else {
                        format!(
                            "prompts {} · policies {}",
                            models.prompts.display(),
                            models.policies.display()
                        )
                    }
                });
                let id = format!(
                    "eval-{}-{}",
                    chrono::Utc::now().format("%Y%m%d-%H%M%S-%6f"),
                    std::process::id()
                );
                store
                    .insert_eval_run(&NewEvalRun {
                        id: id.clone(),
                        label: label.unwrap_or_else(|| set.name.clone()),
                        model: model_label.to_string(),
                        subject,
                        baseline_id: baseline,
                        started_by: started_by(),
                        ..Default::default()
                    })
                    .await?;
                Some(SaveTo {
                    store,
                    id,
                    baseline: baseline_report,
                })
            } else {
                None
            };
            let pb = progress_bar(set.cases.len() as u64);
            let traced = run_set_traced(&set, runner, opts, Some(pb)).await;
            if let Some(save) = &save {
                save_run(save, &traced).await?;
            }
            let report = traced.report;
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            report.write_json(&out)?;
            let html = out.with_extension("html");
            report.write_html(&html)?;
            print!("{}", report.summary());
            println!("report: {} and {}", out.display(), html.display());
            if let Some(save) = save {
                println!("saved as eval run {}", save.id);
            }
        }
        EvalCommand::Compliance {
            dir: set_dir,
            out,
            timeout_secs,
        } => {
            let check = match models.model.as_str() {
                "offline" | "openai" => crate::agentcmd::build_compliance_check(
                    &models.model,
                    &crate::modelcmd::resolve_settings(models)?
                        .compliance
                        .settings,
                )?,
                other => bail!("--model {other}: the compliance eval takes offline or openai"),
            };
            let drafts = load_compliance_set(&dir(&set_dir))?;
            let prompts = argent_agent::PromptSet::load(&dir(&models.prompts))
                .with_context(|| format!("loading prompts from {}", models.prompts.display()))?;
            let instructions = move |j: argent_core::Jurisdiction| {
                prompts
                    .render(
                        argent_agent::COMPLIANCE_PROMPT,
                        &serde_json::json!({"company": "Argent Supplies", "jurisdiction": j.as_str()}),
                    )
                    .ok()
            };
            let report = run_compliance(
                check.as_ref(),
                &drafts,
                &instructions,
                std::time::Duration::from_secs(timeout_secs.max(1)),
            )
            .await;
            println!("{report}");
            for (id, why) in report.misses() {
                println!("  miss {id}: {why}");
            }
            if let Some(out) = out {
                if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("creating {}", parent.display()))?;
                }
                std::fs::write(&out, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("writing {}", out.display()))?;
                println!("report: {}", out.display());
            }
        }
        EvalCommand::Compare { a, b, gate } => {
            let gate: Gate = match gate {
                Some(p) => serde_json::from_str(
                    &std::fs::read_to_string(&p)
                        .with_context(|| format!("reading {}", p.display()))?,
                )
                .with_context(|| format!("{} is not a gate", p.display()))?,
                None => Gate::default(),
            };
            let cmp = compare(&Report::read_json(&a)?, &Report::read_json(&b)?, &gate);
            print!("{cmp}");
            if cmp.regressed() {
                bail!("{} regresses against {}", b.display(), a.display());
            }
        }
    }
    Ok(())
}

/// A stored, finished eval run's report.
async fn stored_report(store: &Store, id: &str) -> Result<Report> {
    let run = store.eval_run(id).await?;
    let Some(report) = run.report else {
        bail!(
            "eval run {id} has no report (it is {})",
            run.run.status.as_str()
        );
    };
    serde_json::from_value(report).with_context(|| format!("eval run {id}: not an eval report"))
}

/// Stores the finished run with each case's trace (and its comparison with the baseline,
/// printed too).
async fn save_run(save: &SaveTo, traced: &TracedReport) -> Result<()> {
    let report = &traced.report;
    let mut cases = Vec::with_capacity(traced.traces.len());
    for t in &traced.traces {
        cases.push(NewEvalRunCase {
            case_id: t.id.clone(),
            title: t.title.clone(),
            passed: t.passed,
            trace: serde_json::to_value(t)?,
        });
    }
    let mut summary = report_summary(report);
    let mut comparison = None;
    if let Some(base) = &save.baseline {
        let cmp = compare(base, report, &Gate::default());
        print!("{cmp}");
        summary = summary.with_comparison(&cmp);
        comparison = Some(serde_json::to_value(&cmp)?);
    }
    let done = save
        .store
        .finish_eval_run_with_cases(
            &save.id,
            &serde_json::to_value(&summary)?,
            &serde_json::to_value(report)?,
            comparison.as_ref(),
            &cases,
        )
        .await;
    if let Err(e) = done {
        // Best effort: leave the run failed rather than running forever.
        let _ = save.store.fail_eval_run(&save.id, &e.to_string()).await;
        return Err(e.into());
    }
    Ok(())
}
