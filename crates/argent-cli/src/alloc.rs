//! The `argent` process's allocator settings for `argent eval run` (#16). The only
//! `unsafe` code in the workspace: two calls that set a C allocator's option, which
//! neither allocator offers a safe interface for. Each takes plain integers, touches no
//! memory of ours, and only records the setting.
//!
//! Rust allocates through mimalloc (the `#[global_allocator]` in `main`); glibc's malloc
//! serves the C code, which here is SQLite. In an eval set at concurrency 100 (`argent eval
//! run core --repeat 3`, peak RSS at concurrency 1 and 100, release build), SQLite's memory
//! was two thirds of what a concurrent case adds, spread over glibc's per-thread arenas (up
//! to 8 per core, each keeping freed memory of its own), and mimalloc kept freed pages for
//! a second. With both settings: 1.04–1.17 → 0.87–0.93 MiB a concurrent case (see the
//! README's "Eval memory"). Both cost some time: the set at concurrency 16 took 2.05–2.08
//! s with the defaults and 2.40–2.62 s with both (one arena: SQLite's connection threads
//! then share its lock), 1.85–2.03 → 2.05–2.20 s with the purge delay alone; at concurrency
//! 100, 9.3–9.9 → 10.5–10.7 s with both. So one arena is taken only where the concurrent
//! cases' memory adds up ([`MANY_CASES`]), and the serving processes keep both defaults.

#![allow(unsafe_code)]

/// Above this concurrency an eval set runs with one C heap ([`one_c_heap`]): at 16 cases
/// the arenas' memory is a few MiB, at 100 a tenth of the set's peak.
pub const MANY_CASES: usize = 16;

/// glibc's malloc keeps one arena instead of up to eight per core. To be called before
/// any thread starts.
pub fn one_c_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes two integers and only sets malloc's parameter; M_ARENA_MAX
    // bounds the arenas created from now on.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// mimalloc's `mi_option_purge_delay` (mimalloc.h of v3, the version libmimalloc-sys
/// builds): how long freed pages stay committed before they are given back to the OS
/// (1,000 ms by default). The sys crate names no constant for it.
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// mimalloc gives freed pages back to the OS at once rather than a second later, so a
/// process of many short concurrent units does not peak at what is live plus what was
/// freed in the last moments.
pub fn purge_at_once() {
    // SAFETY: mi_option_set takes an option number and a value and only records it; the
    // number is mimalloc.h's for the purge delay (checked by the test below).
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The option number is the purge delay's: its default is 1,000 (ms), and it reads back
    /// what was set.
    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // SAFETY: reads an option by its number.
        let before = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(before, 1000, "mimalloc's default purge delay");
        purge_at_once();
        // SAFETY: as above.
        let after = unsafe { libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) };
        assert_eq!(after, 0);
    }
}
