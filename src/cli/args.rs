//! Command-line arguments (SPEC section 3).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use headcount::connectors::TargetKind;

const EXIT_CODES: &str = "\
Exit status:
  0  success, or no changes
  1  error of any kind, including an apply where some operations failed,
     a plan blocked by a guard, or (with --strict) invalid records
  2  changes present (plan --detailed-exitcode)

The same meaning as Terraform's, so existing CI recipes work.";

/// Keeps helpdesk and SaaS user accounts in line with identity sources, declared in YAML.
///
/// Typical use: `headcount plan` to review, `headcount apply` to make it so.
#[derive(Debug, Parser)]
#[command(name = "headcount", version, about, long_about = None, after_help = EXIT_CODES)]
pub struct Cli {
    /// Config file.
    #[arg(
        short,
        long,
        global = true,
        default_value = "headcount.yaml",
        env = "HEADCOUNT_CONFIG"
    )]
    pub config: PathBuf,

    /// When to use colour on stdout.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// More log output on stderr (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Never draw progress bars.
    #[arg(long, global = true)]
    pub no_progress: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented starter config (and its JSON Schema for editor completion).
    Init(InitArgs),
    /// Parse and check the config: schema, CEL expressions, fields of each target kind.
    Validate(ValidateArgs),
    /// Read sources and targets and show what apply would change.
    Plan(PlanArgs),
    /// Make the targets match: plan, confirm, apply; or apply a saved plan.
    Apply(ApplyArgs),
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
pub struct InitArgs {
    /// Source kind of the starter sync.
    #[arg(long, default_value = "csv")]
    pub source: String,
    /// Target kind of the starter sync.
    #[arg(long, default_value = "csv_export")]
    pub target: String,
    /// Overwrite an existing config file.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Also resolve secrets and read every source and target once.
    #[arg(long)]
    pub online: bool,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Plan only this sync (repeatable).
    #[arg(long = "sync", value_name = "NAME")]
    pub syncs: Vec<String>,
    /// Also write the plan document (JSON) to FILE, for `apply FILE`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Exit 2 when there are changes, 0 when there are none.
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Exit 1 when any record is invalid or in conflict.
    #[arg(long)]
    pub strict: bool,
    /// Lift the mass-removal guard (limits.max_removals, empty sources).
    #[arg(long)]
    pub allow_mass_removal: bool,
    /// Also plan with the config as it is at GITREF (e.g. origin/main) against the same data,
    /// and show what the config change itself causes.
    #[arg(long, value_name = "GITREF")]
    pub base: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`; applied exactly, or refused when stale.
    pub planfile: Option<PathBuf>,
    /// Do not ask for confirmation (required when stdin is not a terminal).
    #[arg(long)]
    pub auto_approve: bool,
    /// Apply only this sync (repeatable; not with PLANFILE).
    #[arg(long = "sync", value_name = "NAME")]
    pub syncs: Vec<String>,
    /// Lift the mass-removal guard (limits.max_removals, empty sources).
    #[arg(long)]
    pub allow_mass_removal: bool,
    /// Operations in flight at once per target (each target's rate limit still applies).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallelism: u16,
    /// Stream one JSON object per operation on stdout (and a final summary) instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    pub planfile: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Subcommand)]
pub enum StateCommand {
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
pub struct FieldsArgs {
    #[arg(value_enum)]
    pub kind: TargetKind,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}
