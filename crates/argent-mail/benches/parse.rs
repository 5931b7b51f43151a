//! Parse throughput: messages per second for a 50 KB multipart reply (text and HTML
//! alternatives with quoted history, a base64 PDF attachment), parsed and classified by
//! `argent_mail::inbound::parse`. `cargo bench --bench parse` (criterion reports elem/s).
#![allow(clippy::unwrap_used)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A Gmail-style reply of about 50 KB.
fn message() -> Vec<u8> {
    let mut quoted = String::new();
    for i in 0..120 {
        quoted.push_str(&format!(
            "> Line {i} of our earlier notice: invoice INV-{i:04} for $1,200.00 was due on 2026-10-31.\r\n"
        ));
    }
    let mut html = String::from(
        "<div dir=\"ltr\">I can pay half on Friday and the rest on the 15th.<br>Ann</div><blockquote>",
    );
    for i in 0..150 {
        html.push_str(&format!("<p>Line {i} of our earlier notice: invoice <b>INV-{i:04}</b> for $1,200.00 was due.</p>"));
    }
    html.push_str("</blockquote>");
    let attachment: String = {
        let bytes: Vec<u8> = (0..18_000u32).map(|i| (i % 251) as u8).collect();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for (n, chunk) in bytes.chunks(3).enumerate() {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let v = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for k in 0..4 {
                out.push(alphabet[((v >> (18 - 6 * k)) & 63) as usize] as char);
            }
            if n % 19 == 18 {
                out.push_str("\r\n");
            }
        }
        out
    };
    format!(
        "From: Ann Lee <ann@mail.example>\r\nTo: ar@acme-ar.example\r\nSubject: Re: Your account\r\n\
         Date: Fri, 20 Nov 2026 17:30:00 +0000\r\nMessage-ID: <bench-1@mail.example>\r\n\
         In-Reply-To: <argent-out-1@acme-ar.example>\r\nReferences: <argent-out-1@acme-ar.example>\r\n\
         Authentication-Results: mx.acme-ar.example; spf=pass; dkim=pass; dmarc=pass\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"M\"\r\n\r\n\
         --M\r\nContent-Type: multipart/alternative; boundary=\"A\"\r\n\r\n\
         --A\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nI can pay half on Friday and the rest on the 15th.\r\n\r\nAnn\r\n\r\n\
         On Thu, 19 Nov 2026 at 09:00, Acme Receivables <ar@acme-ar.example> wrote:\r\n{quoted}\r\n\
         --A\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--A--\r\n\
         --M\r\nContent-Type: application/pdf; name=\"remittance.pdf\"\r\nContent-Disposition: attachment; filename=\"remittance.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{attachment}\r\n--M--\r\n"
    )
    .into_bytes()
}

fn bench(c: &mut Criterion) {
    let raw = message();
    eprintln!("message size: {} bytes", raw.len());
    let parsed = argent_mail::inbound::parse(&raw).unwrap();
    assert_eq!(parsed.attachments.len(), 1);
    assert!(parsed.quoted.is_some());
    let mut g = c.benchmark_group("inbound");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_50kb_multipart", |b| {
        b.iter(|| argent_mail::inbound::parse(std::hint::black_box(&raw)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
