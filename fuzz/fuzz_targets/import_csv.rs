//! The aging-CSV importer on arbitrary bytes: it must return a portfolio or an error
//! naming a position, never panic. A portfolio it accepts must survive being written
//! back out and read again unchanged (what `argent import` then stores).
#![no_main]

use argent_core::import::{parse, parse_aging_csv, to_csv};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The positioned parse `argent import` uses, then the portfolio form.
    let _ = parse(data);
    if let Ok(portfolio) = parse_aging_csv(data) {
        let Ok(written) = to_csv(&portfolio) else {
            return; // a sum beyond the money bound is an error, not a panic
        };
        let again = parse_aging_csv(&written);
        assert!(
            again.is_ok(),
            "an accepted portfolio written back out no longer parses: {:?}",
            again.err()
        );
    }
});
