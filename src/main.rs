//! The `headcount` binary. Everything but argument parsing and printing is in the library.

// Everything in the binary is `pub(crate)` at most, so `dead_code` sees all of it.
#![warn(unreachable_pub)]
// Output goes through `cli::out` (a closed pipe must not panic), never `println!`.
#![warn(clippy::print_stdout, clippy::print_stderr)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
