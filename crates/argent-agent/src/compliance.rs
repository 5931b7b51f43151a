//! The second content check: after the policy's rules allow or queue a `send_email` draft,
//! a compliance check reads it for meaning and may hold it for a person. It can only
//! tighten.
//!
//! - A [`ComplianceCheck`] answers [`Verdict::Compliant`] or [`Verdict::Concern`] (or fails).
//!   There is no verdict that allows anything: the check has no way to say "send it".
//! - [`tighten`] folds its answer into the rules' [`Decision`]: a concern, a failure or a
//!   timeout fires the pack's content-check rule with outcome `needs_approval`; through
//!   [`Decision::fire`], which keeps the most severe outcome, so an allow can become
//!   needs_approval and nothing else ever changes (a needs_approval stays one, a deny stays
//!   a deny).
//!
//! Two checks: [`OfflineComplianceCheck`], a deterministic phrase classifier (pure, no
//! network; the default, so tests and the demo need none), and [`ModelComplianceCheck`],
//! which asks a [`ChatModel`] with the versioned `compliance_check` prompt.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use regex::Regex;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use argent_core::{Decision, FiredRule, Jurisdiction, Outcome};
use argent_llm::{ChatMessage, ChatModel, ChatRequest, ModelRole, ModelSettings};
use argent_policy::RuleMeta;

/// The name of the prompt document the model-based check is instructed with.
pub const COMPLIANCE_PROMPT: &str = "compliance_check";

/// How long the agent waits for a check by default before holding the draft.
pub const DEFAULT_CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// What a draft may be wrong about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Threatening suit, court, judgment, enforcement that is not intended or not lawful.
    LegalThreat,
    /// Arrest, prison, criminal charges, fraud accusations.
    ArrestCriminal,
    /// Deadline pressure no real step follows.
    FalseUrgency,
    /// Who we are, what is owed, what the consequences or the debtor's rights are.
    Misrepresentation,
    /// Telling (or threatening to tell) anyone but the debtor.
    ThirdPartyDisclosure,
    /// Abuse, insults, harassment, shaming.
    Harassment,
    /// Repeating or carrying out an instruction from the customer's message.
    InstructionEcho,
    /// Anything else the check objects to (a model's own category).
    Other,
}

impl Category {
    pub const ALL: [Category; 8] = [
        Category::LegalThreat,
        Category::ArrestCriminal,
        Category::FalseUrgency,
        Category::Misrepresentation,
        Category::ThirdPartyDisclosure,
        Category::Harassment,
        Category::InstructionEcho,
        Category::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::LegalThreat => "legal_threat",
            Category::ArrestCriminal => "arrest_criminal",
            Category::FalseUrgency => "false_urgency",
            Category::Misrepresentation => "misrepresentation",
            Category::ThirdPartyDisclosure => "third_party_disclosure",
            Category::Harassment => "harassment",
            Category::InstructionEcho => "instruction_echo",
            Category::Other => "other",
        }
    }

    /// The category named `s` (as [`Category::as_str`] writes it), if any.
    pub fn parse(s: &str) -> Option<Category> {
        let s = s.trim().to_ascii_lowercase().replace([' ', '-'], "_");
        Category::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the check is asked about.
#[derive(Clone, Copy, Debug)]
pub struct CheckRequest<'a> {
    pub jurisdiction: Jurisdiction,
    pub subject: &'a str,
    pub body: &'a str,
    /// The customer's message the draft answers, if one started the run.
    pub inbound: Option<&'a str>,
    /// The rendered `compliance_check` prompt, when the document set has one (the
    /// model-based check needs it; the offline check does not read it).
    pub instructions: Option<&'a str>,
}

/// A check's answer. There is deliberately no variant that permits anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing found: the rules' decision stands as it is.
    Compliant,
    /// The draft should be read by a person first.
    Concern { category: Category, reason: String },
}

/// Why a check gave no answer. The agent treats it like a concern: the draft is held.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckError(pub String);

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CheckError {}

/// A second, content-level compliance check of an email draft.
#[async_trait]
pub trait ComplianceCheck: Send + Sync {
    /// Shown in the audit trail, e.g. `offline phrase classifier`.
    fn name(&self) -> String;
    async fn check(&self, req: &CheckRequest<'_>) -> Result<Verdict, CheckError>;
}

/// One run of a check: its answer (or why there was none) and how long it took.
#[derive(Clone, Debug)]
pub struct CheckOutcome {
    pub checker: String,
    pub result: Result<Verdict, CheckError>,
    pub latency: Duration,
}

impl CheckOutcome {
    /// Whether the draft is held: a concern, an error or a timeout.
    pub fn holds(&self) -> bool {
        !matches!(self.result, Ok(Verdict::Compliant))
    }

    /// The reason shown to the reviewer when the draft is held.
    pub fn reason(&self) -> Option<String> {
        match &self.result {
            Ok(Verdict::Compliant) => None,
            Ok(Verdict::Concern { category, reason }) => Some(format!("{category}: {reason}")),
            Err(e) => Some(format!(
                "the compliance check gave no answer ({e}); held for a person"
            )),
        }
    }

    /// The audit event payload (`content_check`).
    pub fn event(&self, call_id: &str) -> Value {
        let (verdict, category, reason) = match &self.result {
            Ok(Verdict::Compliant) => ("compliant", None, None),
            Ok(Verdict::Concern { category, reason }) => {
                ("concern", Some(category.as_str()), Some(reason.clone()))
            }
            Err(e) => ("error", None, Some(e.0.clone())),
        };
        json!({
            "call_id": call_id,
            "checker": self.checker,
            "verdict": verdict,
            "category": category,
            "reason": reason,
            "held": self.holds(),
            "latency_us": u64::try_from(self.latency.as_micros()).unwrap_or(u64::MAX),
        })
    }
}

/// Runs `check` with a deadline: past `timeout` the outcome is an error (the draft is
/// held), never an allow.
pub async fn run_check(
    check: &dyn ComplianceCheck,
    req: &CheckRequest<'_>,
    timeout: Duration,
) -> CheckOutcome {
    let started = Instant::now();
    let result = match tokio::time::timeout(timeout, check.check(req)).await {
        Ok(r) => r,
        Err(_) => Err(CheckError(format!(
            "timed out after {} ms",
            timeout.as_millis()
        ))),
    };
    CheckOutcome {
        checker: check.name(),
        result,
        latency: started.elapsed(),
    }
}

/// Folds a check's outcome into the rules' decision. A concern or a failure fires `rule`
/// (the pack's content-check rule) as `needs_approval` with the check's reason, whatever
/// effect `rule` names; a compliant answer changes nothing. The outcome can only become
/// more severe: allow → needs_approval; needs_approval and deny stay as they are.
pub fn tighten(decision: &mut Decision, rule: &RuleMeta, outcome: &CheckOutcome) {
    let Some(reason) = outcome.reason() else {
        return;
    };
    decision.fire(FiredRule {
        id: rule.id.clone(),
        outcome: Outcome::NeedsApproval,
        message: format!("{} ({reason})", rule.message),
        citation: rule.citation.clone(),
        approvers: rule.approvers.clone(),
    });
}

// ---------------------------------------------------------------------------------------
// The offline check: a deterministic phrase classifier.

/// A cue: a pattern and how strongly it suggests its category (a category is flagged at a
/// score of 2 or more).
struct Cue {
    category: Category,
    weight: u32,
    label: &'static str,
    re: Regex,
}

/// (category, weight, label, pattern). Written for meaning, broader than the packs' deny
/// families: this only holds a draft for a person.
const CUES: &[(Category, u32, &str, &str)] = &[
    // Legal threats, including the veiled ones.
    (
        Category::LegalThreat,
        2,
        "court or judgment",
        r"(?i)\b(court|county court|ccj|judg(e)?ment|lawsuit|sue|suing|litigation|legal proceedings|proceedings|small claims|claim form|bailiffs?|enforcement agents?|high court enforcement|sheriff|garnish\w*|wage (attachment|deduction)|attachment of earnings|charging order|lien|levy|seiz\w+|repossess\w*|winding[- ]up|statutory demand)\b",
    ),
    (
        Category::LegalThreat,
        2,
        "hand-over to lawyers",
        r"(?i)\b(pass|refer|hand|forward|transfer|escalate|instruct)\w*\b[^.!?\n]{0,40}\b(legal|solicitors?|attorneys?|lawyers?|litigation|recovery agents?|debt recovery)\b",
    ),
    (
        Category::LegalThreat,
        1,
        "further action",
        r"(?i)\b(further|formal|next) (action|steps|measures)\b|\b(no (other )?(choice|option|alternative) but to)\b|\bwithout further (notice|warning)\b",
    ),
    (
        Category::LegalThreat,
        1,
        "legal wording",
        r"(?i)\b(legal|legally)\b",
    ),
    // Arrest and criminal consequences.
    (
        Category::ArrestCriminal,
        2,
        "criminal consequences",
        r"(?i)\b(arrest\w*|jail|prison|police|criminal|crime|prosecut\w+|fraud\w*|theft|warrant|offen[cs]e|law enforcement|authorities|deport\w*)\b",
    ),
    // False urgency.
    (
        Category::FalseUrgency,
        2,
        "hour-scale deadline",
        r"(?i)\bwithin (the next )?(\d{1,3}|twenty[- ]four|forty[- ]eight|seventy[- ]two|one|two|three|a few) hours?\b|\b(by|before) (midnight|tonight|close of business|end of (the )?day|5 ?pm|17:00)\b",
    ),
    (
        Category::FalseUrgency,
        2,
        "final or last chance",
        r"(?i)\b(final|last) (notice|warning|chance|opportunity|reminder|demand)\b",
    ),
    (
        Category::FalseUrgency,
        1,
        "urgency words",
        r"(?i)\b(urgent(ly)?|immediate(ly)?|without delay|right away|at once|asap|time is running out|expires?|deadline|today)\b",
    ),
    (
        Category::FalseUrgency,
        1,
        "or else",
        r"(?i)\bor (else|we will|we'll|your account will)\b|\botherwise\b|\bfailing (which|that|this)\b",
    ),
    // Misrepresentation of who we are, the amount, the rights or the consequences.
    (
        Category::Misrepresentation,
        2,
        "posing as lawyers or officials",
        r"(?i)\b(our|the) (legal (department|team)|lawyers|attorneys|solicitors)\b|\b(law firm|government|official|federal|hmrc|irs|court[- ]appointed|court officer)\b",
    ),
    (
        Category::Misrepresentation,
        2,
        "credit damage",
        r"(?i)\bcredit (score|rating|file|report|record|history|worthiness)\b|\b(credit (bureaus?|reference agenc\w+|agencies)|black-?list\w*)\b",
    ),
    (
        Category::Misrepresentation,
        2,
        "fees or charges",
        r"(?i)\b(fees?|surcharges?|penalt(y|ies)|charges?) (of|will|have|has|are|is|may|could|would)\b|\b(add|apply|impose|charge|incur)\w*\b[^.!?\n]{0,25}\b(fees?|surcharges?|penalt(y|ies)|charges?)\b",
    ),
    (
        Category::Misrepresentation,
        2,
        "rights denied",
        r"(?i)\b(can ?not|can't|may not|no (right|longer able)|not (entitled|allowed)) (to )?(dispute|challenge|contest|query)\b|\bnon[- ]negotiable\b|\b(must|have to) pay (the full|in full|regardless)\b",
    ),
    (
        Category::Misrepresentation,
        2,
        "status claimed",
        r"(?i)\b(marked|recorded|noted|updated|flagged|treated)\b[^.!?\n]{0,30}\b(settled|paid in full|closed|written off|resolved|cleared|zero)\b|\b(waived|forgiven|written off|cancell?ed)\b",
    ),
    // Third parties.
    (
        Category::ThirdPartyDisclosure,
        2,
        "third parties named",
        r"(?i)\byour (employer|boss|manager|workplace|colleagues?|co-?workers?|hr|human resources|family|spouse|wife|husband|partner|parents?|relatives?|neighbou?rs?|friends?|children|landlord|references?|customers|clients|suppliers|bank|lenders?|investors)\b",
    ),
    (
        Category::ThirdPartyDisclosure,
        1,
        "others finding out",
        r"(?i)\b(find out|become aware|be told|be informed|be notified|hear about|embarrass\w*|publicly|public record|social media|online)\b",
    ),
    // Harassment and abuse.
    (
        Category::Harassment,
        2,
        "insults",
        r"(?i)\b(idiot|stupid|deadbeat|liar|loser|scum\w*|pathetic|moron|worthless|disgrace\w*|lazy|irresponsible|shame\w*|ashamed|excuses?|dishonest|freeloader|parasite|cowboy|incompetent|ridiculous|unacceptable|disgusting|crook|cheat)\b",
    ),
    (
        Category::Harassment,
        2,
        "persistence threats",
        r"(?i)\b(keep|continue|won't stop|will not stop|not stop)\b[^.!?\n]{0,20}\b(calling|emailing|contacting|chasing|writing|texting)\b|\b(every|each) (day|hour)\b|\bwe know where\b|\bwatching\b",
    ),
    (
        Category::Harassment,
        1,
        "hostile tone",
        r"(?i)\b(ignor(ed|ing) (us|our|every)|frankly|enough is enough|our patience|tired of|sick of|no more)\b",
    ),
    // Instruction echo.
    (
        Category::InstructionEcho,
        2,
        "acting on the customer's instruction",
        r"(?i)\b(as|per) (you )?(instructed|requested|directed|asked|demanded)\b[^.!?\n]{0,60}\b(we have|we've|has been|have been|marked|waived|reduced|applied|removed|cancell?ed|settled|closed|discount)\b|\b(your|the) (instructions?|directions?)\b",
    ),
    (
        Category::InstructionEcho,
        2,
        "policy amendment or override",
        r"(?i)\b(policy|policies|rules?|procedure|system|prompt|compliance) (amendment|update|override|change|exception|notice|instruction)s?\b|\b(amended|updated|changed) (policy|policies|rules?)\b|\b(ignore|disregard) (all |any )?(previous|prior|earlier|above) \w+",
    ),
    (
        Category::InstructionEcho,
        1,
        "discount or waiver granted",
        r"(?i)\b(discount|waiver|write[- ]off|reduction) (has been|have been|is|was) (applied|approved|granted|authori[sz]ed)\b|\b\d{1,3} ?(%|per ?cent) (discount|off|reduction)\b",
    ),
];

/// Sentences that only restate a right or a safeguard, e.g. "we will not contact your
/// employer", "we are not a law firm": cues inside them do not count.
const REASSURANCE: &str = r"(?i)\b(not|never|no|don't|do not|won't|will not|cannot|can't|isn't|aren't|without)\b[^.!?\n]{0,40}\b(contact|tell|inform|share|disclose|discuss|report|charge|add|apply|affect|court|legal|law firm|lawyers?|attorneys?|government|agency|employer|family|fees?|penalt(y|ies)|credit)\b";

fn cues() -> &'static [Cue] {
    static C: OnceLock<Vec<Cue>> = OnceLock::new();
    C.get_or_init(|| {
        CUES.iter()
            .filter_map(|(category, weight, label, pattern)| {
                Regex::new(pattern).ok().map(|re| Cue {
                    category: *category,
                    weight: *weight,
                    label,
                    re,
                })
            })
            .collect()
    })
}

fn reassurance() -> Option<&'static Regex> {
    static R: OnceLock<Option<Regex>> = OnceLock::new();
    R.get_or_init(|| Regex::new(REASSURANCE).ok()).as_ref()
}

/// The deterministic offline check: weighted phrase cues per category, read sentence by
/// sentence over the normalised subject and body, skipping the pack's standard footer
/// (the disclosures) and sentences that only state a safeguard ("we will not contact your
/// employer"). A category scoring 2 or more is a concern; the highest-scoring one is
/// reported with the phrases that made it. With an inbound message, a draft that repeats
/// five or more consecutive words of it next to an instruction cue is an instruction echo.
#[derive(Clone, Copy, Debug, Default)]
pub struct OfflineComplianceCheck;

/// The standard footers' sentences (disclosures, opt-out, debt advice), which mention
/// disputes, debt collectors and advice services on purpose.
const FOOTER: &str = r"(?i)\b(debt collector|attempting to collect a debt|information obtained will be used|dispute the validity|within 30 days after receiving|we will assume it is valid|opt[- ]?out|unsubscribe|stop receiving|reply stop|moneyhelper|debt advice|stepchange|citizens advice|national debtline|accounts receivable\. questions)\b";

/// What an instruction to the agent inside a customer's message looks like.
const INBOUND_INSTRUCTION: &str = r"(?i)\b(ignore|disregard|forget|override)\b[^.!?\n]{0,40}\b(instructions?|rules|polic(y|ies)|prompts?)\b|\b(system|admin(istrator)?|developer|assistant|ai)\s*(prompt|message|note|override|mode|instructions?)\b|\b(polic(y|ies)|rules?) (was|were|has been|have been) (amended|updated|changed|waived)\b|\b(mark|record|set|flag|update|close|treat)\b[^.!?\n]{0,40}\b(settled|paid|closed|zero|written off|cleared|resolved)\b|\b(waive|cancel|write off|forgive|remove|delete)\b[^.!?\n]{0,30}\b(balance|debt|fees?|interest|invoices?|charges?|account)\b|\b(reply|respond|confirm|state|say|write)\b[^.!?\n]{0,40}\b(that|confirming)\b";

fn inbound_instruction() -> Option<&'static Regex> {
    static R: OnceLock<Option<Regex>> = OnceLock::new();
    R.get_or_init(|| Regex::new(INBOUND_INSTRUCTION).ok())
        .as_ref()
}

fn footer() -> Option<&'static Regex> {
    static R: OnceLock<Option<Regex>> = OnceLock::new();
    R.get_or_init(|| Regex::new(FOOTER).ok()).as_ref()
}

impl OfflineComplianceCheck {
    /// The verdict, synchronously (the check is pure).
    pub fn classify(&self, req: &CheckRequest<'_>) -> Verdict {
        let mut scores: Vec<(Category, u32, Vec<&'static str>)> = Vec::new();
        let mut add = |category: Category, weight: u32, label: &'static str| match scores
            .iter_mut()
            .find(|(c, _, _)| *c == category)
        {
            Some((_, s, labels)) => {
                *s += weight;
                if !labels.contains(&label) {
                    labels.push(label);
                }
            }
            None => scores.push((category, weight, vec![label])),
        };
        let subject = argent_policy::text::normalize(req.subject);
        let body = argent_policy::text::normalize(req.body);
        let mut seen: Vec<&'static str> = Vec::new();
        for text in [subject.as_ref(), body.as_ref()] {
            for range in argent_policy::text::sentences(text) {
                let sentence = &text[range];
                if footer().is_some_and(|r| r.is_match(sentence))
                    || reassurance().is_some_and(|r| r.is_match(sentence))
                {
                    continue;
                }
                for cue in cues() {
                    // A cue counts once per draft.
                    if !seen.contains(&cue.label) && cue.re.is_match(sentence) {
                        seen.push(cue.label);
                        add(cue.category, cue.weight, cue.label);
                    }
                }
            }
        }
        if let Some(inbound) = req.inbound
            && inbound_instruction()
                .is_some_and(|r| r.is_match(&argent_policy::text::normalize(inbound)))
            && echoed_words(inbound, &body, 5).is_some()
        {
            add(
                Category::InstructionEcho,
                2,
                "repeats the instruction in the customer's message",
            );
        }
        let best = scores
            .into_iter()
            .filter(|(_, s, _)| *s >= 2)
            .max_by(|a, b| a.1.cmp(&b.1).then(tie_rank(b.0).cmp(&tie_rank(a.0))));
        match best {
            None => Verdict::Compliant,
            Some((category, score, labels)) => Verdict::Concern {
                category,
                reason: format!("offline classifier: {} (score {score})", labels.join(", ")),
            },
        }
    }
}

/// Which category names a draft when two score the same: the more specific reading first
/// (a status claimed "as you requested" is an echo before it is a misstatement).
fn tie_rank(c: Category) -> usize {
    match c {
        Category::InstructionEcho => 0,
        Category::ArrestCriminal => 1,
        Category::LegalThreat => 2,
        Category::ThirdPartyDisclosure => 3,
        Category::Harassment => 4,
        Category::FalseUrgency => 5,
        Category::Misrepresentation => 6,
        Category::Other => 7,
    }
}

/// The first run of `k` consecutive words of `inbound` that `draft` repeats, if any.
fn echoed_words(inbound: &str, draft: &str, k: usize) -> Option<String> {
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_lowercase)
            .collect()
    };
    let inbound = argent_policy::text::normalize(inbound);
    let a = words(&inbound);
    let b = words(draft);
    let shingles: std::collections::HashSet<&[String]> = a.windows(k).collect();
    b.windows(k)
        .find(|w| shingles.contains(w))
        .map(|w| w.join(" "))
}

#[async_trait]
impl ComplianceCheck for OfflineComplianceCheck {
    fn name(&self) -> String {
        "offline phrase classifier".to_string()
    }

    async fn check(&self, req: &CheckRequest<'_>) -> Result<Verdict, CheckError> {
        Ok(self.classify(req))
    }
}

// ---------------------------------------------------------------------------------------
// The model-based check.

/// Asks a chat model, instructed by the rendered `compliance_check` prompt, for a JSON
/// verdict `{"compliant": bool, "category": "...", "reason": "..."}`. Anything else (no
/// prompt, a model error, text that is not that JSON) is an error, so the draft is held.
pub struct ModelComplianceCheck {
    model: Arc<dyn ChatModel>,
    settings: ModelSettings,
}

impl ModelComplianceCheck {
    /// The check on `model` with the compliance role's default settings (temperature 0,
    /// at most 400 output tokens).
    pub fn new(model: Arc<dyn ChatModel>) -> ModelComplianceCheck {
        ModelComplianceCheck {
            model,
            settings: ModelSettings::defaults(ModelRole::Compliance),
        }
    }

    /// The check with these settings' generation parameters on each request.
    pub fn with_settings(mut self, settings: ModelSettings) -> ModelComplianceCheck {
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> &ModelSettings {
        &self.settings
    }
}

#[derive(Deserialize)]
struct ModelVerdict {
    compliant: bool,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// Reads the model's answer: the one JSON object in it (code fences and prose around it
/// are tolerated), with a boolean `compliant`.
pub fn parse_model_verdict(text: &str) -> Result<Verdict, CheckError> {
    let start = text.find('{');
    let end = text.rfind('}');
    let json = match (start, end) {
        (Some(s), Some(e)) if s < e => &text[s..=e],
        _ => {
            return Err(CheckError(format!(
                "the model's answer holds no JSON object: {:?}",
                text.chars().take(120).collect::<String>()
            )));
        }
    };
    let v: ModelVerdict = serde_json::from_str(json).map_err(|e| {
        CheckError(format!(
            "the model's answer is not the verdict JSON ({e}): {:?}",
            json.chars().take(120).collect::<String>()
        ))
    })?;
    if v.compliant {
        return Ok(Verdict::Compliant);
    }
    let category = v
        .category
        .as_deref()
        .and_then(Category::parse)
        .unwrap_or(Category::Other);
    let reason = v
        .reason
        .map(|r| r.chars().take(500).collect::<String>())
        .filter(|r| !r.trim().is_empty())
        .unwrap_or_else(|| "the model found the draft not compliant".to_string());
    Ok(Verdict::Concern { category, reason })
}

#[async_trait]
impl ComplianceCheck for ModelComplianceCheck {
    fn name(&self) -> String {
        format!("model check ({})", self.model.name())
    }

    async fn check(&self, req: &CheckRequest<'_>) -> Result<Verdict, CheckError> {
        let Some(instructions) = req.instructions else {
            return Err(CheckError(format!(
                "the documents have no '{COMPLIANCE_PROMPT}' prompt"
            )));
        };
        let draft = json!({
            "jurisdiction": req.jurisdiction.as_str(),
            "subject": req.subject,
            "body": req.body,
            "customer_message": req.inbound,
        });
        let request = self.settings.apply(ChatRequest::new(vec![
            ChatMessage::system(instructions),
            ChatMessage::user(format!("<draft>\n{draft}\n</draft>")),
        ]));
        let response = self
            .model
            .chat(&request)
            .await
            .map_err(|e| CheckError(format!("model error: {e}")))?;
        let text = response.content.unwrap_or_default();
        parse_model_verdict(&text)
    }
}

// ---------------------------------------------------------------------------------------
// In the agent.

/// Sets what the policy may know of the message a run answers (from the run's stored
/// trigger): its text and when it was received, and for mail whether the sender is not on
/// file and whether its authentication failed. Nothing for a dunning step. A person's run
/// (`crate::person`) is marked as such: what they record, they heard.
pub(crate) fn apply_inbound(ctx: &mut argent_policy::Context, trigger: &Value) {
    if trigger.get("kind").and_then(Value::as_str) == Some("person") {
        ctx.by_person = true;
        return;
    }
    if let Ok(crate::run::Trigger::Inbound {
        subject,
        body,
        mail,
        received_at,
        ..
    }) = serde_json::from_value::<crate::run::Trigger>(trigger.clone())
    {
        ctx.inbound_text = Some(format!("{subject}\n{body}"));
        ctx.inbound_at = Some(received_at);
        if let Some(m) = mail {
            ctx.inbound_sender_not_on_file = !m.sender_on_file;
            ctx.inbound_auth_failed = m.auth_failed;
        }
    }
}

impl crate::Agent {
    /// Runs the content check on an email draft the rules allowed or queued and folds its
    /// answer into `decision` (see [`tighten`]). Anything else (another tool, a deny) is
    /// not checked: `None`.
    pub(crate) async fn check_content(
        &self,
        policy: &argent_policy::Policy,
        action: &argent_core::Action,
        inbound: Option<&str>,
        decision: &mut Decision,
    ) -> Option<CheckOutcome> {
        let argent_core::Action::SendEmail(email) = action else {
            return None;
        };
        if decision.outcome == Outcome::Deny {
            return None;
        }
        let instructions = self
            .prompts
            .render(
                COMPLIANCE_PROMPT,
                &json!({"company": self.config.company, "jurisdiction": policy.jurisdiction.as_str()}),
            )
            .ok();
        let req = CheckRequest {
            jurisdiction: policy.jurisdiction,
            subject: &email.subject,
            body: &email.body,
            inbound,
            instructions: instructions.as_deref(),
        };
        let outcome = run_check(
            self.compliance.as_ref(),
            &req,
            self.config.compliance_timeout,
        )
        .await;
        tighten(decision, &policy.content_check_rule(), &outcome);
        Some(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argent_core::Role;
    use argent_policy::Effect;

    fn rule() -> RuleMeta {
        RuleMeta {
            id: "us.content-check".into(),
            effect: Effect::NeedsApproval,
            message: "held".into(),
            citation: "c".into(),
            approvers: vec![Role::Collector, Role::Manager],
        }
    }

    fn outcome(result: Result<Verdict, CheckError>) -> CheckOutcome {
        CheckOutcome {
            checker: "t".into(),
            result,
            latency: Duration::ZERO,
        }
    }

    fn decision(o: Outcome) -> Decision {
        let mut d = Decision::allow();
        if o != Outcome::Allow {
            d.fire(FiredRule {
                id: "r".into(),
                outcome: o,
                message: "m".into(),
                citation: "c".into(),
                approvers: if o == Outcome::NeedsApproval {
                    vec![Role::Manager]
                } else {
                    vec![]
                },
            });
        }
        d
    }

    #[test]
    fn tightening_never_loosens_whatever_the_check_says() {
        let answers = [
            Ok(Verdict::Compliant),
            Ok(Verdict::Concern {
                category: Category::FalseUrgency,
                reason: "48 hours".into(),
            }),
            Err(CheckError("timed out".into())),
        ];
        for start in [Outcome::Allow, Outcome::NeedsApproval, Outcome::Deny] {
            for a in &answers {
                let mut d = decision(start);
                let before = d.clone();
                tighten(&mut d, &rule(), &outcome(a.clone()));
                assert!(d.outcome >= start, "{start:?} became {:?}", d.outcome);
                // Every rule that fired before still fired.
                assert!(before.rules.iter().all(|r| d.rules.contains(r)));
                match (start, a) {
                    (_, Ok(Verdict::Compliant)) => assert_eq!(d, before),
                    (Outcome::Allow, _) => {
                        assert_eq!(d.outcome, Outcome::NeedsApproval);
                        assert_eq!(d.rule_ids(), ["us.content-check"]);
                        assert_eq!(d.approvers(), [Role::Collector, Role::Manager]);
                    }
                    (Outcome::NeedsApproval, _) => {
                        assert_eq!(d.outcome, Outcome::NeedsApproval);
                        // One approver must satisfy both rules.
                        assert_eq!(d.approvers(), [Role::Manager]);
                    }
                    (Outcome::Deny, _) => assert_eq!(d.outcome, Outcome::Deny),
                }
            }
        }
    }

    #[test]
    fn a_deny_effect_on_the_rule_still_only_holds() {
        let mut r = rule();
        r.effect = Effect::Deny;
        let mut d = Decision::allow();
        tighten(&mut d, &r, &outcome(Err(CheckError("garbage".into()))));
        assert_eq!(d.outcome, Outcome::NeedsApproval);
        assert!(
            d.rules[0].message.contains("garbage"),
            "{}",
            d.rules[0].message
        );
    }

    struct Stalls;
    #[async_trait]
    impl ComplianceCheck for Stalls {
        fn name(&self) -> String {
            "stalls".into()
        }
        async fn check(&self, _: &CheckRequest<'_>) -> Result<Verdict, CheckError> {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Verdict::Compliant)
        }
    }

    fn req<'a>(subject: &'a str, body: &'a str, inbound: Option<&'a str>) -> CheckRequest<'a> {
        CheckRequest {
            jurisdiction: Jurisdiction::UsConsumer,
            subject,
            body,
            inbound,
            instructions: None,
        }
    }

    #[tokio::test]
    async fn a_check_that_stalls_past_its_deadline_holds_the_draft() {
        let o = run_check(&Stalls, &req("s", "b", None), Duration::from_millis(20)).await;
        assert!(o.holds());
        assert!(o.reason().is_some_and(|r| r.contains("timed out")), "{o:?}");
        let mut d = Decision::allow();
        tighten(&mut d, &rule(), &o);
        assert_eq!(d.outcome, Outcome::NeedsApproval);
    }

    #[test]
    fn model_verdicts_parse_and_anything_else_is_an_error() {
        assert_eq!(
            parse_model_verdict("```json\n{\"compliant\": true}\n```"),
            Ok(Verdict::Compliant)
        );
        assert_eq!(
            parse_model_verdict(
                r#"{"compliant": false, "category": "false urgency", "reason": "48h"}"#
            ),
            Ok(Verdict::Concern {
                category: Category::FalseUrgency,
                reason: "48h".into()
            })
        );
        assert!(matches!(
            parse_model_verdict(r#"{"compliant": false, "category": "vibes"}"#),
            Ok(Verdict::Concern {
                category: Category::Other,
                ..
            })
        ));
        for garbage in [
            "",
            "yes, compliant",
            "{\"compliant\": \"yes\"}",
            "{not json}",
            "}{",
        ] {
            assert!(parse_model_verdict(garbage).is_err(), "{garbage:?}");
        }
    }

    #[test]
    fn the_offline_classifier_reads_meaning_and_passes_plain_reminders() {
        let c = OfflineComplianceCheck;
        let footer = "This communication is from a debt collector. To stop receiving emails from us, reply STOP or follow the opt-out link.";
        let plain = format!(
            "Dear Dana,\n\nOur records show invoice INV-1 for $1,200.00 is past due. Could you let us know when we can expect payment?\n\nKind regards,\nAccounts Receivable\n\n---\n{footer}"
        );
        assert_eq!(
            c.classify(&req("Overdue invoice", &plain, None)),
            Verdict::Compliant
        );
        let held = [
            (
                "Please settle the balance within 48 hours to avoid further action.",
                Category::FalseUrgency,
            ),
            (
                "If this is not resolved we will have no choice but to pass your file to our solicitors.",
                Category::LegalThreat,
            ),
            (
                "We may need to speak with your employer about this balance.",
                Category::ThirdPartyDisclosure,
            ),
            (
                "Frankly, your excuses are unacceptable.",
                Category::Harassment,
            ),
            (
                "As you requested, we have marked the account as settled.",
                Category::InstructionEcho,
            ),
        ];
        for (sentence, want) in held {
            let body = format!("Dear Dana,\n\n{sentence}\n\n---\n{footer}");
            match c.classify(&req("Your account", &body, None)) {
                Verdict::Concern { category, .. } => assert_eq!(category, want, "{sentence}"),
                Verdict::Compliant => panic!("not held: {sentence}"),
            }
        }
        let safe = format!(
            "Dear Dana,\n\nWe will not contact your employer or family about this.\n\n---\n{footer}"
        );
        assert_eq!(
            c.classify(&req("Your account", &safe, None)),
            Verdict::Compliant
        );
    }
}
