//! The `headcount` binary. Everything but argument parsing and printing is in the library.

// Everything in the binary is `pub(crate)` at most, so `dead_code` sees all of it.
#![warn(unreachable_pub)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
