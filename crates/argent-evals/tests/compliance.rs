//! The compliance check's eval set (`evals/compliance/`) and its figures: the set loads and
//! is big and labelled enough; the offline classifier's reported precision and recall are
//! the ones its per-draft answers give (recomputed here independently); scoring a
//! hand-made set gives known figures. Not asserted: that the figures are high.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use argent_agent::{Category, OfflineComplianceCheck};
use argent_core::Jurisdiction;
use argent_evals::{DraftResult, Label, load_compliance_set, run_compliance, score_compliance};

fn set_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../evals/compliance")
}

#[test]
fn the_set_is_big_labelled_and_covers_every_category_and_jurisdiction() {
    let drafts = load_compliance_set(&set_dir()).unwrap();
    assert!(drafts.len() >= 40, "{} drafts", drafts.len());
    let compliant = drafts
        .iter()
        .filter(|d| d.label == Label::Compliant)
        .count();
    assert!(compliant >= 10, "{compliant} compliant drafts");
    for c in Category::ALL.iter().filter(|c| **c != Category::Other) {
        assert!(
            drafts.iter().any(|d| d.category == Some(*c)),
            "no draft of category {c}"
        );
    }
    for j in Jurisdiction::ALL {
        assert!(drafts.iter().any(|d| d.jurisdiction == *j), "no {j} draft");
    }
    for d in &drafts {
        assert_eq!(
            d.label == Label::NotCompliant,
            d.category.is_some(),
            "{}: a category exactly when not compliant",
            d.id
        );
    }
}

#[test]
fn a_bad_label_is_refused_with_its_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("x.toml"),
        "[[draft]]\nid = \"a\"\njurisdiction = \"b2b\"\nlabel = \"not_compliant\"\ncategory = \"rudeness\"\nsubject = \"s\"\nbody = \"b\"\n",
    )
    .unwrap();
    let e = load_compliance_set(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("x.toml") && e.contains("draft[0].category"),
        "{e}"
    );
    std::fs::write(
        dir.path().join("x.toml"),
        "[[draft]]\nid = \"a\"\njurisdiction = \"b2b\"\nlabel = \"not_compliant\"\nsubject = \"s\"\nbody = \"b\"\n",
    )
    .unwrap();
    let e = load_compliance_set(dir.path()).unwrap_err().to_string();
    assert!(e.contains("must name its category"), "{e}");
}

/// (true positives, false positives, false negatives).
type Tally = (usize, usize, usize);

/// Precision and recall recomputed from the per-draft results, by a different route than
/// the library: lists filtered per definition.
fn recompute(results: &[DraftResult]) -> (BTreeMap<Category, Tally>, Tally) {
    let mut per = BTreeMap::new();
    let cats: Vec<Category> = Category::ALL.to_vec();
    for c in cats {
        let tp = results
            .iter()
            .filter(|r| r.expected_category == Some(c) && r.held && r.category == Some(c))
            .count();
        let fp = results
            .iter()
            .filter(|r| r.held && r.category == Some(c) && r.expected_category != Some(c))
            .count();
        let fn_ = results
            .iter()
            .filter(|r| r.expected_category == Some(c) && !(r.held && r.category == Some(c)))
            .count();
        if tp + fp + fn_ > 0 {
            per.insert(c, (tp, fp, fn_));
        }
    }
    let tp = results
        .iter()
        .filter(|r| r.label == Label::NotCompliant && r.held)
        .count();
    let fp = results
        .iter()
        .filter(|r| r.label == Label::Compliant && r.held)
        .count();
    let fn_ = results
        .iter()
        .filter(|r| r.label == Label::NotCompliant && !r.held)
        .count();
    (per, (tp, fp, fn_))
}

#[tokio::test]
async fn the_offline_classifiers_figures_are_computed_from_its_answers() {
    let drafts = load_compliance_set(&set_dir()).unwrap();
    let report = run_compliance(
        &OfflineComplianceCheck,
        &drafts,
        &|_| None,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(report.results.len(), drafts.len());
    // The offline check never fails: every hold is a concern with a category.
    assert!(report.results.iter().all(|r| !r.error));
    assert!(
        report
            .results
            .iter()
            .all(|r| r.held == r.category.is_some())
    );
    // Each draft's answer is what the classifier says for it alone.
    for (d, r) in drafts.iter().zip(&report.results) {
        assert_eq!(d.id, r.id);
        let alone = OfflineComplianceCheck.classify(&argent_agent::CheckRequest {
            jurisdiction: d.jurisdiction,
            subject: &d.subject,
            body: &d.body,
            inbound: d.inbound.as_deref(),
            instructions: None,
        });
        assert_eq!(
            r.held,
            alone != argent_agent::Verdict::Compliant,
            "{}",
            d.id
        );
    }
    let (per, (tp, fp, fn_)) = recompute(&report.results);
    let o = report.overall;
    assert_eq!(
        (o.tp as usize, o.fp as usize, o.fn_ as usize),
        (tp, fp, fn_)
    );
    assert_eq!(
        o.tp + o.fp + o.fn_ + o.tn,
        u32::try_from(drafts.len()).unwrap()
    );
    let close = |a: Option<f64>, num: usize, den: usize| match a {
        None => den == 0,
        Some(v) => den > 0 && (v - num as f64 / den as f64).abs() < 1e-12,
    };
    assert!(close(o.precision(), tp, tp + fp));
    assert!(close(o.recall(), tp, tp + fn_));
    for (c, (tp, fp, fn_)) in &per {
        let k = report.by_category.get(c).unwrap();
        assert_eq!(
            (k.tp as usize, k.fp as usize, k.fn_ as usize),
            (*tp, *fp, *fn_),
            "{c}"
        );
        assert!(close(k.precision(), *tp, tp + fp), "{c}");
        assert!(close(k.recall(), *tp, tp + fn_), "{c}");
    }
    // The printed table carries the same figures.
    let text = report.to_string();
    assert!(text.contains("overall"), "{text}");
    assert!(
        text.contains(&format!(
            "{:>4} {:>4} {:>4} {:>4}",
            o.support(),
            o.tp,
            o.fp,
            o.fn_
        )),
        "{text}"
    );
    println!("{text}");
}

fn result(label: Label, expected: Option<Category>, held: Option<Category>) -> DraftResult {
    DraftResult {
        id: "x".into(),
        jurisdiction: Jurisdiction::UsConsumer,
        label,
        expected_category: expected,
        held: held.is_some(),
        category: held,
        reason: None,
        error: false,
        latency_us: 10,
    }
}

#[test]
fn scoring_a_known_set_gives_known_figures() {
    use Category::*;
    use Label::*;
    let results = vec![
        result(NotCompliant, Some(FalseUrgency), Some(FalseUrgency)), // tp urgency
        result(NotCompliant, Some(FalseUrgency), Some(Harassment)),   // fn urgency, fp harassment
        result(NotCompliant, Some(FalseUrgency), None),               // fn urgency, overall fn
        result(NotCompliant, Some(Harassment), Some(Harassment)),     // tp harassment
        result(Compliant, None, Some(FalseUrgency)),                  // fp urgency, overall fp
        result(Compliant, None, None),                                // tn
    ];
    let r = score_compliance("t", results);
    assert_eq!(
        (r.overall.tp, r.overall.fp, r.overall.fn_, r.overall.tn),
        (3, 1, 1, 1)
    );
    assert_eq!(r.overall.precision(), Some(0.75));
    assert_eq!(r.overall.recall(), Some(0.75));
    let u = r.by_category[&FalseUrgency];
    assert_eq!((u.tp, u.fp, u.fn_), (1, 1, 2));
    assert_eq!(u.precision(), Some(0.5));
    assert_eq!(u.recall(), Some(1.0 / 3.0));
    let h = r.by_category[&Harassment];
    assert_eq!((h.tp, h.fp, h.fn_), (1, 1, 0));
    assert_eq!(h.recall(), Some(1.0));
    assert!(!r.by_category.contains_key(&Misrepresentation));
    // No positives: recall is undefined, not 0 or 1.
    let none = score_compliance("t", vec![result(Compliant, None, None)]);
    assert_eq!(none.overall.recall(), None);
    assert_eq!(none.overall.precision(), None);
    assert_eq!(none.latency_median_us, 10);
}
