//! `argent eval run|compare`: offline evals against recorded threads.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

use argent_evals::{
    AgentRunner, EvalSet, Gate, Labels, ModelChoice, Report, RunOptions, compare,
    deny_rule_ids_in_dir, progress_bar, run_set,
};

#[derive(Subcommand, Debug)]
pub enum EvalCommand {
    /// Run an eval set (a directory, or a name under evals/) and write a JSON + HTML report.
    /// `--model offline|replay|openai|record-offline` picks the model (replay plays each
    /// case's cassette; record-offline re-records them); `--prompts DIR` and `--policies DIR`
    /// pick the versions under evaluation (e.g. a draft's directories).
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

pub async fn eval(cmd: EvalCommand, models: &crate::agentcmd::ModelArgs) -> Result<()> {
    match cmd {
        EvalCommand::Run {
            set,
            repeat,
            concurrency,
            filter,
            out,
        } => {
            let evals_root = dir(Path::new("evals"));
            let set_dir = EvalSet::resolve(&set, &evals_root);
            let set = EvalSet::load(&set_dir)?;
            let (prompts_dir, policies_dir) = (dir(&models.prompts), dir(&models.policies));
            let model = match models.model.as_str() {
                "offline" => ModelChoice::Offline,
                "replay" => ModelChoice::Replay,
                "openai" => ModelChoice::OpenAi,
                "record-offline" => ModelChoice::RecordOffline,
                other => bail!(
                    "--model {other}: eval runs take offline, replay, openai or record-offline"
                ),
            };
            let prompts_version = argent_agent::PromptSet::load(&prompts_dir)?
                .version()
                .to_string();
            let (_, policies_version) = argent_agent::load_policies(&policies_dir)?;
            let labels = Labels {
                model: model.label().into(),
                prompts: prompts_version,
                policies: policies_version,
                ..Default::default()
            };
            let runner = Arc::new(AgentRunner {
                prompts_dir,
                policies_dir: policies_dir.clone(),
                model,
            });
            let opts = RunOptions {
                concurrency,
                repeat,
                filter,
                labels,
                deny_rules: deny_rule_ids_in_dir(&policies_dir)?,
                ..Default::default()
            };
            let pb = progress_bar(set.cases.len() as u64);
            let report = run_set(&set, runner, opts, Some(pb)).await;
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            report.write_json(&out)?;
            let html = out.with_extension("html");
            report.write_html(&html)?;
            print!("{}", report.summary());
            println!("report: {} and {}", out.display(), html.display());
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
