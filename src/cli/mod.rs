//! The command-line edge: parses arguments, drives the library, prints, and maps outcomes to
//! exit codes. `anyhow` lives here and nowhere else.

#[macro_use]
mod out;
mod apply_cmd;
mod args;
mod drift_cmd;
mod misc;
mod plan_cmd;
mod run_cmd;
mod state_cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use args::{Cli, ColorChoice, Command};

/// Exit codes, as in Terraform.
pub(crate) const EXIT_OK: u8 = 0;
pub(crate) const EXIT_ERROR: u8 = 1;
pub(crate) const EXIT_CHANGES: u8 = 2;

/// Output settings shared by commands.
pub(crate) struct Ui {
    pub(crate) color: bool,
    pub(crate) color_stderr: bool,
    pub(crate) quiet: bool,
    /// Progress bars allowed: stderr is a terminal, and neither --quiet nor --no-progress.
    pub(crate) progress: bool,
}

impl Ui {
    pub(crate) fn new(cli: &Cli) -> Ui {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let (color, color_stderr) = match cli.color {
            ColorChoice::Always => (true, true),
            ColorChoice::Never => (false, false),
            ColorChoice::Auto => (
                !no_color && std::io::stdout().is_terminal(),
                !no_color && std::io::stderr().is_terminal(),
            ),
        };
        Ui {
            color,
            color_stderr,
            quiet: cli.quiet,
            progress: !cli.quiet && !cli.no_progress && std::io::stderr().is_terminal(),
        }
    }

    /// A note on stderr (suppressed by --quiet).
    pub(crate) fn note(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            errln!("{msg}");
        }
    }
}

pub(crate) async fn run(cli: Cli) -> anyhow::Result<u8> {
    let ui = Ui::new(&cli);
    match &cli.command {
        Command::Init(a) => misc::init(&cli, a, &ui),
        Command::Validate(a) => misc::validate(&cli, a, &ui).await,
        Command::Plan(a) => plan_cmd::plan(&cli, a, &ui).await,
        Command::Apply(a) => apply_cmd::apply(&cli, a, &ui).await,
        Command::Drift(a) => drift_cmd::drift(&cli, a, &ui).await,
        Command::Run(a) => run_cmd::run(&cli, a, &ui).await,
        Command::Show(a) => plan_cmd::show(a, &ui),
        Command::State(c) => state_cmd::run(&cli, c, &ui).await,
        Command::Schema => {
            out!("{}", headcount::config::schema_json());
            Ok(EXIT_OK)
        }
        Command::Fields(a) => misc::fields(a),
        Command::Completions(a) => {
            // Generated into memory: clap_complete panics when its writer fails.
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "headcount", &mut buf);
            out::stdout_bytes(&buf)?;
            Ok(EXIT_OK)
        }
    }
}

/// Parses, runs, prints an error if any, and returns the exit code.
pub(crate) fn main() -> ExitCode {
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(&e),
    };
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Prints clap's message and maps it to an exit code. clap exits 2 on a usage error, which a CI
/// recipe reads as "changes present" (SPEC §3): here a usage error is 1, and only `--help` and
/// `--version` (printed on stdout) are 0.
fn usage_error(e: &clap::Error) -> ExitCode {
    let printed = e.print();
    if e.use_stderr() {
        return ExitCode::from(EXIT_ERROR);
    }
    match printed {
        // `--help | head`: a closed pipe is a quiet end, as for every other output.
        Err(p) if p.kind() != std::io::ErrorKind::BrokenPipe => {
            errln!("error: cannot write to stdout: {p}");
            ExitCode::from(EXIT_ERROR)
        }
        _ => ExitCode::from(EXIT_OK),
    }
}

fn init_tracing(cli: &Cli) {
    let level = if cli.quiet {
        "error"
    } else {
        match cli.verbose {
            0 => "warn",
            1 => "info",
            2 => "debug",
            _ => "trace",
        }
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("HEADCOUNT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("headcount={level}")));
    // Colour codes only where a person reads them: never in a CI log or a file.
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let ansi = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => !no_color && std::io::stderr().is_terminal(),
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| out::LogWriter)
        .with_target(false)
        .without_time()
        .try_init();
}
