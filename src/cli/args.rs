//! Command-line arguments (SPEC section 3).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use headcount::connectors::TargetKind;

const EXIT_CODES: &str = "\
Exit status:
  0  success, or no changes
  1  error of any kind, including an apply where some operations failed,
     a plan blocked by a guard, (with --strict) invalid records, and a
     command-line usage error (unknown flag, bad value, unknown command)
  2  changes present (plan --detailed-exitcode), and nothing else

The same meaning as Terraform's, so existing CI recipes work: a typo in a
CI script never reads as \"changes present\". When stdout is closed early
(`headcount plan | head`), the output stops quietly and the exit status is
the one the command would have had.";

/// Keeps helpdesk and SaaS user accounts in line with identity sources, declared in YAML.
///
/// Typical use: `headcount plan` to review, `headcount apply` to make it so.
#[derive(Debug, Parser)]
#[command(name = "headcount", version, about, long_about = None, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "headcount.yaml",
        env = "HEADCOUNT_CONFIG"
    )]
    pub(crate) config: PathBuf,

    /// When to use colour on stdout.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub(crate) color: ColorChoice,

    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub(crate) quiet: bool,

    /// Never draw progress bars.
    #[arg(long, global = true)]
    pub(crate) no_progress: bool,

    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Write a commented starter config (and its JSON Schema for editor completion).
    Init(InitArgs),
    /// Parse and check the config: schema, CEL expressions, fields of each target kind.
    Validate(ValidateArgs),
    /// Read sources and targets and show what apply would change.
    #[command(after_help = EXIT_CODES)]
    Plan(PlanArgs),
    /// Make the targets match: plan, confirm, apply; or apply a saved plan.
    #[command(after_help = EXIT_CODES)]
    Apply(ApplyArgs),
    /// Read sources and targets like plan, and label each difference by its cause: changed in
    /// the source, changed in the target (out of band), both, missing, unmanaged.
    #[command(after_help = DRIFT_EXIT_CODES)]
    Drift(DriftArgs),
    /// The reconcile loop: plan + apply every interval, with /healthz, /metrics and webhook
    /// notifications.
    #[command(after_help = RUN_EXIT_CODES)]
    Run(RunArgs),
    /// Render a saved plan.
    Show(ShowArgs),
    /// Inspect and edit which accounts headcount manages.
    #[command(subcommand)]
    State(StateCommand),
    /// Print the JSON Schema of the config file.
    Schema,
    /// List the fields of a target kind: type, writable, usable as identity.
    Fields(FieldsArgs),
    /// Print shell completions.
    Completions(CompletionsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Source kind of the starter sync.
    #[arg(long, default_value = "csv")]
    pub(crate) source: String,
    /// Target kind of the starter sync.
    #[arg(long, default_value = "csv_export")]
    pub(crate) target: String,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ValidateArgs {
    /// Also resolve secrets, read the first page of every source (credentials, permissions,
    /// endpoints, groups) and list every target.
    #[arg(long)]
    pub(crate) online: bool,
}

/// Exit codes of `drift`.
const DRIFT_EXIT_CODES: &str = "\
Exit status:
  0  no drift
  1  error of any kind: a source or target that could not be read, a config
     or command-line usage error; drift is then unknown, never \"none\"
  2  drift found (with --fail-on target: only out-of-band changes in the
     target: causes target, both, missing)";

/// Which differences make `drift` exit 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    /// Only out-of-band changes in the target (`target`, `both`, `missing`).
    Target,
    /// Any difference.
    Any,
}

#[derive(Debug, Args)]
pub(crate) struct DriftArgs {
    /// Only this sync (repeatable).
    #[arg(long = "sync", value_name = "NAME")]
    pub(crate) syncs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Which differences exit 2.
    #[arg(long, value_enum, default_value_t = FailOn::Any)]
    pub(crate) fail_on: FailOn,
    /// Ignore incremental cursors and read every source in full (as `plan --full`).
    #[arg(long)]
    pub(crate) full: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    /// Plan only this sync (repeatable).
    #[arg(long = "sync", value_name = "NAME")]
    pub(crate) syncs: Vec<String>,
    /// Also write the plan document (JSON) to FILE, for `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub(crate) out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub(crate) detailed_exitcode: bool,
    /// Exit 1 when any record is invalid or in conflict.
    #[arg(long)]
    pub(crate) strict: bool,
    /// Lift the mass-removal guard (limits.max_removals, empty sources).
    #[arg(long)]
    pub(crate) allow_mass_removal: bool,
    /// Also plan with the config as it is at GITREF (e.g. origin/main) against the same data,
    /// and show what the config change itself causes.
    #[arg(long, value_name = "GITREF")]
    pub(crate) base: Option<String>,
    /// Ignore incremental cursors (Entra delta links) and read every source in full, like
    /// the "Sync All Users" button; the cursor is renewed.
    #[arg(long)]
    pub(crate) full: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ApplyArgs {
    /// A plan saved with `plan --out`: planned again, its changes applied only if the config
    /// still produces them exactly, else refused as stale or edited; newer changes stay pending.
    pub(crate) planfile: Option<PathBuf>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub(crate) auto_approve: bool,
    /// Apply only this sync (repeatable; not with PLANFILE).
    #[arg(long = "sync", value_name = "NAME")]
    pub(crate) syncs: Vec<String>,
    /// Lift the mass-removal guard (limits.max_removals, empty sources); with PLANFILE, for
    /// the removals the saved plan applies.
    #[arg(long)]
    pub(crate) allow_mass_removal: bool,
    /// Ignore incremental cursors and read every source in full (as `plan --full`).
    #[arg(long)]
    pub(crate) full: bool,
    /// Operations in flight at once per target (each target's rate limit still applies).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) parallelism: u16,
    /// Stream one JSON object per operation on stdout (and a final summary) instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

const RUN_EXIT_CODES: &str = "\
Exit status:
  0  stopped by SIGINT/SIGTERM (after the operations in flight), or with
     --once a round that applied everything it planned
  1  an error that stops the loop (bad config, --listen address taken), or
     with --once a failed round, a sync stopped by the mass-removal guard,
     or a round stopped by a signal before it applied everything";

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Time between rounds (e.g. 5m, 1h): the wait after a round that succeeded. After a
    /// failed round the wait backs off exponentially from min(interval, 30s) up to
    /// max(interval, 10m). At least 1s.
    #[arg(long, value_name = "DURATION", value_parser = parse_interval, required_unless_present = "once")]
    pub(crate) interval: Option<std::time::Duration>,
    /// Spread each wait over ±PCT% of itself, so that replicas started together do not call
    /// the vendors at the same moment.
    #[arg(long, value_name = "PCT", default_value_t = 10, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub(crate) jitter: u8,
    /// Serve GET /healthz and GET /metrics (Prometheus) on ADDR (e.g. 0.0.0.0:9090; port 0
    /// picks a free one). The bound address is printed on stderr. No listener by default.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<std::net::SocketAddr>,
    /// Run one round and exit: 0 when it succeeded, 1 otherwise (for a CronJob).
    #[arg(long)]
    pub(crate) once: bool,
    /// Operations in flight at once per target (each target's rate limit still applies).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub(crate) parallelism: u16,
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    let d = headcount::config::parse_duration(text)?;
    if d < std::time::Duration::from_secs(1) {
        return Err("the interval must be at least 1s".to_string());
    }
    Ok(d)
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    pub(crate) planfile: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[derive(Debug, Subcommand)]
pub(crate) enum StateCommand {
    /// List managed accounts.
    List {
        /// Only this sync.
        #[arg(long = "sync", value_name = "NAME")]
        sync: Option<String>,
    },
    /// Show one managed account (ID or SYNC/ID).
    Show { id: String },
    /// Stop managing an account; nothing is changed in the target.
    Forget { id: String },
    /// Remove the state lock left by a crashed run.
    Unlock,
}

#[derive(Debug, Args)]
pub(crate) struct FieldsArgs {
    #[arg(value_enum)]
    pub(crate) kind: TargetKind,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub(crate) format: Format,
}

#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}
