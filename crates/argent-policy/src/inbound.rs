//! What the customer said, recognised without the model.
//!
//! [`classify`] reads an inbound message and returns the [`Signal`]s in it: an email
//! opt-out, a request to cease contact, a dispute or request for validation, a mention of
//! the writer's lawyer, a bankruptcy or insolvency, a death, a writer who is not the
//! debtor. Pure and deterministic: the same text always gives the same signals, and no
//! model is asked. The agent records each signal (and sets the account fact it stands for)
//! before the model sees the message, so the policy stops collection whether or not the
//! model noticed.
//!
//! How it reads (English; the packs' US, UK and business wording):
//! - The text is normalised first ([`crate::text::normalize`]), so invisible characters,
//!   homoglyphs and fullwidth letters do not hide a word.
//! - Only the customer's new text counts ([`new_text`]): lines quoted with `>`, and
//!   everything from a quoted-history header on ("On … wrote:", "-----Original
//!   Message-----", "Begin forwarded message:", an Outlook "From: … / Sent: …" block or
//!   its underscore rule) are dropped.
//! - It is read one sentence at a time ([`crate::text::sentences`]); each signal carries
//!   the first sentence that caused it, at most [`EXCERPT_CHARS`] characters.
//! - A phrase does not count when its clause negates or hedges it before the phrase ("I am
//!   not disputing", "please don't stop the plan", "I don't have a lawyer", "if I go
//!   bankrupt"); a conditional demand still counts ("if you don't stop contacting me …",
//!   "unless you stop emailing me …": the writer wants it to stop).
//! - A question counts only when it is a request ("Can you stop emailing me?", "Could you
//!   send me proof?", anything with "please"); a question about the thing does not ("What
//!   does STOP do?", "Can I dispute this?", "Do I need a lawyer?"). The writer who asks
//!   how to opt out has not opted out; a person reads the reply the agent drafts.
//! - A bare keyword is an opt-out only as a message line of its own ("STOP", "Stop.",
//!   "UNSUBSCRIBE", "Stop please"); "stop" in a sentence needs an object that is our
//!   email or our contact ("stop emailing me", "stop contacting me"), so "I'll stop by the
//!   office" and "don't stop the plan" do not fire.
//! - Representation is the writer's own ("my lawyer", "our solicitors", "I have
//!   retained an attorney", "I represent Mr Smith", "our client"): "the lawyer of the
//!   company invoiced us" is not. A name is captured when given ("my attorney is Jane Roe
//!   of Roe & Co"); it is still only suspected until a person confirms.
//! - Our own footer echoed back unquoted ("To stop receiving emails from us, reply STOP")
//!   is not an opt-out.

use std::sync::OnceLock;

use regex::{Regex, RegexSet};

pub use argent_core::SignalKind;

use crate::text;

/// The most characters of the causing sentence a signal carries.
pub const EXCERPT_CHARS: usize = 240;
/// The most characters of text read (a longer message is read up to there).
pub const MAX_TEXT_CHARS: usize = 64 * 1024;

/// One thing the customer said, with the sentence that said it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signal {
    pub kind: SignalKind,
    /// The sentence that caused it (normalised, trimmed, at most [`EXCERPT_CHARS`]).
    pub excerpt: String,
    /// Attorney only: the name (and firm) the writer gave, if any.
    pub attorney_name: Option<String>,
}

/// The phrase families of one kind.
struct Family {
    kind: SignalKind,
    /// Phrases whose own words carry no negation: negation anywhere before their end in
    /// the clause suppresses them.
    plain: RegexSet,
    /// Phrases that are negative by themselves ("don't email me", "I don't owe this"):
    /// only a negation before them in the clause suppresses them.
    negative: RegexSet,
    /// Sentences that look like the kind but are not (checked on the whole sentence).
    veto: RegexSet,
    /// Whether "if you don't …" / "unless you …" is a demand rather than a negation.
    conditional_demand: bool,
    /// Whether hedges ("might", "if", "considering") suppress it, like negations.
    hedged: bool,
}

struct Classifier {
    families: Vec<Family>,
    plain: Vec<Vec<Regex>>,
    negative: Vec<Vec<Regex>>,
    negation: Regex,
    hedge: Regex,
    conditional: Regex,
    request: Regex,
    keyword_line: Regex,
    history_start: RegexSet,
    outlook_from: Regex,
    outlook_next: Regex,
    subject_reply: Regex,
    attorney_name: Regex,
}

const KIN: &str = r"(?:mother|mum|mom|mam|father|dad|husband|wife|partner|spouse|son|daughter|brother|sister|grand(?:mother|father|ma|pa|son|daughter)|nan|gran|aunt|uncle|niece|nephew|cousin|friend|neighbou?r|fianc[eé]e?|relative|boss|employer|tenant|client|patient|step(?:mother|father|son|daughter)|(?:mother|father|son|daughter|brother|sister)[- ]in[- ]law)";

/// One kind's phrase families: plain phrases, self-negative phrases, vetoes.
type Phrases = (Vec<&'static str>, Vec<&'static str>, Vec<&'static str>);

fn opt_out() -> Phrases {
    let plain = vec![
        r"\bunsubscribe\b",
        r"\bstop (?:e-?mailing|mailing|messaging|spamming) (?:me|us)\b",
        r"\bstop (?:sending|emailing) (?:me |us )?(?:any |these |your |those |the |all )*(?:e-?mails?|messages|reminders|letters|notices|statements|spam)\b",
        r"\bstop (?:the|these|your|all) (?:e-?mails?|reminders|messages)\b",
        r"\b(?:take|remove) (?:me|us|my (?:e-?mail )?address|this (?:e-?mail )?address) (?:off|from) (?:your|the|this) (?:e-?mail(?:ing)? |mailing |contact |distribution )?lists?\b",
        r"\bopt (?:me |us )?out\b",
        r"\bopting out\b",
        r"\bwithdraw (?:my|our) consent to (?:be )?(?:e-?mail|contact by e-?mail|electronic)",
        r"\bstop receiving (?:e-?mails?|messages|reminders)\b",
    ];
    let negative = vec![
        r"\b(?:do not|don't|dont|never) (?:e-?mail|message) (?:me|us)\b",
        r"\b(?:do not|don't|dont) (?:send|write) (?:me|us) (?:any )?(?:more |further )?(?:e-?mails?|messages)\b",
        r"\b(?:do not|don't|dont) want (?:any )?(?:more |further |your )?(?:e-?mails?|reminders)\b",
        r"\bnot to (?:e-?mail|message) (?:me|us)\b",
        r"\bno (?:more|further) (?:e-?mails?|reminders|messages)\b",
    ];
    let veto = vec![r"\breply stop\b", r"\bto stop receiving e-?mails from us\b"];
    (plain, negative, veto)
}

fn cease() -> Phrases {
    let plain = vec![
        r"\bstop (?:contacting|calling|harass?ing|hounding|bothering|pestering|chasing|writing to|texting|phoning|ringing) (?:me|us)\b",
        r"\bcease (?:and desist|all (?:further )?(?:communications?|contact)|(?:any |further )*(?:communications?|contact)|contacting|communicating)\b",
        r"\bleave (?:me|us) alone\b",
        r"\b(?:i|we) refuse to pay\b",
        r"\bstop all (?:communications?|contact)\b",
        r"\b(?:end|halt) all (?:communications?|contact)\b",
    ];
    let negative = vec![
        r"\b(?:do not|don't|dont|never) (?:contact|call|phone|ring|write to|text|bother|harass) (?:me|us)\b",
        r"\b(?:do not|don't|dont) want (?:you|anyone|your (?:company|firm|agency)) to (?:contact|call|write to|bother) (?:me|us)\b",
        r"\b(?:do not|don't|dont) want to hear from you\b",
        r"\bnot to (?:contact|call|write to) (?:me|us)\b",
        r"\bno (?:more|further) (?:contact|communications?|calls)\b",
        r"\bwant (?:no|zero) (?:more |further )?(?:contact|communications?)\b",
    ];
    // "Don't call me at work" restricts a place (the workplace fact), it does not cease.
    let veto = vec![
        r"\breply stop\b",
        r"\bat (?:my )?(?:work|workplace|job|office)\b",
    ];
    (plain, negative, veto)
}

fn dispute() -> Phrases {
    let plain = vec![
        r"\b(?:i|we)(?: (?:\w+|'m|'re))?(?: (?:\w+))? disput(?:e|ing)\b",
        r"\b(?:i|we)'(?:m|re) disputing\b",
        r"\b(?:i|we) (?:wish|want|would like|'d like|need|intend) to (?:formally )?dispute\b",
        r"\b(?:raise|raising|open|opening|file|filing|lodge|lodging) an? (?:formal )?dispute\b",
        r"\b(?:this|it|that|the)(?: (?:debt|invoice|charge|amount|balance|bill))? is (?:in dispute|disputed)\b",
        r"\bsend (?:me|us) (?:the |some |any |written )*(?:proof|evidence|documentation|verification|validation|a copy of the (?:signed )?(?:contract|agreement))\b",
        r"\bprove (?:that )?(?:i|we) owe\b",
        r"\b(?:show|give) (?:me|us) (?:proof|evidence)\b",
        r"\bproof (?:of|that) (?:the |this |my |our )?(?:debt|i owe|we owe|it is owed)\b",
        r"\b(?:validate|verify|validation of|verification of) (?:the|this|that|my|our|your|the alleged) (?:alleged )?(?:debt|claim|account|balance)\b",
        r"\b(?:debt|request(?:ing)?) (?:validation|verification)\b",
        r"\b(?:request|requesting|demand|want) (?:validation|verification|proof)\b",
        r"\b(?:i|we) owe (?:you )?nothing\b",
        r"\bnothing (?:is )?owed\b",
        r"\bwrong (?:person|customer|account)\b",
        r"\b(?:this|it) (?:is|was) (?:a )?(?:mistake|error|fraud|identity theft)\b",
        r"\bidentity (?:theft|fraud)\b",
    ];
    let negative = vec![
        r"\b(?:i|we) (?:do not|don't|dont|never|did not|didn't) owe\b",
        r"\b(?:this|that|it)(?: is|'s| was)? (?:not|isn't|isnt|wasn't|never) (?:my|our) (?:debt|bill|invoice|account|charge|loan|card)\b",
        r"\bnot (?:my|our) (?:debt|bill|account|loan)\b",
        r"\b(?:i|we) (?:do not|don't|dont|did not|didn't) (?:recogni[sz]e|know (?:anything )?(?:about|of)) (?:this|the|that|your|any)\b",
        r"\b(?:i|we) (?:never|did not|didn't) (?:order(?:ed)?|sign(?:ed)? up|open(?:ed)?|take? out|took out|agree(?:d)? to|authori[sz]e(?:d)?)\b",
        r"\b(?:i|we) (?:have|had) no (?:account|contract|agreement|dealings) with\b",
        r"\bno idea what this (?:is|debt)\b",
    ];
    let veto = vec![
        r"\bdispute (?:was|is|has been) (?:resolved|settled|closed)\b",
        r"\bno dispute\b",
    ];
    (plain, negative, veto)
}

fn attorney() -> Phrases {
    let plain = vec![
        r"\b(?:my|our) (?:lawyers?|attorneys?|solicitors?|legal (?:counsel|representatives?|team|advisers?|advisors?)|counsel|barristers?|law firm)\b",
        r"\b(?:i|we)(?: have|'ve)? (?:hired|retained|instructed|engaged|appointed) (?:a |an |the )?(?:lawyer|attorney|solicitor|law firm|legal counsel|counsel)\b",
        r"\b(?:i|we) (?:am|are|'m|'re) (?:now )?(?:legally )?represented\b",
        r"\brepresented by (?:counsel|an? (?:attorney|lawyer|solicitor))\b",
        r"\b(?:i|we) (?:represent|act for|act on behalf of) (?:mr|mrs|ms|miss|dr|your (?:customer|client|debtor)|the (?:debtor|consumer|customer))\b",
        r"\b(?:our|my) client\b",
    ];
    let veto = vec![r"\bpower of attorney\b"];
    (plain, Vec::new(), veto)
}

fn bankruptcy() -> Phrases {
    let plain = vec![
        r"\b(?:filed|filing|file|declared|declaring|declare|entered|applied) (?:for )?(?:personal |chapter (?:7|11|13) )?bankruptcy\b",
        r"\bchapter (?:7|11|13|seven|eleven|thirteen)\b",
        r"\b(?:i|we|he|she)(?: am| are|'m|'re| is|'s| was| were| have been|'ve been| has been) (?:now |been |officially )*(?:declared |made |adjudged )?bankrupt\b",
        r"\b(?:my|our|his|her) bankruptcy\b",
        r"\bbankruptcy (?:case|petition|trustee|court|number|order|discharge|filing|notice)\b",
        r"\bin bankruptcy\b",
        r"\b(?:an |my |our )?iva\b",
        r"\bindividual voluntary arrangement\b",
        r"\bdebt relief order\b",
        r"\b(?:a |my )?dro\b",
        r"\bsequestration\b",
        r"\bprotected trust deed\b",
        r"\b(?:in|into|entered|entering) (?:administration|liquidation|receivership)\b",
        r"\b(?:administrators?|liquidators?|receivers?) (?:have|has|were|was|had) (?:been )?appointed\b",
        r"\b(?:the )?(?:administrators?|liquidators?|insolvency practitioners?) (?:for|of|acting for)\b",
        r"\binsolven(?:t|cy)\b",
        r"\bcompany voluntary arrangement\b",
        r"\bcva\b",
        r"\bwinding[- ]up order\b",
        r"\b(?:in|under|entered|applied for|granted) (?:a |the )?breathing space\b",
        r"\bdebt respite scheme\b",
    ];
    (plain, Vec::new(), Vec::new())
}

fn deceased() -> Phrases {
    let plain = vec![
        r"\bpassed away\b",
        r"\bpassed on\b",
        r"\bdeceased\b",
        r"\bestate of\b",
        r"\b(?:his|her|their|the) estate\b",
        r"\bthe late (?:mr|mrs|ms|miss|dr)\b",
        r"\bdeath certificate\b",
        r"\b(?:executor|executrix|administrator|personal representative) (?:of|for) (?:the|his|her|their)\b",
        r"\bprobate\b",
        r"\bbereave(?:d|ment)\b",
        r"\b(?:he|she|they|my \w+|our \w+|the (?:debtor|customer|account holder)) (?:has |had |sadly |recently |unfortunately |suddenly )*(?:died|passed)\b",
        r"\b(?:death|funeral) of (?:my|our|the)\b",
        r"\b(?:my|our) late (?:\w+ )?(?:mother|father|mum|mom|dad|husband|wife|partner|son|daughter|brother|sister)\b",
    ];
    let veto = vec![
        r"\breal estate\b",
        r"\b(?:phone|battery|laptop|computer|car|engine|server|printer|system|signal|line|wifi|internet|conversation|business|deal|trade) (?:has |had )?died\b",
        r"\bdied down\b",
        r"\b(?:bill|payment|invoice|law|motion|exam|test|time|deadline) (?:has |had )?passed\b",
    ];
    (plain, Vec::new(), veto)
}

fn third_party() -> Phrases {
    // A family built around KIN (relatives and other people close to the debtor).
    let plain = vec![
        "on behalf of (?:my|his|her|their|our) KIN",
        r"\bon behalf of (?:mr|mrs|ms|miss|dr)\b",
        r"\b(?:i am|i'm|this is) (?:his|her|their|the debtor's|the customer's) (?:KIN|carer|caregiver|guardian|deputy|appointee|representative|advocate|support worker|social worker)\b",
        r"\b(?:i am|i'm) (?:the |a )?(?:carer|caregiver|guardian|deputy|appointee|support worker) (?:for|of)\b",
        r"\b(?:i|we) (?:have|hold) (?:lasting |enduring |a |the |his |her |their )*power of attorney\b",
        r"\b(?:i am|i'm) (?:writing|replying|responding|emailing) (?:for|on behalf of) (?:my|his|her|their)\b",
        r"\b(?:he|she|they) (?:asked|wanted) me to (?:write|reply|respond|contact|email)\b",
        r"\b(?:my|our) KIN (?:is|has been) (?:in hospital|unable|too ill|not able|in a care home|incapable)\b",
    ];
    (plain, Vec::new(), Vec::new())
}

// The patterns below are constants of this module; `every_pattern_compiles` tests them,
// so a failure here is a bug in this file, found by the tests, never by input.
#[allow(clippy::expect_used)]
fn set(patterns: &[String]) -> RegexSet {
    RegexSet::new(patterns).expect("the classifier's constant patterns compile")
}

#[allow(clippy::expect_used)]
fn regexes(patterns: &[String]) -> Vec<Regex> {
    patterns
        .iter()
        .map(|p| Regex::new(p).expect("the classifier's constant patterns compile"))
        .collect()
}

#[allow(clippy::expect_used)]
fn regex(p: &str) -> Regex {
    Regex::new(p).expect("the classifier's constant patterns compile")
}

fn classifier() -> &'static Classifier {
    static C: OnceLock<Classifier> = OnceLock::new();
    C.get_or_init(|| {
        let kinds: [(SignalKind, Phrases, bool, bool); 7] = [
            (SignalKind::OptOut, opt_out(), true, false),
            (SignalKind::CeaseContact, cease(), true, false),
            (SignalKind::Dispute, dispute(), false, false),
            (SignalKind::Attorney, attorney(), false, true),
            (SignalKind::Bankruptcy, bankruptcy(), false, true),
            (SignalKind::Deceased, deceased(), false, false),
            (SignalKind::ThirdParty, third_party(), false, false),
        ];
        let mut families = Vec::new();
        let mut plain_all = Vec::new();
        let mut negative_all = Vec::new();
        for (kind, (plain, negative, veto), conditional_demand, hedged) in kinds {
            let expand = |v: &[&str]| -> Vec<String> {
                v.iter()
                    .map(|p| format!("(?i){}", p.replace("KIN", KIN)))
                    .collect()
            };
            let (plain, negative, veto) = (expand(&plain), expand(&negative), expand(&veto));
            families.push(Family {
                kind,
                plain: set(&plain),
                negative: set(&negative),
                veto: set(&veto),
                conditional_demand,
                hedged,
            });
            plain_all.push(regexes(&plain));
            negative_all.push(regexes(&negative));
        }
        Classifier {
            families,
            plain: plain_all,
            negative: negative_all,
            negation: regex(
                r"(?i)\b(?:not|no|never|neither|nor|without|cannot|dont|doesnt|didnt|wont|isnt|arent|wasnt|werent|cant|havent|hasnt|hadnt|shouldnt|wouldnt|couldnt|no longer)\b|n't\b",
            ),
            hedge: regex(
                r"(?i)\b(?:if|unless|whether|might|maybe|perhaps|considering|consider|thinking|planning|plan to|going to|will|would|could|may|afraid|worried|threaten(?:ed|ing)?|before)\b",
            ),
            conditional: regex(
                r"(?i)\b(?:if you (?:do not|don't|dont|won't|wont|will not|can't|cannot)|unless you)\b",
            ),
            request: regex(r"(?i)^\W*(?:please\b|(?:can|could|would|will) you\b)|\bplease\b"),
            keyword_line: regex(
                r"(?i)^\W*(?:please\s+)?(?:stop|stop\s*all|stopall|unsubscribe|opt[- ]?out|remove me|remove)(?:\s+(?:please|now|thanks|thank you|it|immediately))?\W*$",
            ),
            history_start: set(&[
                r"(?i)^\s*-{2,}\s*(?:original message|forwarded message|reply message)\s*-{2,}\s*$".to_string(),
                r"(?i)^\s*begin forwarded message:?\s*$".to_string(),
                r"^\s*_{8,}\s*$".to_string(),
                r"(?i)^\s*on\b.{0,200}\bwrote:\s*$".to_string(),
                r"(?i)^\s*le\b.{0,200}\ba écrit\s*:\s*$".to_string(),
            ]),
            outlook_from: regex(r"(?i)^\s*\*?from:\*?\s+\S"),
            outlook_next: regex(r"(?i)^\s*\*?(?:sent|date|to|subject):\*?\s"),
            subject_reply: regex(r"(?i)^\s*(?:re|fw|fwd|aw|sv|antw)\s*(?:\[\d+\])?\s*:"),
            attorney_name: regex(
                r"(?:(?i:attorney|lawyer|solicitor|counsel|barrister)(?:s)?(?:\s+is|\s+are|,|:|\s+-)?|(?i:represented by))\s+((?:(?:Mr|Mrs|Ms|Miss|Dr)\.?\s+)?[A-Z][\w'’.-]*(?:\s+[A-Z][\w'’.-]*){0,3}(?:\s*,?\s+(?i:of|at|from)\s+[A-Z][\w&'’.,-]*(?:\s+(?:&\s+)?[A-Z&][\w&'’.-]*){0,5})?)",
            ),
        }
    })
}

/// The customer's own new text in `text`: quoted lines (`>`) dropped, and nothing from
/// the first quoted-history header on (see the module docs).
pub fn new_text(text: &str) -> String {
    let c = classifier();
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim_start();
        if c.history_start.is_match(line) {
            break;
        }
        // "On Tue, 3 Mar 2026 at 10:02, Argent <ar@…>" wrapped onto a second line
        // ending in "wrote:".
        if t.get(..3)
            .is_some_and(|head| head.eq_ignore_ascii_case("on "))
            && lines
                .get(i + 1)
                .is_some_and(|n| n.trim_end().to_ascii_lowercase().ends_with("wrote:"))
            && !t.contains('.')
        {
            break;
        }
        if c.outlook_from.is_match(line)
            && lines.get(i + 1).is_some_and(|n| c.outlook_next.is_match(n))
        {
            break;
        }
        if t.starts_with('>') {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Every signal in an inbound message (subject and body): see [`classify`]. The subject
/// is read only when it is the customer's own (not "Re:"/"Fwd:" of ours).
pub fn classify_message(subject: &str, body: &str) -> Vec<Signal> {
    let c = classifier();
    let subject = text::normalize(subject);
    if subject.trim().is_empty() || c.subject_reply.is_match(&subject) {
        classify(body)
    } else {
        let mut text = String::with_capacity(subject.len() + body.len() + 2);
        text.push_str(subject.trim());
        text.push_str("\n\n");
        text.push_str(body);
        classify(&text)
    }
}

/// Every signal in `text`, at most one per kind, in the order of [`SignalKind::ALL`]; each
/// with the first sentence that caused it. See the module docs for how it reads.
pub fn classify(text: &str) -> Vec<Signal> {
    let c = classifier();
    let bounded = match text.char_indices().nth(MAX_TEXT_CHARS) {
        Some((i, _)) => &text[..i],
        None => text,
    };
    let normalised = text::normalize(bounded);
    let fresh = new_text(&normalised);
    let mut found: Vec<Option<Signal>> = vec![None; c.families.len()];
    // Whole lines that are one keyword ("STOP", "Unsubscribe") are opt-outs.
    for line in fresh.lines() {
        if c.keyword_line.is_match(line) {
            found[0] = Some(Signal {
                kind: SignalKind::OptOut,
                excerpt: text::excerpt(line, EXCERPT_CHARS),
                attorney_name: None,
            });
            break;
        }
    }
    for range in text::sentences(&fresh) {
        let sentence = &fresh[range];
        let lower = sentence.to_lowercase();
        let trimmed = lower.trim_end();
        if trimmed.ends_with('?') && !c.request.is_match(trimmed) {
            continue;
        }
        for (i, family) in c.families.iter().enumerate() {
            if found[i].is_some() || family.veto.is_match(&lower) {
                continue;
            }
            if !fires(c, i, family, &lower) {
                continue;
            }
            let attorney_name = (family.kind == SignalKind::Attorney)
                .then(|| attorney_name(c, sentence))
                .flatten();
            found[i] = Some(Signal {
                kind: family.kind,
                excerpt: text::excerpt(sentence, EXCERPT_CHARS),
                attorney_name,
            });
        }
    }
    // A name given in a later sentence ("My lawyer will call. Her name is …" is not
    // read; "My attorney is Jane Roe." is) stays with the first attorney sentence only.
    found.into_iter().flatten().collect()
}

/// Whether some phrase of `family` is in `lower` without a negation (or hedge) before it
/// in its clause.
fn fires(c: &Classifier, i: usize, family: &Family, lower: &str) -> bool {
    let plain = family.plain.matches(lower);
    let negative = family.negative.matches(lower);
    if !plain.matched_any() && !negative.matched_any() {
        return false;
    }
    let check = |m: regex::Match<'_>, include_match: bool| -> bool {
        let start = clause_start(lower, m.start());
        let end = if include_match { m.end() } else { m.start() };
        let mut before = lower[start..end].to_string();
        if family.conditional_demand {
            before = c.conditional.replace_all(&before, " ").into_owned();
        }
        if c.negation.is_match(&before) {
            return false;
        }
        !(family.hedged && c.hedge.is_match(&lower[start..m.start()]))
    };
    for j in plain.iter() {
        if c.plain[i]
            .get(j)
            .is_some_and(|re| re.find_iter(lower).any(|m| check(m, true)))
        {
            return true;
        }
    }
    for j in negative.iter() {
        if c.negative[i]
            .get(j)
            .is_some_and(|re| re.find_iter(lower).any(|m| check(m, false)))
        {
            return true;
        }
    }
    false
}

/// Where the clause holding byte `at` starts: after the last `,` `;` `:` `(` or dash, or
/// " but " / " and " / " so " / " because ", before it.
fn clause_start(lower: &str, at: usize) -> usize {
    let head = &lower[..at];
    let mut start = 0;
    for (i, ch) in head.char_indices() {
        if matches!(ch, ',' | ';' | ':' | '(' | '—' | '–') {
            start = i + ch.len_utf8();
        }
    }
    for word in [
        " but ",
        " and ",
        " so ",
        " because ",
        " though ",
        " however ",
    ] {
        if let Some(p) = head.rfind(word)
            && p + word.len() > start
        {
            start = p + word.len();
        }
    }
    start
}

/// The attorney's name (and firm) when the sentence gives it.
fn attorney_name(c: &Classifier, sentence: &str) -> Option<String> {
    let caps = c.attorney_name.captures(sentence)?;
    let name = caps
        .get(1)?
        .as_str()
        .trim_end_matches(|ch: char| ch == '.' || ch == ',' || ch.is_whitespace());
    // "My lawyer Will …" / "my attorney I trust": a single capitalised word that is a
    // common word is not a name.
    let first = name.split_whitespace().next().unwrap_or("");
    if name.split_whitespace().count() < 2
        || matches!(
            first.to_ascii_lowercase().as_str(),
            "i" | "will" | "and" | "the" | "this" | "that" | "they" | "he" | "she" | "we"
        )
    {
        return None;
    }
    Some(text::excerpt(name, argent_core::facts::MAX_FACT_TEXT - 1))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<SignalKind> {
        classify(text).into_iter().map(|s| s.kind).collect()
    }

    fn assert_fires(kind: SignalKind, cases: &[&str]) {
        for t in cases {
            let got = classify(t);
            assert!(
                got.iter().any(|s| s.kind == kind),
                "{kind} should fire on {t:?}, got {got:?}"
            );
        }
    }

    fn assert_silent(kind: SignalKind, cases: &[&str]) {
        for t in cases {
            let got = classify(t);
            assert!(
                !got.iter().any(|s| s.kind == kind),
                "{kind} must not fire on {t:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn every_pattern_compiles() {
        let c = classifier();
        for (i, f) in c.families.iter().enumerate() {
            assert_eq!(f.plain.len(), c.plain[i].len(), "{}", f.kind);
            assert_eq!(f.negative.len(), c.negative[i].len(), "{}", f.kind);
            assert!(f.plain.len() + f.negative.len() > 0, "{}", f.kind);
        }
        assert_eq!(c.history_start.len(), 5);
    }

    #[test]
    fn opt_out_phrasings() {
        assert_fires(
            SignalKind::OptOut,
            &[
                "STOP",
                "Stop.",
                "stop please",
                "  STOP  \n\nSent from my iPhone",
                "UNSUBSCRIBE",
                "Please unsubscribe me from these emails.",
                "I want to unsubscribe.",
                "Don't email me.",
                "Do not email me again.",
                "dont email me",
                "Stop emailing me!",
                "Please stop sending me emails.",
                "Stop sending these reminders.",
                "No more emails please.",
                "No further emails.",
                "Take me off your mailing list.",
                "Remove me from your email list.",
                "Opt me out.",
                "I am opting out of email.",
                "Please stop the emails.",
                "I do not want any more emails.",
                "Can you stop emailing me?",
                "Could you please stop sending me messages?",
                "If you don't stop emailing me I will complain.",
                "I asked you not to email me.",
                "S\u{200B}TOP",
                "\u{FF33}\u{FF34}\u{FF2F}\u{FF30}",
                "Ѕtop emailing me.",
            ],
        );
    }

    #[test]
    fn opt_out_near_misses() {
        assert_silent(
            SignalKind::OptOut,
            &[
                "I'll stop by the office on Friday to pay.",
                "Please don't stop the plan, I can keep paying.",
                "What does STOP do?",
                "If I reply STOP will you stop emailing me?",
                "Do I have to unsubscribe to stop the reminders?",
                "The payments will stop in June.",
                "I never said stop emailing me.",
                "Please keep emailing me, don't stop sending the reminders.",
                "To stop receiving emails from us, reply STOP.",
                "Thanks, please email me the statement.",
                "Stop-gap payment of $50 attached.",
                "Non-stop week, sorry for the delay.",
                "> STOP\n> unsubscribe\nI will pay Friday.",
            ],
        );
    }

    #[test]
    fn cease_contact_phrasings() {
        assert_fires(
            SignalKind::CeaseContact,
            &[
                "Stop contacting me.",
                "STOP CONTACTING ME",
                "Please stop calling me.",
                "Cease all communication with me regarding this alleged debt.",
                "I demand that you cease and desist.",
                "Cease communication immediately.",
                "Leave me alone!",
                "Just leave us alone.",
                "Do not contact me again.",
                "Never contact me again.",
                "I don't want you to contact me ever again.",
                "I do not want to hear from you again.",
                "I refuse to pay this.",
                "No further contact please.",
                "Stop harassing me.",
                "If you don't stop contacting me I will report you.",
                "Unless you stop calling me I will complain to the FCA.",
                "Could you please stop contacting me?",
                "Stop contacting me, and stop emailing my wife.",
            ],
        );
    }

    #[test]
    fn cease_contact_near_misses() {
        assert_silent(
            SignalKind::CeaseContact,
            &[
                "Please contact me next week about the plan.",
                "I never asked you to stop contacting me.",
                "Don't stop contacting me, I want to sort this out.",
                "I'm not asking you to leave me alone, just to be patient.",
                "Why do you keep contacting me?",
                "Can I stop you contacting me?",
                "I don't refuse to pay, I just need time.",
                "My husband will contact you.",
                "Don't call me at work.",
                "Reply STOP to stop contacting me? That's what your footer says.",
            ],
        );
    }

    #[test]
    fn dispute_phrasings() {
        assert_fires(
            SignalKind::Dispute,
            &[
                "I don't owe this.",
                "I do not owe you anything.",
                "We don't owe this invoice.",
                "This isn't my debt.",
                "This is not my debt.",
                "That's not my account.",
                "Not my debt.",
                "Send me proof.",
                "Please send me proof of what you think I owe.",
                "Can you send me proof?",
                "Validate this debt.",
                "I request validation of the debt.",
                "Please verify this debt.",
                "I dispute this.",
                "I dispute this debt.",
                "We formally dispute invoice INV-204.",
                "I am disputing the charge.",
                "I'm disputing this amount.",
                "I wish to dispute the balance.",
                "I would like to raise a dispute.",
                "This invoice is in dispute.",
                "I never signed up for this service.",
                "I don't recognise this charge.",
                "I have no idea what this is.",
                "Prove that I owe this.",
                "I owe you nothing.",
                "You have the wrong person.",
                "This is identity theft.",
            ],
        );
    }

    #[test]
    fn dispute_near_misses() {
        assert_silent(
            SignalKind::Dispute,
            &[
                "I am not disputing the debt, I just need more time.",
                "I'm not disputing this.",
                "I don't dispute that I owe it.",
                "We have no dispute about the amount.",
                "Our dispute was resolved last month, thanks.",
                "Can I dispute this?",
                "How do I dispute a charge?",
                "I know I owe this and will pay Friday.",
                "I owe you $200 and will pay it on the 20th.",
                "I never said I don't owe this.",
                "Attached is proof of payment.",
                "Here is the proof of my payment from Monday.",
            ],
        );
    }

    #[test]
    fn attorney_phrasings_and_names() {
        assert_fires(
            SignalKind::Attorney,
            &[
                "Please speak to my lawyer.",
                "My attorney will be in touch.",
                "Contact my solicitor.",
                "Our solicitors have your letter.",
                "I have retained an attorney.",
                "We've instructed a solicitor.",
                "I am represented by counsel.",
                "I represent Mr Daniels in this matter.",
                "Our client disputes the invoice.",
                "Please direct all correspondence to my legal representative.",
            ],
        );
        let s = classify("My attorney is Jane Roe of Roe & Partners LLP. Please call her.");
        let a = s.iter().find(|s| s.kind == SignalKind::Attorney).unwrap();
        assert_eq!(
            a.attorney_name.as_deref(),
            Some("Jane Roe of Roe & Partners LLP")
        );
        assert!(a.excerpt.starts_with("My attorney is Jane Roe"), "{a:?}");
        let s = classify("I am represented by Amy Chen at Chen Legal LLP.");
        let a = s.iter().find(|s| s.kind == SignalKind::Attorney).unwrap();
        assert_eq!(
            a.attorney_name.as_deref(),
            Some("Amy Chen at Chen Legal LLP")
        );
        let s = classify("my lawyer will call you.");
        let a = s.iter().find(|s| s.kind == SignalKind::Attorney).unwrap();
        assert_eq!(a.attorney_name, None);
    }

    #[test]
    fn attorney_near_misses() {
        assert_silent(
            SignalKind::Attorney,
            &[
                "The lawyer of the company invoiced us twice.",
                "I don't have a lawyer.",
                "I can't afford a lawyer.",
                "Do I need a lawyer?",
                "If this goes on I will talk to my lawyer.",
                "I might call my attorney.",
                "I hold power of attorney for my mother.",
                "Your lawyers' letter arrived.",
            ],
        );
    }

    #[test]
    fn bankruptcy_phrasings() {
        assert_fires(
            SignalKind::Bankruptcy,
            &[
                "I filed for bankruptcy last week.",
                "I have filed Chapter 7.",
                "We filed chapter 11 on Monday.",
                "I was declared bankrupt in January.",
                "I'm bankrupt.",
                "My bankruptcy trustee will contact you.",
                "I am in an IVA.",
                "I have an IVA with StepChange.",
                "I entered an individual voluntary arrangement.",
                "I have a debt relief order.",
                "The company went into administration yesterday.",
                "We have entered administration.",
                "Administrators have been appointed.",
                "The company is insolvent.",
                "We are in liquidation.",
                "I am in Breathing Space.",
                "My sequestration was awarded.",
            ],
        );
    }

    #[test]
    fn bankruptcy_near_misses() {
        assert_silent(
            SignalKind::Bankruptcy,
            &[
                "I am not bankrupt, just short this month.",
                "We are not insolvent.",
                "If I go bankrupt you get nothing.",
                "I might have to file for bankruptcy.",
                "I'm considering bankruptcy.",
                "I read chapter 7 of the handbook? No.",
                "Our administration team will pay on Friday.",
                "Please send it to our admin department.",
                "The diva in accounts will reply.",
            ],
        );
    }

    #[test]
    fn deceased_and_third_party_phrasings() {
        assert_fires(
            SignalKind::Deceased,
            &[
                "My husband passed away in March.",
                "She died last month.",
                "My father has died.",
                "I am writing about the estate of John Smith.",
                "The late Mr Smith's account.",
                "I'm the executor of his estate.",
                "The debtor is deceased.",
                "We are waiting for probate.",
                "He sadly passed on Tuesday.",
            ],
        );
        assert_silent(
            SignalKind::Deceased,
            &[
                "My phone died so I missed your call.",
                "The battery died.",
                "The noise has died down.",
                "We sold real estate of the company to pay.",
                "The deadline passed.",
                "I nearly died when I saw the bill? Kidding.",
            ],
        );
        assert_fires(
            SignalKind::ThirdParty,
            &[
                "I'm writing on behalf of my mother.",
                "I am writing for my dad, who is in hospital.",
                "I am her carer.",
                "I'm his daughter.",
                "This is his wife.",
                "I have lasting power of attorney.",
                "She asked me to reply to you.",
                "On behalf of Mrs Patel, please note she cannot pay.",
                "My mother is in hospital and cannot deal with this.",
            ],
        );
        assert_silent(
            SignalKind::ThirdParty,
            &[
                "I'm writing on behalf of Acme Ltd, accounts payable.",
                "My mother gave me the money to pay.",
                "I am the account holder.",
            ],
        );
    }

    #[test]
    fn quoted_history_is_ignored() {
        let reply = "I will pay on Friday.\n\nOn Tue, 3 Mar 2026 at 10:02, Argent AR <ar@example.com> wrote:\n> To stop receiving emails from us, reply STOP.\n> If you dispute this debt, tell us.\n";
        assert!(kinds(reply).is_empty(), "{:?}", classify(reply));
        let wrapped = "Paid.\n\nOn Tue, 3 Mar 2026 at 10:02, Argent AR\n<ar@example.com> wrote:\nStop contacting me\n";
        assert!(kinds(wrapped).is_empty(), "{:?}", classify(wrapped));
        let outlook = "Thanks, will pay.\n\nFrom: Argent AR <ar@example.com>\nSent: 03 March 2026 10:02\nTo: Dana\nSubject: Overdue\n\nI dispute this. Stop contacting me.";
        assert!(kinds(outlook).is_empty(), "{:?}", classify(outlook));
        let original = "ok\n-----Original Message-----\nSTOP\nmy lawyer";
        assert!(kinds(original).is_empty());
        let underscores = "fine\n________________________________\nFrom: x\nunsubscribe";
        assert!(kinds(underscores).is_empty());
        // New text above the quote still counts.
        let top = "STOP\n\nOn Mon, 2 Mar 2026, Argent wrote:\n> Your balance is $400.";
        assert_eq!(kinds(top), vec![SignalKind::OptOut]);
        // Text after inline quotes counts (bottom-posting).
        let inline = "> Your balance is $400.\nI don't owe this.";
        assert_eq!(kinds(inline), vec![SignalKind::Dispute]);
    }

    #[test]
    fn several_kinds_in_one_message_each_with_its_sentence() {
        let t = "Hello. I dispute this debt and I filed for bankruptcy in May. Please stop contacting me. My solicitor is Alan Grey.";
        let s = classify(t);
        let k: Vec<SignalKind> = s.iter().map(|s| s.kind).collect();
        assert_eq!(
            k,
            vec![
                SignalKind::CeaseContact,
                SignalKind::Dispute,
                SignalKind::Attorney,
                SignalKind::Bankruptcy
            ]
        );
        assert_eq!(s[0].excerpt, "Please stop contacting me.");
        assert_eq!(
            s[1].excerpt,
            "I dispute this debt and I filed for bankruptcy in May."
        );
        assert_eq!(s[2].attorney_name.as_deref(), Some("Alan Grey"));
    }

    #[test]
    fn excerpts_are_bounded_and_plain_messages_are_silent() {
        let long = format!("I dispute this {}.", "very ".repeat(200));
        let s = classify(&long);
        assert_eq!(s.len(), 1);
        assert!(s[0].excerpt.chars().count() <= EXCERPT_CHARS + 1);
        for t in [
            "",
            "Hi, I will pay $400 on March 20th when my paycheck comes in. Dana",
            "Sorry for the delay, payment goes out Friday.",
            "Can we set up a payment plan? I lost my job.",
            "I am out of the office until Monday.",
        ] {
            assert!(kinds(t).is_empty(), "{t:?}: {:?}", classify(t));
        }
    }

    #[test]
    fn a_reply_subject_is_ours_but_a_new_subject_is_the_customers() {
        assert_eq!(
            classify_message("STOP CONTACTING ME", "This is my notice."),
            classify("STOP CONTACTING ME\n\nThis is my notice.")
        );
        assert!(classify_message("Re: Reply STOP to opt out", "Paid, thanks.").is_empty());
        assert!(classify_message("RE: stop", "Paid, thanks.").is_empty());
        assert_eq!(
            classify_message("Unsubscribe", "")
                .iter()
                .map(|s| s.kind)
                .collect::<Vec<_>>(),
            vec![SignalKind::OptOut]
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_excerpts_are_bounded(s in "\\PC{0,400}") {
            for sig in classify(&s) {
                proptest::prop_assert!(sig.excerpt.chars().count() <= EXCERPT_CHARS + 1);
            }
            let _ = classify_message(&s, &s);
        }

        #[test]
        fn never_panics_on_mixed_phrases(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "STOP", "stop contacting me", "I don't owe", ">", "\n", "On x wrote:", "my lawyer is ",
                "Jane Roe", ",", "?", "not ", "chapter 7", "\u{200B}", "é", "İ", "ﬁ", "—", " and ",
                "passed away", "on behalf of my mum", "-----Original Message-----", "From: a", "Sent: b",
            ]),
            0..40,
        )) {
            let s: String = parts.concat();
            let _ = classify(&s);
        }
    }
}
