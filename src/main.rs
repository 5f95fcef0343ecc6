//! The `headcount` binary. Everything but argument parsing and printing is in the library.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
