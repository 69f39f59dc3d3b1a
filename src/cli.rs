//! Command line: `serve` (the default) and `migrate`, with every setting as a flag or environment variable.

use std::net::{IpAddr, SocketAddr};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use ipnet::IpNet;

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

/// Every setting (README, Settings); a flag wins over its environment variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address of the HTTP server.
    #[arg(
        long,
        env = "BEEMA_LISTEN",
        default_value = "127.0.0.1:3000",
        global = true
    )]
    pub listen: SocketAddr,
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
    /// Webhook URLs must be `https` (no exception for loopback); at start, enabled `http` webhooks are disabled.
    #[arg(long, env = "BEEMA_REQUIRE_HTTPS", global = true, default_value = "false",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub require_https: bool,
    /// Comma-separated ranges allowed as targets even though non-public (e.g. `10.20.0.0/16`).
    // The whole list is one value (the full path `::std::vec::Vec` keeps clap from splitting it),
    // so that empty entries can be skipped and a bad entry is named in the error.
    #[arg(long, env = "BEEMA_ALLOWED_TARGET_CIDRS", global = true, default_value = "",
          hide_default_value = true, value_parser = parse_cidrs)]
    pub allowed_target_cidrs: ::std::vec::Vec<IpNet>,
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
    /// Check published events against their type's JSON Schema in the event-type catalog.
    #[arg(long, env = "BEEMA_VALIDATE_EVENTS", global = true, default_value = "true",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub validate_events: bool,
    /// This node's name in a cluster (`[A-Za-z0-9_.:-]`, 1–128 chars); default `<hostname>-<pid>`.
    #[arg(long, env = "BEEMA_NODE_ID", global = true, value_parser = parse_node_id)]
    pub node_id: Option<String>,
    /// How long a node's ownership of its webhooks outlives its last heartbeat (1000–300000 ms).
    #[arg(long, env = "BEEMA_LEASE_TTL_MS", global = true, default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1000..=300_000))]
    pub lease_ttl_ms: u64,
    /// Most requests in flight to one receiver origin (scheme, host, port) per worker thread;
    /// the webhooks sending there share these connections fairly (1–10000).
    #[arg(long, env = "BEEMA_HOST_CONNECTIONS", global = true, default_value_t = 256,
          value_parser = clap::value_parser!(u64).range(1..=10_000))]
    pub host_connections: u64,
    /// Log format (the log filter itself is `RUST_LOG`, default `info`).
    #[arg(long, env = "BEEMA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Cli {
    /// Parses the command line and environment. Help and version print and exit as clap does;
    /// anything else wrong becomes a one-line reason naming the setting's environment variable,
    /// because operators mostly configure the server through the environment.
    pub fn from_env_and_args() -> Result<Self, String> {
        Self::try_parse().map_err(|e| match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => one_line_reason(&e),
        })
    }
}

/// clap's message without its usage hints, on one line, prefixed by the variable it concerns.
fn one_line_reason(e: &clap::Error) -> String {
    let rendered = e.to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    match setting_env(e) {
        Some(env) => format!("{env}: {message}"),
        None => message.to_string(),
    }
}

/// The environment variable of the flag an error is about (`--listen <LISTEN>` -> `BEEMA_LISTEN`).
fn setting_env(e: &clap::Error) -> Option<String> {
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.strip_prefix("--")?.split([' ', '=']).next()?;
    let cmd = Cli::command();
    let env = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(long))?
        .get_env()?;
    Some(env.to_string_lossy().into_owned())
}

/// A node id: 1–128 characters of `[A-Za-z0-9_.:-]`.
pub fn parse_node_id(s: &str) -> Result<String, String> {
    let ok = (1..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "`{s}` is not a node id: 1 to 128 characters of A-Z, a-z, 0-9, `_`, `.`, `:` and `-`"
        ))
    }
}

/// `<hostname>-<pid>`, the default node id; characters a node id may not hold become `-`.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "node".to_string());
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(100)
        .collect();
    let host = if host.is_empty() {
        "node".to_string()
    } else {
        host
    };
    format!("{host}-{}", std::process::id())
}

/// Parses a comma-separated list of CIDRs (`BEEMA_ALLOWED_TARGET_CIDRS`). Entries are trimmed,
/// empty entries ignored, and a bare IP means a single host (/32 or /128). The error names the
/// offending entry so operators can fix their configuration.
pub fn parse_cidrs(s: &str) -> Result<Vec<IpNet>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .map(|entry| {
            entry
                .parse::<IpNet>()
                .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!(
                        "invalid CIDR entry {entry:?}: expected an IP address or a range like 10.0.0.0/8"
                    )
                })
        })
        .collect()
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

    #[test]
    fn require_https_is_a_switch_that_defaults_off() {
        let parse = |args: &[&str]| {
            let argv = ["beema-webhooks"].iter().chain(args).copied();
            Cli::try_parse_from(argv).unwrap().settings.require_https
        };
        assert!(parse(&["--require-https"]));
        assert!(parse(&["--require-https=true"]));
        assert!(!parse(&["--require-https=false"]));
        if std::env::var_os("BEEMA_REQUIRE_HTTPS").is_none() {
            assert!(!parse(&[]));
        }
    }

    #[test]
    fn values_are_typed() {
        let cli = Cli::try_parse_from([
            "beema-webhooks",
            "--listen",
            "[::1]:8080",
            "--allowed-target-cidrs",
            "10.0.0.0/8, 127.0.0.1",
            "--log-format",
            "json",
        ])
        .unwrap();
        assert_eq!(cli.settings.listen, "[::1]:8080".parse().unwrap());
        assert_eq!(
            cli.settings.allowed_target_cidrs,
            vec![
                "10.0.0.0/8".parse::<IpNet>().unwrap(),
                "127.0.0.1/32".parse().unwrap()
            ]
        );
        assert_eq!(cli.settings.log_format, LogFormat::Json);
        let defaults = Cli::try_parse_from(["beema-webhooks"]).unwrap().settings;
        assert!(defaults.allowed_target_cidrs.is_empty());
        assert_eq!(defaults.log_format, LogFormat::Text);
    }

    #[test]
    fn a_bad_value_is_one_line_naming_its_variable() {
        for (flag, value, env) in [
            ("--listen", "not-an-address", "BEEMA_LISTEN"),
            (
                "--allowed-target-cidrs",
                "10.0.0.0/99",
                "BEEMA_ALLOWED_TARGET_CIDRS",
            ),
            ("--log-format", "yaml", "BEEMA_LOG_FORMAT"),
            ("--max-body-bytes", "-1", "BEEMA_MAX_BODY_BYTES"),
        ] {
            let arg = format!("{flag}={value}");
            let e = Cli::try_parse_from(["beema-webhooks", &arg]).unwrap_err();
            let reason = one_line_reason(&e);
            assert!(!reason.contains('\n'), "{reason}");
            assert!(reason.starts_with(env), "{reason}");
            assert!(reason.contains(value), "{reason}");
        }
    }

    #[test]
    fn parse_cidrs_works() {
        let nets = parse_cidrs(" 10.0.0.0/8, ,192.168.1.5 ,fd00::/8,::1,").unwrap();
        let expected: Vec<IpNet> = ["10.0.0.0/8", "192.168.1.5/32", "fd00::/8", "::1/128"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(nets, expected);
        assert_eq!(parse_cidrs("").unwrap(), vec![]);
        assert_eq!(parse_cidrs(" , ").unwrap(), vec![]);
    }

    #[test]
    fn parse_cidrs_names_bad_entry() {
        let err = parse_cidrs("10.0.0.0/8, nonsense/99").unwrap_err();
        assert!(err.contains("nonsense/99"), "{err}");
        let err = parse_cidrs("10.0.0.0/33").unwrap_err();
        assert!(err.contains("10.0.0.0/33"), "{err}");
    }
}
