//! A prompt template as a manager might write it, validated as the editor does (parse,
//! then a strict render in the role its name gives it). The first byte picks which
//! template it stands in for. It must answer with line-located problems or none, never
//! panic or overflow the stack (a partial that includes itself).
#![no_main]

use argent_agent::validate_document;
use argent_store::DocKind;
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 6] = [
    "system",
    "user_inbound",
    "user_step",
    "tone/firm",
    "step/overdue_notice",
    "disclosure/us-consumer-initial",
];

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let name = NAMES[usize::from(*first) % NAMES.len()];
    let _ = validate_document(DocKind::Prompt, name, text);
});
