//! Which of a set of patterns match somewhere in a text, in one pass.
//!
//! [`SetScan::matches`] gives exactly the answer of [`regex::RegexSet::matches`] on the same
//! patterns (same syntax: Unicode, case-insensitivity and word boundaries as the `regex`
//! crate reads them), at a fraction of its cost. Both run a lazy DFA over the text with
//! every pattern's matches reported ("all" match semantics); the `regex` crate's set loop is
//! written for texts with many matches and spends about 28 instructions a byte, where the
//! loop here takes the cached transition directly unless the state is special (a match,
//! dead, an uncomputed transition), which is rare in prose.
//!
//! Invariants:
//! - One Thompson NFA is compiled from the patterns; the lazy DFA and the fallback PikeVM
//!   are built from that same NFA, so they cannot disagree on what a pattern means.
//! - The lazy DFA supports Unicode word boundaries (`\b`) only on ASCII: on the first
//!   non-ASCII byte it quits, and the whole text is scanned again by the PikeVM (what the
//!   `regex` crate does too). A cache that gives up does the same. The answer never
//!   depends on which engine produced it.
//! - The DFA's cache is per thread (a pool, as in the `regex` crate): a scan takes no
//!   lock on the hot path and `SetScan` is `Send + Sync`.

use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::Arc;

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::nfa::thompson::{self, NFA, WhichCaptures, pikevm::PikeVM};
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{Input, MatchKind, PatternSet};

type CacheFn = Box<dyn Fn() -> Cache + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// Lazy DFA cache per pattern set: states are built as texts need them; a large cache is
/// cleared and rebuilt rather than given up on.
const DFA_CACHE_BYTES: usize = 16 << 20;

/// A compiled set of patterns (see the module docs). Cheap to clone.
#[derive(Clone)]
pub struct SetScan {
    inner: Arc<Inner>,
}

struct Inner {
    patterns: Vec<String>,
    /// `None` for an empty set.
    engines: Option<Engines>,
}

struct Engines {
    dfa: Arc<DFA>,
    cache: Pool<Cache, CacheFn>,
    pikevm: PikeVM,
}

impl std::fmt::Debug for SetScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetScan")
            .field("patterns", &self.inner.patterns)
            .finish()
    }
}

/// Which patterns of a [`SetScan`] matched, by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetMatches {
    matched: Vec<bool>,
}

impl SetMatches {
    /// Whether pattern `i` matched (false for an index out of range).
    pub fn matched(&self, i: usize) -> bool {
        self.matched.get(i).copied().unwrap_or(false)
    }

    /// The answers for patterns `from..from + len`, renumbered from 0: what a set of just
    /// those patterns would answer (a set's patterns match independently of each other).
    pub fn slice(&self, from: usize, len: usize) -> SetMatches {
        SetMatches {
            matched: (from..from.saturating_add(len))
                .map(|i| self.matched(i))
                .collect(),
        }
    }

    /// The indices that matched, in order.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.matched
            .iter()
            .enumerate()
            .filter(|(_, m)| **m)
            .map(|(i, _)| i)
    }
}

impl SetScan {
    /// Compiles `patterns` as one set; `size_limit` bounds the compiled NFA in bytes (as
    /// `regex::RegexSetBuilder::size_limit` does). The error says what does not compile.
    pub fn new<P: AsRef<str>>(patterns: &[P], size_limit: usize) -> Result<SetScan, String> {
        let list: Vec<String> = patterns.iter().map(|p| p.as_ref().to_string()).collect();
        if list.is_empty() {
            return Ok(SetScan::empty());
        }
        let nfa: NFA = thompson::Compiler::new()
            .syntax(syntax::Config::new())
            .configure(
                thompson::Config::new()
                    .nfa_size_limit(Some(size_limit))
                    .which_captures(WhichCaptures::Implicit),
            )
            .build_many(&list)
            .map_err(|e| e.to_string())?;
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::All)
                    .unicode_word_boundary(true)
                    .cache_capacity(DFA_CACHE_BYTES),
            )
            .build_from_nfa(nfa.clone())
            .map_err(|e| e.to_string())?;
        let pikevm = PikeVM::builder()
            .configure(PikeVM::config().match_kind(MatchKind::All))
            .build_from_nfa(nfa)
            .map_err(|e| e.to_string())?;
        let dfa = Arc::new(dfa);
        let for_cache = Arc::clone(&dfa);
        let create: CacheFn = Box::new(move || for_cache.create_cache());
        Ok(SetScan {
            inner: Arc::new(Inner {
                patterns: list,
                engines: Some(Engines {
                    dfa,
                    cache: Pool::new(create),
                    pikevm,
                }),
            }),
        })
    }

    /// The set of no patterns: nothing matches.
    pub fn empty() -> SetScan {
        SetScan {
            inner: Arc::new(Inner {
                patterns: Vec::new(),
                engines: None,
            }),
        }
    }

    /// The patterns, in index order.
    #[cfg(test)]
    pub fn patterns(&self) -> &[String] {
        &self.inner.patterns
    }

    pub fn len(&self) -> usize {
        self.inner.patterns.len()
    }

    /// Which patterns match somewhere in `text`: what `regex::RegexSet::matches` says.
    pub fn matches(&self, text: &str) -> SetMatches {
        let mut matched = vec![false; self.inner.patterns.len()];
        let Some(e) = &self.inner.engines else {
            return SetMatches { matched };
        };
        let done = {
            let mut cache = e.cache.get();
            dfa_scan(&e.dfa, &mut cache, text.as_bytes(), &mut matched)
        };
        if done.is_none() {
            // A non-ASCII byte under a Unicode word boundary, or a cache that gave up.
            matched.iter_mut().for_each(|m| *m = false);
            let mut cache = e.pikevm.create_cache();
            let mut set = PatternSet::new(e.pikevm.pattern_len());
            e.pikevm
                .which_overlapping_matches(&mut cache, &Input::new(text), &mut set);
            for p in set.iter() {
                if let Some(m) = matched.get_mut(p.as_usize()) {
                    *m = true;
                }
            }
        }
        SetMatches { matched }
    }
}

/// Runs the lazy DFA over `hay`, marking every pattern of every match state it passes
/// through (matches are reported one byte late, so the end-of-input transition is taken
/// too). `None` when the DFA cannot answer (it quit or gave up): the caller falls back.
fn dfa_scan(dfa: &DFA, cache: &mut Cache, hay: &[u8], matched: &mut [bool]) -> Option<()> {
    let mut sid = dfa.start_state_forward(cache, &Input::new(hay)).ok()?;
    if sid.is_tagged() && (sid.is_quit() || sid.is_dead()) {
        return sid.is_dead().then_some(());
    }
    let mut at = 0;
    while at < hay.len() {
        if !sid.is_tagged() {
            // The hot loop: cached transitions between ordinary states.
            let mut next = dfa.next_state_untagged(cache, sid, hay[at]);
            while !next.is_tagged() {
                sid = next;
                at += 1;
                match hay.get(at) {
                    Some(&b) => next = dfa.next_state_untagged(cache, sid, b),
                    None => break,
                }
            }
            if at == hay.len() {
                break;
            }
            sid = if next.is_unknown() {
                dfa.next_state(cache, sid, hay[at]).ok()?
            } else {
                next
            };
        } else {
            sid = dfa.next_state(cache, sid, hay[at]).ok()?;
        }
        at += 1;
        if sid.is_tagged() {
            if sid.is_match() {
                mark(dfa, cache, sid, matched);
            } else if sid.is_dead() {
                return Some(());
            } else if sid.is_quit() {
                return None;
            }
        }
    }
    sid = dfa.next_eoi_state(cache, sid).ok()?;
    if sid.is_match() {
        mark(dfa, cache, sid, matched);
    }
    Some(())
}

fn mark(dfa: &DFA, cache: &Cache, sid: regex_automata::hybrid::LazyStateID, matched: &mut [bool]) {
    for i in 0..dfa.match_len(cache, sid) {
        if let Some(m) = matched.get_mut(dfa.match_pattern(cache, sid, i).as_usize()) {
            *m = true;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn same(patterns: &[&str], text: &str) {
        let scan = SetScan::new(patterns, 1 << 24).unwrap();
        let set = regex::RegexSet::new(patterns).unwrap();
        let want: Vec<usize> = set.matches(text).iter().collect();
        let got: Vec<usize> = scan.matches(text).iter().collect();
        assert_eq!(got, want, "{patterns:?} on {text:?}");
    }

    #[test]
    fn answers_like_a_regex_set() {
        let p = [
            r"(?i)\bpay now\b",
            r"(?i)\bsue\b",
            r"(?is)debt collector.*attempt",
            r"x*",
            r"\bé\b",
            r"(?i)stra(ss|ß)e",
            r"$",
            r"^we",
            r"(?m)^final$",
        ];
        for t in [
            "",
            "Pay now or we sue.",
            "We pay NOW",
            "A DEBT COLLECTOR\nattempting",
            "résumé é café",
            "Straße and STRASSE",
            "final\nfinal",
            "pay nowhere",
            "\u{212A}",
        ] {
            same(&p, t);
        }
    }

    /// Every pattern set evaluation scans: each shipped policy's language set and the
    /// consistency families.
    fn shipped_sets() -> Vec<(SetScan, regex::RegexSet)> {
        let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let mut sets: Vec<SetScan> = ["us-consumer", "uk-consumer", "b2b"]
            .iter()
            .map(|id| {
                crate::Policy::load(&dir.join(format!("{id}.toml")))
                    .unwrap()
                    .text_set
                    .clone()
            })
            .collect();
        sets.push(crate::consistency::family_scan().clone());
        sets.into_iter()
            .map(|s| {
                let set = regex::RegexSet::new(s.patterns()).unwrap();
                (s, set)
            })
            .collect()
    }

    /// Words and pieces the shipped patterns look for, with look-alikes and non-ASCII
    /// letters (which send the scan to its fallback engine).
    const VOCAB: &[&str] = &[
        "we have",
        "we've",
        "recorded",
        "your promise",
        "promise to pay",
        "payment plan",
        "has been",
        "is now",
        "set up",
        "in place",
        "a member of our team",
        "someone",
        "will",
        "call you",
        "escalated",
        "your case",
        "thank you for",
        "confirm",
        "as agreed",
        "you",
        "pay",
        "discount",
        "10%",
        "off",
        "waive",
        "settlement",
        "full and final",
        "interest",
        "frozen",
        "no further",
        "fees",
        "12 monthly payments",
        "spread",
        "over",
        "6 months",
        "if",
        "once",
        "not",
        "never",
        "debt collector",
        "attempting to collect a debt",
        "information obtained will be used for that purpose",
        "dispute",
        "30 days",
        "sue",
        "court",
        "lawsuit",
        "arrest",
        "jail",
        "stop",
        "unsubscribe",
        "opt out",
        "reply STOP",
        "$1,500.50",
        "£40",
        "INV-2",
        "March 31",
        "2026-03-31",
        "today",
        "final notice",
        "immediately",
        ".",
        "!",
        "?",
        ",",
        "\n",
        " ",
        "é",
        "ñ",
        "ß",
        "\u{212A}",
        "\u{17F}",
        "\u{FF41}",
        "\u{200B}",
        "Ä",
        "ſue",
        "ﬁnal",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 512, ..proptest::prelude::ProptestConfig::default()
        })]

        #[test]
        fn shipped_sets_answer_like_a_regex_set(
            words in proptest::collection::vec(proptest::sample::select(VOCAB), 0..48),
            caps in proptest::collection::vec(proptest::bool::ANY, 48),
            joins in proptest::collection::vec(proptest::sample::select(&[" ", "", ". ", "\n"][..]), 48),
        ) {
            let mut text = String::new();
            for (i, w) in words.iter().enumerate() {
                if caps[i] { text.push_str(&w.to_uppercase()) } else { text.push_str(w) }
                text.push_str(joins[i]);
            }
            for (scan, set) in SETS.get_or_init(shipped_sets) {
                let want: Vec<usize> = set.matches(&text).iter().collect();
                let got: Vec<usize> = scan.matches(&text).iter().collect();
                proptest::prop_assert_eq!(got, want, "{:?}", text);
            }
        }
    }

    static SETS: std::sync::OnceLock<Vec<(SetScan, regex::RegexSet)>> = std::sync::OnceLock::new();

    #[test]
    fn an_empty_set_matches_nothing() {
        let scan = SetScan::new::<&str>(&[], 1 << 20).unwrap();
        assert_eq!(scan.matches("anything").iter().next(), None);
        assert_eq!(SetScan::empty().matches("").iter().next(), None);
    }

    #[test]
    fn a_pattern_that_does_not_compile_is_an_error() {
        assert!(SetScan::new(&["(unclosed"], 1 << 20).is_err());
    }
}
