//! Tool-argument parsing on arbitrary model output: the first byte picks the tool (or an
//! unknown name), the rest is the raw argument text. Every outcome must be a typed
//! action or a model-visible `ToolError`, never a panic.
#![no_main]

use std::sync::OnceLock;

use argent_tools::Registry;
use libfuzzer_sys::fuzz_target;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| match Registry::builtin() {
        Ok(r) => r,
        Err(e) => panic!("the built-in registry must load: {e}"),
    })
}

const NAMES: [&str; 8] = [
    "read_aging",
    "send_email",
    "log_promise",
    "open_case",
    "propose_plan",
    "escalate",
    "request_call",
    "no_such_tool",
];

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else {
        return;
    };
    let name = NAMES[usize::from(*first) % NAMES.len()];
    let text = String::from_utf8_lossy(rest);
    let _ = registry().parse(name, &text);
});
