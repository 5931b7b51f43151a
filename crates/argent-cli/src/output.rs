//! Standard output for the whole crate. `print!` and `println!` are redefined here (this
//! module is declared first in `main.rs`, so every module of the crate sees these instead
//! of std's): std's panic when the write fails, and a reader that stops early
//! (`argent approvals show ID | head`) closes the pipe under us. Here a closed pipe ends
//! the process quietly with status 0 — the reader has what it wanted — and any other
//! write error is reported as one and exits with status 2, as other errors do.

use std::io::{ErrorKind, Write};

/// Ends the process after a failed write to standard output (see the module docs).
pub fn write_failed(e: &std::io::Error) -> ! {
    if e.kind() == ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    let _ = writeln!(std::io::stderr(), "error: writing to standard output: {e}");
    std::process::exit(2);
}

/// Writes `args` to standard output, or ends the process as [`write_failed`] does.
pub fn print(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args) {
        write_failed(&e);
    }
}

/// Whether `e` (anywhere in its chain of causes) is standard output closed by its reader.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::BrokenPipe)
    })
}

/// `print!` that ends the process quietly when standard output is closed.
macro_rules! print {
    ($($arg:tt)*) => {
        $crate::output::print(format_args!($($arg)*))
    };
}

/// `println!` that ends the process quietly when standard output is closed.
macro_rules! println {
    () => {
        $crate::output::print(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}
