//! Every write of the CLI to stdout and stderr goes through here, so that a reader that goes away
//! (`headcount plan | head -1`) ends the output quietly instead of panicking the way `outln!`
//! does. `unsafe` is forbidden, so SIGPIPE stays ignored (Rust's default) and the resulting
//! `BrokenPipe` error is handled instead.
//!
//! After stdout is found closed, further output is dropped and the command carries on to its
//! usual exit code: an apply is never cut short by a pager, and `plan --detailed-exitcode | head`
//! still reports 2 through `set -o pipefail`.

use std::fmt;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stdout met a closed pipe.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Writes to stdout; a closed pipe is not an error, any other failure (a full disk behind a
/// redirection) is.
pub(crate) fn stdout(args: fmt::Arguments<'_>) -> io::Result<()> {
    write_to(&mut io::stdout().lock(), &STDOUT_CLOSED, args)
}

/// Writes raw bytes to stdout (completions are generated into a buffer first).
pub(crate) fn stdout_bytes(bytes: &[u8]) -> io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    let mut out = io::stdout().lock();
    quiet_on_closed(
        out.write_all(bytes).and_then(|()| out.flush()),
        &STDOUT_CLOSED,
    )
}

/// Flushes stdout (before reading a confirmation).
pub(crate) fn flush() -> io::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return Ok(());
    }
    quiet_on_closed(io::stdout().lock().flush(), &STDOUT_CLOSED)
}

fn write_to(w: &mut impl Write, closed: &AtomicBool, args: fmt::Arguments<'_>) -> io::Result<()> {
    if closed.load(Ordering::Relaxed) {
        return Ok(());
    }
    quiet_on_closed(w.write_fmt(args), closed)
}

fn quiet_on_closed(result: io::Result<()>, closed: &AtomicBool) -> io::Result<()> {
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
            closed.store(true, Ordering::Relaxed);
            Ok(())
        }
        // Named, or the user sees a bare "No space left on device" with no idea of what failed.
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot write to stdout: {e}"),
        )),
        Ok(()) => Ok(()),
    }
}

/// Writes to stderr, ignoring every failure: stderr is the channel of last resort, and a
/// closed one (`2>&1 | head`) must not turn a note into a panic.
pub(crate) fn stderr(args: fmt::Arguments<'_>) {
    let _ = io::stderr().lock().write_fmt(args);
}

/// `out!` that ends quietly on a closed pipe; `?` turns other write failures into errors.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::stdout(format_args!($($arg)*))?
    };
}

/// `outln!` that ends quietly on a closed pipe; `?` turns other write failures into errors.
macro_rules! outln {
    () => {
        $crate::cli::out::stdout(format_args!("\n"))?
    };
    ($($arg:tt)*) => {
        $crate::cli::out::stdout(format_args!("{}\n", format_args!($($arg)*)))?
    };
}

/// `errln!` that never panics.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::out::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone away.
    struct Closed;

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A writer on a full disk.
    struct Full;

    impl Write for Full {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn other_write_failures_are_errors() {
        let closed = AtomicBool::new(false);
        assert!(write_to(&mut Full, &closed, format_args!("x")).is_err());
        assert!(!closed.load(Ordering::Relaxed));
    }

    #[test]
    fn a_closed_pipe_is_a_quiet_end_and_later_output_is_dropped() {
        let closed = AtomicBool::new(false);
        assert!(write_to(&mut Closed, &closed, format_args!("x")).is_ok());
        assert!(closed.load(Ordering::Relaxed));
        // Once closed, nothing is attempted, not even on a writer that would fail otherwise.
        assert!(write_to(&mut Full, &closed, format_args!("y")).is_ok());
    }
}
