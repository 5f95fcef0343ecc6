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
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use headcount::model::Scrubber;

/// Set once a write to stdout met a closed pipe.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// The run's scrubber: the engine registers every secret it resolves here, and every line the
/// CLI prints or logs is scrubbed with it (the last line of defence against a vendor that
/// echoes a credential).
static SCRUBBER: LazyLock<Scrubber> = LazyLock::new(Scrubber::default);

/// A handle on the run's scrubber (shared: what the engine registers, the output sees).
pub(crate) fn scrubber() -> Scrubber {
    SCRUBBER.clone()
}

/// The formatted text, scrubbed.
fn scrubbed(args: fmt::Arguments<'_>) -> String {
    let text = args.to_string();
    if SCRUBBER.is_empty() {
        text
    } else {
        SCRUBBER.scrub(&text)
    }
}

/// Writes to stdout; a closed pipe is not an error, any other failure (a full disk behind a
/// redirection) is.
pub(crate) fn stdout(args: fmt::Arguments<'_>) -> io::Result<()> {
    let text = scrubbed(args);
    write_to(
        &mut io::stdout().lock(),
        &STDOUT_CLOSED,
        format_args!("{text}"),
    )
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
    let text = scrubbed(args);
    let _ = io::stderr()
        .lock()
        .write_all(terminal_safe(&text).as_bytes());
}

/// Messages on stderr quote values (an identity from a tampered plan file, a vendor's words):
/// control characters other than newline and tab are escaped, and so are bidi overrides. Our
/// own colour codes (`ESC [ digits ; m`) are kept; any other escape sequence (clear screen,
/// window title, cursor moves) is shown as text.
fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    let safe = |c: char| match c {
        '\n' | '\t' => true,
        '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => false,
        c => !c.is_control(),
    };
    if text.chars().all(safe) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if c == '\u{1b}'
            && let Some(len) = sgr_len(rest)
        {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if safe(c) {
            out.push(c);
        } else if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// The length of a colour sequence (`ESC [ 1;31 m`) at the start of `s`.
fn sgr_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\u{1b}[")?;
    let params = body
        .find(|c: char| !(c.is_ascii_digit() || c == ';'))
        .filter(|&i| i <= 16)?;
    (body[params..].starts_with('m')).then_some(2 + params + 1)
}

/// The writer of log lines: stderr, scrubbed. tracing formats each event into one buffer and
/// writes it at once, so a secret is never split across two writes.
pub(crate) struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let shown = if SCRUBBER.is_empty() {
            text.into_owned()
        } else {
            SCRUBBER.scrub(&text)
        };
        io::stderr()
            .lock()
            .write_all(terminal_safe(&shown).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().lock().flush()
    }
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
    fn stderr_keeps_colours_and_escapes_other_sequences() {
        assert_eq!(terminal_safe("plain\n\tline"), "plain\n\tline");
        assert_eq!(
            terminal_safe("\u{1b}[1;31merror\u{1b}[0m: x\u{1b}[2J\u{1b}]0;t\u{7}\u{9b}\u{202e}"),
            "\u{1b}[1;31merror\u{1b}[0m: x\\u{1b}[2J\\u{1b}]0;t\\u{7}\\u{9b}\\u{202e}"
        );
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
