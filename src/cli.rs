//! Command line: `serve` (the default) and `migrate`, with every setting as a flag or environment variable.

use clap::{Args, Parser, Subcommand};

/// Beema Webhooks: fans the kernel's domain events out to registered webhook URLs,
/// signed, retried, rate-limited and recorded.
#[derive(Debug, Parser)]
#[command(name = "beema-webhooks", version, about, long_about = None)]
pub struct Cli {
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Settings shared by every subcommand.
    #[command(flatten)]
    pub settings: Settings,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply pending migrations, then serve the HTTP API and dispatch deliveries.
    Serve,
    /// Apply pending migrations and exit.
    Migrate,
}

/// Every setting of the contract; a flag wins over its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address of the HTTP server.
    #[arg(
        long,
        env = "BEEMA_LISTEN",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub listen: String,
    /// `sqlite://PATH` (embedded, created on first run) or `postgres://...`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://beema-webhooks.db",
        global = true
    )]
    pub database_url: String,
    /// Bearer token of the global admin. Unset: the admin API is open, allowed only on loopback.
    #[arg(long, env = "BEEMA_ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Key that publishers present. Unset: ingest is open, allowed only on loopback.
    #[arg(long, env = "BEEMA_EVENT_KEY", global = true, hide_env_values = true)]
    pub event_key: Option<String>,
    /// Allow webhook URLs that resolve to loopback, private, link-local or other non-public addresses.
    #[arg(long, env = "BEEMA_ALLOW_PRIVATE_TARGETS", global = true, default_value = "false",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_private_targets: bool,
    /// Comma-separated ranges allowed as targets even though non-public (e.g. `10.20.0.0/16`).
    #[arg(long, env = "BEEMA_ALLOWED_TARGET_CIDRS", global = true)]
    pub allowed_target_cidrs: Option<String>,
    /// When set, webhook secrets are encrypted at rest with a key derived from it.
    #[arg(long, env = "BEEMA_SECRET_KEY", global = true, hide_env_values = true)]
    pub secret_key: Option<String>,
    /// Largest request body accepted, in bytes.
    #[arg(
        long,
        env = "BEEMA_MAX_BODY_BYTES",
        default_value_t = 1_048_576,
        global = true
    )]
    pub max_body_bytes: usize,
    /// Log format: `text` or `json` (the log filter itself is `RUST_LOG`, default `info`).
    #[arg(long, env = "BEEMA_LOG_FORMAT", default_value = "text", global = true)]
    pub log_format: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_parse_after_the_subcommand() {
        let cli = Cli::parse_from([
            "beema-webhooks",
            "migrate",
            "--database-url",
            "sqlite://x.db",
            "--allow-private-targets",
        ]);
        assert!(matches!(cli.command, Some(Command::Migrate)));
        assert_eq!(cli.settings.database_url, "sqlite://x.db");
        assert!(cli.settings.allow_private_targets);
    }
}
