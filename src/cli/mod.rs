//! The command-line edge: parses arguments, drives the library, prints, and maps outcomes to
//! exit codes. `anyhow` lives here and nowhere else.

pub mod apply_cmd;
pub mod args;
pub mod misc;
pub mod plan_cmd;
pub mod state_cmd;

use std::io::IsTerminal;
use std::process::ExitCode;

use args::{Cli, ColorChoice, Command};

/// Exit codes, as in Terraform.
pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_CHANGES: u8 = 2;

/// Output settings shared by commands.
pub struct Ui {
    pub color: bool,
    pub color_stderr: bool,
    pub quiet: bool,
    /// Progress bars allowed: stderr is a terminal, and neither --quiet nor --no-progress.
    pub progress: bool,
}

impl Ui {
    pub fn new(cli: &Cli) -> Ui {
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
    pub fn note(&self, msg: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{msg}");
        }
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<u8> {
    let ui = Ui::new(&cli);
    match &cli.command {
        Command::Init(a) => misc::init(&cli, a, &ui),
        Command::Validate(a) => misc::validate(&cli, a, &ui).await,
        Command::Plan(a) => plan_cmd::plan(&cli, a, &ui).await,
        Command::Apply(a) => apply_cmd::apply(&cli, a, &ui).await,
        Command::Show(a) => plan_cmd::show(a, &ui),
        Command::State(c) => state_cmd::run(&cli, c, &ui).await,
        Command::Schema => {
            print!("{}", headcount::config::schema_json());
            Ok(EXIT_OK)
        }
        Command::Fields(a) => misc::fields(a),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(a.shell, &mut cmd, "headcount", &mut std::io::stdout());
            Ok(EXIT_OK)
        }
    }
}

/// Parses, runs, prints an error if any, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    init_tracing(&cli);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
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
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .try_init();
}
