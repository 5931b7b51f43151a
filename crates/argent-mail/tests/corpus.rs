//! The parser and classifier on a corpus of realistic raw messages (tests/corpus/), and a
//! property: parsing never panics, whatever the bytes.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use proptest::prelude::*;

use argent_mail::inbound::{
    MailKind, ParseError, Verdict, auth_results, parse, parse_with_limit, return_date, split_text,
};

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/corpus/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn date(y: i32, m: u32, d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, d).unwrap()
}

#[test]
fn gmail_reply_threading_sender_auth_and_quoted_history() {
    let m = parse(&corpus("gmail_reply.eml")).unwrap();
    assert_eq!(
        m.message_id.as_deref(),
        Some("CAF1aB2c3D4e5F6g7H8i9J0kLmNoPqRsTuV@mail.gmail.com")
    );
    assert_eq!(m.in_reply_to, vec!["argent-out-1-abc@acme-ar.example"]);
    assert_eq!(m.references, vec!["argent-out-1-abc@acme-ar.example"]);
    assert_eq!(m.from.address, "jane.doe@gmail.com", "lowercased");
    assert_eq!(m.from.name.as_deref(), Some("Jane Doe"));
    assert_eq!(m.to[0].address, "ar@acme-ar.example");
    assert_eq!(m.subject, "Re: Invoice INV-1001 is overdue");
    assert_eq!(m.date.unwrap().to_rfc3339(), "2026-11-30T14:14:58+00:00");
    assert!(!m.html_only);
    assert_eq!(m.kind, MailKind::Human);
    // quoted-printable decoded (the em dash), quoted history cut at "On … wrote:".
    assert!(
        m.new_text
            .contains("Sorry for the delay — I can pay the full amount by December 15."),
        "{}",
        m.new_text
    );
    assert!(
        m.new_text.ends_with("Jane"),
        "sign-offs are kept: {}",
        m.new_text
    );
    assert!(!m.new_text.contains("wrote:"));
    assert!(!m.new_text.contains("INV-1001 for $1,200.00"));
    let q = m.quoted.clone().unwrap();
    assert!(q.starts_with("On Fri, Nov 27, 2026 at 10:02 AM"), "{q}");
    assert!(q.contains("> Invoice INV-1001 for $1,200.00"));
    assert_eq!(m.auth.spf, Some(Verdict::Pass));
    assert_eq!(m.auth.dkim, Some(Verdict::Pass));
    assert_eq!(m.auth.dmarc, Some(Verdict::Pass));
    assert!(!m.auth.failing());
    assert_eq!(m.thread_ids(), vec!["argent-out-1-abc@acme-ar.example"]);
}

#[test]
fn outlook_reply_iso_8859_1_original_message_block_and_failing_dmarc() {
    let m = parse(&corpus("outlook_reply.eml")).unwrap();
    assert_eq!(m.from.address, "k.bauer@contoso.example");
    assert_eq!(m.from.name.as_deref(), Some("Bauer, Klaus"));
    assert!(
        m.new_text.contains("we dispute this invoice"),
        "{}",
        m.new_text
    );
    assert!(
        m.new_text.contains("Mit freundlichen Grüßen"),
        "charset decoded: {}",
        m.new_text
    );
    assert!(!m.new_text.contains("Original Message"));
    assert!(!m.new_text.contains("EUR 5.400,00"));
    assert!(m.quoted.unwrap().starts_with("-----Original Message-----"));
    assert_eq!(m.auth.spf, Some(Verdict::Pass));
    assert_eq!(
        m.auth.dkim,
        Some(Verdict::None),
        "the comment is not read as a verdict"
    );
    assert_eq!(m.auth.dmarc, Some(Verdict::Fail));
    assert!(m.auth.failing());
    assert_eq!(m.auth.summary(), "spf=pass dkim=none dmarc=fail");
    assert_eq!(m.kind, MailKind::Human);
}

#[test]
fn apple_mail_reply_quoted_with_angle_brackets() {
    let m = parse(&corpus("apple_reply.eml")).unwrap();
    assert_eq!(
        m.message_id.as_deref(),
        Some("3C5E7F90-1A2B-4C3D-8E9F-0A1B2C3D4E5F@lopez-family.example")
    );
    assert_eq!(
        m.new_text,
        "I already paid this last week by bank transfer, reference 88123.\n\nMaria"
    );
    let q = m.quoted.unwrap();
    assert!(q.starts_with("> On 1 Dec 2026, at 17:45"), "{q}");
    assert_eq!(m.auth, Default::default(), "no Authentication-Results");
    assert_eq!(m.auth.summary(), "none reported");
}

#[test]
fn html_only_mail_becomes_text() {
    let m = parse(&corpus("html_only.eml")).unwrap();
    assert!(m.html_only);
    assert!(
        m.new_text.contains("three monthly instalments"),
        "{}",
        m.new_text
    );
    assert!(
        m.new_text.contains("£400"),
        "entities decoded: {}",
        m.new_text
    );
    assert!(!m.new_text.contains('<'), "no tags: {}", m.new_text);
    assert!(
        !m.new_text.contains("color: red"),
        "no style: {}",
        m.new_text
    );
    assert_eq!(m.kind, MailKind::Human);
}

#[test]
fn iso_8859_1_headers_and_8bit_body() {
    let m = parse(&corpus("latin1.eml")).unwrap();
    assert_eq!(m.from.name.as_deref(), Some("François Léger"));
    assert_eq!(m.subject, "Réglement de la facture");
    assert!(
        m.new_text.contains("Je réglerai la facture dès réception"),
        "{}",
        m.new_text
    );
    assert!(m.new_text.contains("10 décembre"));
}

#[test]
fn base64_body_decoded_and_references_in_order() {
    let m = parse(&corpus("base64_body.eml")).unwrap();
    assert_eq!(
        m.new_text,
        "I will send a cheque for the full amount on Friday.\n\nLee"
    );
    assert_eq!(
        m.references,
        vec![
            "older@chen-design.example",
            "argent-out-4-jkl@acme-ar.example"
        ]
    );
    assert!(m.in_reply_to.is_empty());
    assert_eq!(
        m.thread_ids(),
        vec![
            "argent-out-4-jkl@acme-ar.example",
            "older@chen-design.example"
        ],
        "the newest reference first"
    );
}

#[test]
fn out_of_office_with_a_return_date() {
    let m = parse(&corpus("ooo_with_date.eml")).unwrap();
    assert_eq!(
        m.kind,
        MailKind::AutoReply {
            out_of_office: true,
            return_date: Some(date(2026, 12, 14)),
        }
    );
    assert_eq!(m.kind.label(), "out_of_office");
}

#[test]
fn out_of_office_without_a_return_date_german_subject() {
    let m = parse(&corpus("ooo_without_date.eml")).unwrap();
    assert_eq!(
        m.kind,
        MailKind::AutoReply {
            out_of_office: true,
            return_date: None,
        }
    );
}

#[test]
fn out_of_office_french_and_spanish() {
    let fr = parse(&corpus("ooo_french.eml")).unwrap();
    assert_eq!(
        fr.kind,
        MailKind::AutoReply {
            out_of_office: true,
            return_date: Some(date(2027, 1, 7)),
        }
    );
    let es = parse(&corpus("ooo_spanish.eml")).unwrap();
    assert_eq!(
        es.kind,
        MailKind::AutoReply {
            out_of_office: true,
            return_date: Some(date(2026, 12, 15)),
        }
    );
}

#[test]
fn dsn_hard_bounce() {
    let m = parse(&corpus("dsn_hard_bounce.eml")).unwrap();
    assert_eq!(
        m.kind,
        MailKind::Bounce {
            recipient: Some("old.address@gone-company.example".into()),
            status: Some("5.1.1".into()),
            hard: true,
            original_message_id: Some("argent-out-6-pqr@acme-ar.example".into()),
        }
    );
    assert_eq!(m.kind.label(), "hard_bounce");
}

#[test]
fn dsn_soft_bounce() {
    let m = parse(&corpus("dsn_soft_bounce.eml")).unwrap();
    assert_eq!(
        m.kind,
        MailKind::Bounce {
            recipient: Some("full.box@busy.example".into()),
            status: Some("4.2.2".into()),
            hard: false,
            original_message_id: None,
        }
    );
    assert_eq!(m.kind.label(), "soft_bounce");
}

#[test]
fn plain_mailer_daemon_bounce_without_a_dsn_part() {
    let m = parse(&corpus("plain_bounce.eml")).unwrap();
    match m.kind {
        MailKind::Bounce {
            recipient,
            status,
            hard,
            ..
        } => {
            assert_eq!(recipient.as_deref(), Some("nobody@legacy-customer.example"));
            assert_eq!(status.as_deref(), Some("5.1.1"));
            assert!(hard);
        }
        other => panic!("not a bounce: {other:?}"),
    }
}

#[test]
fn attachment_described_never_kept_and_signature_cut() {
    let m = parse(&corpus("with_attachment.eml")).unwrap();
    assert_eq!(m.attachments.len(), 1);
    let a = &m.attachments[0];
    assert_eq!(a.name.as_deref(), Some("remittance-INV-7007.pdf"));
    assert_eq!(a.content_type, "application/pdf");
    assert!(a.size > 0 && a.size < 200, "decoded size: {}", a.size);
    assert_eq!(
        m.new_text,
        "Please find the remittance advice attached; we paid INV-7007 today."
    );
    assert_eq!(m.signature.as_deref(), Some("Rita Novak\nNovak Studio"));
    // The attachment's bytes appear nowhere in what is kept.
    let kept = serde_json::to_string(&m).unwrap();
    assert!(!kept.contains("JVBERi0"), "{kept}");
    assert!(!kept.contains("%PDF"), "{kept}");
}

#[test]
fn malformed_messages_get_a_clear_error() {
    let e = parse(&corpus("malformed.eml")).unwrap_err();
    assert!(matches!(e, ParseError::NotAMessage(_)), "{e:?}");
    assert!(e.to_string().contains("not an RFC 822 message"), "{e}");
    assert_eq!(parse(b"").unwrap_err(), ParseError::Empty);
    assert_eq!(parse(b" \r\n ").unwrap_err(), ParseError::Empty);
    let big = corpus("gmail_reply.eml");
    let e = parse_with_limit(&big, 100).unwrap_err();
    assert!(matches!(e, ParseError::TooLarge { max: 100, .. }), "{e:?}");
    assert!(e.to_string().contains("more than the 100 allowed"));
    // Headers but no From: not a message argent can act on.
    let e = parse(b"Subject: hi\r\nTo: ar@acme-ar.example\r\n\r\nhello\r\n").unwrap_err();
    assert!(e.to_string().contains("no From address"), "{e}");
}

#[test]
fn deeply_nested_multiparts_do_not_crash() {
    let mut raw = String::from("From: a@b.example\r\nSubject: nest\r\nMIME-Version: 1.0\r\n");
    let depth = 2000;
    for i in 0..depth {
        raw.push_str(&format!(
            "Content-Type: multipart/mixed; boundary=\"b{i}\"\r\n\r\n--b{i}\r\n"
        ));
    }
    raw.push_str("Content-Type: text/plain\r\n\r\nhello\r\n");
    let _ = parse(raw.as_bytes());
}

#[test]
fn signature_only_cut_at_the_delimiter_and_when_short() {
    let (new, q, sig) = split_text("I will pay on Monday.\n\nThanks,\nAnn");
    assert_eq!(new, "I will pay on Monday.\n\nThanks,\nAnn");
    assert_eq!((q, sig), (None, None));
    let long: String = (0..20).map(|i| format!("line {i}\n")).collect();
    let (new, _, sig) = split_text(&format!("Hello\n-- \n{long}"));
    assert!(sig.is_none(), "too long to be a signature");
    assert!(new.contains("line 19"));
    // A wrapped "On … wrote:" header.
    let (new, q, _) = split_text(
        "Fine.\n\nOn Mon, 30 Nov 2026 at 10:00, Acme Receivables <ar@acme.example>\nwrote:\n> old",
    );
    assert_eq!(new, "Fine.");
    assert!(q.unwrap().starts_with("On Mon"));
    // German and an Outlook header block without a separator line.
    let (new, q, _) = split_text(
        "Danke.\n\nVon: Acme <ar@acme.example>\nGesendet: Montag, 30. November 2026 10:00\nAn: Klaus\nBetreff: Rechnung\n\nalt",
    );
    assert_eq!(new, "Danke.");
    assert!(q.unwrap().starts_with("Von:"));
}

#[test]
fn return_dates_in_common_forms() {
    let sent = date(2026, 12, 3);
    for (text, want) in [
        (
            "I am out of the office until 14 December 2026.",
            Some(date(2026, 12, 14)),
        ),
        ("Back on December 14th.", Some(date(2026, 12, 14))),
        (
            "Ich bin ab dem 4. Januar 2027 wieder im Büro.",
            Some(date(2027, 1, 4)),
        ),
        (
            "Ich bin bis 14.12. nicht erreichbar.",
            Some(date(2026, 12, 14)),
        ),
        (
            "Ich bin bis zum 14.12.2026 im Urlaub.",
            Some(date(2026, 12, 14)),
        ),
        ("Je serai de retour le 7 janvier.", Some(date(2027, 1, 7))),
        (
            "Estaré de vuelta el 15 de diciembre de 2026.",
            Some(date(2026, 12, 15)),
        ),
        ("Back 2026-12-20.", Some(date(2026, 12, 20))),
        ("Back on 12/20/2026.", Some(date(2026, 12, 20))),
        ("Back on 05/06/2027.", None), // day or month first: unknown
        ("I am away with limited access to email.", None),
        ("Away since 1 November 2026.", None), // in the past
        ("Back on 31 February 2027.", None),   // no such day
    ] {
        assert_eq!(return_date(text, sent), want, "{text}");
    }
}

#[test]
fn auth_results_edge_cases() {
    let a = auth_results(
        "mx.example; dkim=fail header.d=x; dkim=pass header.d=y; spf=softfail (sender spf=pass said nobody) smtp.mailfrom=x",
    );
    assert_eq!(a.dkim, Some(Verdict::Pass), "any passing signature");
    assert_eq!(a.spf, Some(Verdict::SoftFail));
    assert!(a.failing());
    assert_eq!(auth_results("mx.example; none"), Default::default());
}

#[test]
fn auto_reply_headers_without_out_of_office() {
    let raw = b"From: noreply@shop.example\r\nSubject: Your ticket #123\r\nAuto-Submitted: auto-generated\r\nDate: Thu, 3 Dec 2026 09:00:00 +0000\r\n\r\nWe received your request.\r\n";
    assert_eq!(
        parse(raw).unwrap().kind,
        MailKind::AutoReply {
            out_of_office: false,
            return_date: None
        }
    );
    let raw = b"From: ann@x.example\r\nSubject: Re: invoice\r\nAuto-Submitted: no\r\n\r\nSorry, I was out of the office until 1 December. I'll pay now.\r\n";
    assert_eq!(
        parse(raw).unwrap().kind,
        MailKind::Human,
        "a person writing about being away"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]
    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse(&bytes);
    }

    #[test]
    fn parse_never_panics_on_mangled_messages(cut in 0usize..2200, flip in any::<u8>(), at in 0usize..2200) {
        for name in ["gmail_reply.eml", "dsn_hard_bounce.eml", "with_attachment.eml"] {
            let mut raw = corpus(name);
            if at < raw.len() { raw[at] ^= flip; }
            raw.truncate(cut.min(raw.len()));
            let _ = parse(&raw);
        }
    }
}
