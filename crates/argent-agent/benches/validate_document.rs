//! How long validating one prompt document takes, by size: 8, 32 and 64 KiB (the cap).
//!
//! The document is a `tone/firm` partial of long paragraphs, each with a variable and a
//! block: the most work per byte a real prompt asks of validation (it is compiled, then
//! rendered for every sample account the tone applies to). Growth should be linear; the
//! figures are in the notes of issue #11 (`/work/notes/docs.md`) and the README.
//!
//! `cargo bench -p argent-agent --bench validate_document`

#![allow(clippy::unwrap_used)] // a bench: a panic is the failure report

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

use argent_agent::validate_document;
use argent_store::DocKind;

fn partial_of(bytes: usize) -> String {
    let para = "When you write for {{company}}, be brief and clear.\n{{#if company}}Name the amount and the date, and ask for a reply.{{/if}}\n\n";
    let mut body = para.repeat(bytes / para.len());
    body.push_str(&"x".repeat(bytes - body.len()));
    body
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("validate_document");
    group.sample_size(10);
    for kib in [8_usize, 32, 64] {
        let body = partial_of(kib * 1024);
        assert_eq!(
            validate_document(DocKind::Prompt, "tone/firm", &body),
            vec![]
        );
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(
            BenchmarkId::new("prompt", format!("{kib}KiB")),
            &body,
            |b, body| b.iter(|| validate_document(DocKind::Prompt, "tone/firm", body)),
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
