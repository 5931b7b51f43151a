//! argent's typed tools: the registry the planner advertises to the model, the JSON Schema
//! of each tool (generated with `schemars` from the same argument type the deserializer
//! uses, and committed as `tools/<name>.json`), and argument validation:
//!
//! raw model text → JSON parse (invalid JSON is an error, never `{}`) → JSON Schema
//! validation (formats on) → typed [`Action`] → [`Action::check`] (what a schema cannot say).
//!
//! Every failure is a [`ToolError`]: a precise, model-visible message naming the JSON
//! pointer and the reason, meant to be sent back to the model so it can retry. Operator
//! problems (a broken schema at start-up) are [`RegistryError`]. Nothing here executes a
//! tool: executors live above, over the store, and take only gated actions.

use std::fmt;
use std::path::Path;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use thiserror::Error;

pub use argent_core::{Action, ToolName};
use argent_core::{
    ArgProblem, Decision, EscalateArgs, LogPromiseArgs, OpenCaseArgs, ProposePlanArgs,
    ReadAgingArgs, RequestCallArgs, SendEmailArgs,
};
use argent_policy::{Context, Policy, evaluate};

/// Largest raw argument text accepted from a model (bytes).
pub const MAX_ARGUMENTS_BYTES: usize = 64 * 1024;
/// At most this many schema errors are reported back in one [`ToolError`].
pub const MAX_REPORTED_ERRORS: usize = 8;

/// One problem with the model's arguments: where (a JSON pointer into the arguments) and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ArgError {
    pub pointer: String,
    pub reason: String,
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() {
            "(root)"
        } else {
            &self.pointer
        };
        write!(f, "{at}: {}", self.reason)
    }
}

impl From<ArgProblem> for ArgError {
    fn from(p: ArgProblem) -> Self {
        ArgError {
            pointer: p.pointer,
            reason: p.problem,
        }
    }
}

fn join(errors: &[ArgError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A tool call the model got wrong. Its `Display` is written for the model: it says what
/// to fix.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ToolError {
    #[error("unknown tool '{name}'; available tools: {available}")]
    UnknownTool { name: String, available: String },
    #[error("arguments for {tool} are not valid JSON: {reason}")]
    InvalidJson { tool: ToolName, reason: String },
    #[error("arguments for {tool} are too large ({bytes} bytes; at most {max})")]
    TooLarge {
        tool: ToolName,
        bytes: usize,
        max: usize,
    },
    #[error("arguments for {tool} do not match its schema: {}", join(.errors))]
    Schema {
        tool: ToolName,
        errors: Vec<ArgError>,
    },
    #[error("arguments for {tool} are inconsistent: {}", join(.errors))]
    Semantic {
        tool: ToolName,
        errors: Vec<ArgError>,
    },
}

impl ToolError {
    /// The problems with their JSON pointers (empty for unknown tool / invalid JSON).
    pub fn errors(&self) -> &[ArgError] {
        match self {
            ToolError::Schema { errors, .. } | ToolError::Semantic { errors, .. } => errors,
            _ => &[],
        }
    }
}

/// Operator-facing problems with the registry itself (not the model's fault).
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("the generated schema of {tool} does not compile: {reason}")]
    BadSchema { tool: ToolName, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot serialize the definition of {tool}: {reason}")]
    Serialize { tool: ToolName, reason: String },
}

/// A tool as the model sees it.
pub trait Tool: Send + Sync {
    fn name(&self) -> ToolName;
    fn description(&self) -> &'static str;
    /// JSON Schema of the arguments (generated from the argument type).
    fn parameters(&self) -> Value;
    /// Deserializes schema-valid arguments into the typed action.
    fn to_action(&self, args: Value) -> Result<Action, serde_json::Error>;
}

struct TypedTool<A> {
    name: ToolName,
    description: &'static str,
    wrap: fn(A) -> Action,
}

impl<A: JsonSchema + DeserializeOwned + Send + Sync> Tool for TypedTool<A> {
    fn name(&self) -> ToolName {
        self.name
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn parameters(&self) -> Value {
        let generator = SchemaSettings::draft2020_12()
            .with(|s| {
                s.inline_subschemas = true;
                s.meta_schema = None;
            })
            .into_generator();
        let mut schema = generator.into_root_schema_for::<A>().to_value();
        if let Some(obj) = schema.as_object_mut() {
            // The tool's description says it; keep the parameters object lean.
            obj.remove("title");
            obj.remove("description");
        }
        schema
    }
    fn to_action(&self, args: Value) -> Result<Action, serde_json::Error> {
        serde_json::from_value::<A>(args).map(self.wrap)
    }
}

fn typed<A: JsonSchema + DeserializeOwned + Send + Sync + 'static>(
    name: ToolName,
    description: &'static str,
    wrap: fn(A) -> Action,
) -> Box<dyn Tool> {
    Box::new(TypedTool {
        name,
        description,
        wrap,
    })
}

/// The built-in tools, in [`ToolName::ALL`] order.
pub fn builtin_tools() -> Vec<Box<dyn Tool>> {
    vec![
        typed::<ReadAgingArgs>(
            ToolName::ReadAging,
            "Show the aging of the customer's open invoices (balances by days past due). Read-only.",
            Action::ReadAging,
        ),
        typed::<SendEmailArgs>(
            ToolName::SendEmail,
            "Send an email to the debtor at a contact address on file. Include the disclosures the customer's jurisdiction requires. Policy decides whether it is sent, held for approval or refused.",
            Action::SendEmail,
        ),
        typed::<LogPromiseArgs>(
            ToolName::LogPromise,
            "Record the debtor's promise to pay an amount by a date. Amounts are decimal strings with a currency code.",
            Action::LogPromise,
        ),
        typed::<OpenCaseArgs>(
            ToolName::OpenCase,
            "Open a case for a person: a dispute (pauses collection on the invoices named), hardship, a payment the debtor says was sent, or a question.",
            Action::OpenCase,
        ),
        typed::<ProposePlanArgs>(
            ToolName::ProposePlan,
            "Propose a payment plan: optional discount, a down payment and installments on increasing dates that together settle the balance. Plans outside the policy's range wait for human approval.",
            Action::ProposePlan,
        ),
        typed::<EscalateArgs>(
            ToolName::Escalate,
            "Hand the account to a person, with the reason and urgency.",
            Action::Escalate,
        ),
        typed::<RequestCallArgs>(
            ToolName::RequestCall,
            "Ask a collector to telephone the debtor (calls are made by people): the reason, what to say (with the disclosures the jurisdiction requires) and optionally the earliest time. Policy judges call frequency, quiet hours and the customer's stated times and channel.",
            Action::RequestCall,
        ),
    ]
}

struct Entry {
    tool: Box<dyn Tool>,
    parameters: Value,
    validator: jsonschema::Validator,
}

/// The tools, their schemas and compiled validators.
pub struct Registry {
    entries: Vec<Entry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|e| e.tool.name()))
            .finish()
    }
}

/// A tool definition as committed in tools/<name>.json and sent to the model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ToolDefinition {
    pub name: String,
    pub description: String,
    pub parameters: Value,
}

impl Registry {
    /// The registry of the built-in tools, with validators compiled once.
    pub fn builtin() -> Result<Registry, RegistryError> {
        Registry::new(builtin_tools())
    }

    pub fn new(tools: Vec<Box<dyn Tool>>) -> Result<Registry, RegistryError> {
        let mut entries = Vec::with_capacity(tools.len());
        for tool in tools {
            let parameters = tool.parameters();
            let validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&parameters)
                .map_err(|e| RegistryError::BadSchema {
                    tool: tool.name(),
                    reason: e.to_string(),
                })?;
            entries.push(Entry {
                tool,
                parameters,
                validator,
            });
        }
        Ok(Registry { entries })
    }

    pub fn names(&self) -> Vec<ToolName> {
        self.entries.iter().map(|e| e.tool.name()).collect()
    }

    fn entry(&self, name: &str) -> Result<&Entry, ToolError> {
        self.entries
            .iter()
            .find(|e| e.tool.name().as_str() == name)
            .ok_or_else(|| ToolError::UnknownTool {
                name: name.chars().take(64).collect(),
                available: self
                    .entries
                    .iter()
                    .map(|e| e.tool.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The definitions to advertise to the model.
    pub fn definitions(&self) -> Vec<ToolDefinition> {
        self.entries
            .iter()
            .map(|e| ToolDefinition {
                name: e.tool.name().as_str().to_string(),
                description: e.tool.description().to_string(),
                parameters: e.parameters.clone(),
            })
            .collect()
    }

    /// The committed form of one definition: pretty JSON with a trailing newline.
    pub fn definition_json(def: &ToolDefinition) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(def).map(|s| s + "\n")
    }

    /// Validates raw argument text from the model for tool `name` and returns the typed
    /// action. Never panics; every failure is a model-visible [`ToolError`].
    pub fn parse(&self, name: &str, raw_arguments: &str) -> Result<Action, ToolError> {
        let entry = self.entry(name)?;
        let tool = entry.tool.name();
        if raw_arguments.len() > MAX_ARGUMENTS_BYTES {
            return Err(ToolError::TooLarge {
                tool,
                bytes: raw_arguments.len(),
                max: MAX_ARGUMENTS_BYTES,
            });
        }
        let value: Value =
            serde_json::from_str(raw_arguments).map_err(|e| ToolError::InvalidJson {
                tool,
                reason: e.to_string(),
            })?;
        self.validate_value(entry, value)
    }

    /// Like [`Registry::parse`] for arguments already parsed as JSON.
    pub fn parse_value(&self, name: &str, arguments: Value) -> Result<Action, ToolError> {
        let entry = self.entry(name)?;
        self.validate_value(entry, arguments)
    }

    fn validate_value(&self, entry: &Entry, value: Value) -> Result<Action, ToolError> {
        let tool = entry.tool.name();
        if !entry.validator.is_valid(&value) {
            let errors: Vec<ArgError> = entry
                .validator
                .iter_errors(&value)
                .take(MAX_REPORTED_ERRORS)
                .map(|e| ArgError {
                    pointer: e.instance_path().as_str().to_string(),
                    reason: e.to_string(),
                })
                .collect();
            return Err(ToolError::Schema {
                tool,
                errors: if errors.is_empty() {
                    vec![ArgError {
                        pointer: String::new(),
                        reason: "does not match the schema".into(),
                    }]
                } else {
                    errors
                },
            });
        }
        let action = entry.tool.to_action(value).map_err(|e| ToolError::Schema {
            tool,
            errors: vec![ArgError {
                pointer: String::new(),
                reason: e.to_string(),
            }],
        })?;
        action.check().map_err(|problems| ToolError::Semantic {
            tool,
            errors: problems.into_iter().map(ArgError::from).collect(),
        })?;
        Ok(action)
    }

    /// Parses the call and judges it: the model-visible error, or the typed action with the
    /// policy decision. (The gate that turns an `allow` into an executable action lives
    /// with the executors.)
    pub fn parse_and_judge(
        &self,
        name: &str,
        raw_arguments: &str,
        policy: &Policy,
        ctx: &Context,
    ) -> Result<(Action, Decision), ToolError> {
        let action = self.parse(name, raw_arguments)?;
        let decision = evaluate(policy, &action, ctx);
        Ok((action, decision))
    }

    /// Compares every generated definition with `dir/<name>.json`; returns the names whose
    /// committed file is missing or differs. With `bless`, rewrites them instead.
    pub fn check_committed(&self, dir: &Path, bless: bool) -> Result<Vec<String>, RegistryError> {
        let mut stale = Vec::new();
        for def in self.definitions() {
            let path = dir.join(format!("{}.json", def.name));
            let want = Registry::definition_json(&def).map_err(|e| RegistryError::Serialize {
                tool: def.name.parse().unwrap_or(ToolName::ReadAging),
                reason: e.to_string(),
            })?;
            let have = std::fs::read_to_string(&path).ok();
            if have.as_deref() != Some(want.as_str()) {
                if bless {
                    std::fs::write(&path, &want).map_err(|source| RegistryError::Io {
                        path: path.display().to_string(),
                        source,
                    })?;
                } else {
                    stale.push(def.name.clone());
                }
            }
        }
        Ok(stale)
    }
}
