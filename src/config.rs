//! Validated runtime configuration, built once from the command line and environment.
//! Plain data at the bottom of the crate: it names no other layer (clap has already parsed
//! the typed values in [`crate::cli`]).

use std::net::SocketAddr;
use std::time::Duration;

use ipnet::IpNet;

use crate::cli::{LogFormat, Settings};

/// Errors that stop the program before it starts serving.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `DATABASE_URL` names neither SQLite nor PostgreSQL.
    #[error("DATABASE_URL: `{0}` must start with sqlite:// or postgres://")]
    DatabaseUrl(String),
    /// A token is missing while listening beyond loopback.
    #[error("refusing to listen on non-loopback {addr} without {missing}: set it, or listen on 127.0.0.1")]
    OpenOnNetwork {
        /// The listen address.
        addr: SocketAddr,
        /// The unset settings.
        missing: String,
    },
    /// `BEEMA_MAX_BODY_BYTES` is zero.
    #[error("BEEMA_MAX_BODY_BYTES must be at least 1")]
    MaxBody,
}

/// Which database backs the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An embedded SQLite file at this path.
    Sqlite(String),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `sqlite://PATH`, `sqlite:PATH` or `postgres(ql)://...`.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        if let Some(path) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ConfigError::DatabaseUrl(raw.to_string()));
            }
            return Ok(Self::Sqlite(path.to_string()));
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(Self::Postgres(raw.to_string()));
        }
        Err(ConfigError::DatabaseUrl(raw.to_string()))
    }
}

/// Which destinations deliveries may reach (`delivery::ssrf` decides what that allows).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetPolicy {
    /// Allow every address, including loopback and private ranges (development setups).
    pub allow_private: bool,
    /// Extra ranges allowed even though they are not public (e.g. an internal receiver).
    pub allowed_cidrs: Vec<IpNet>,
}

/// Runtime knobs that no setting exposes; tests shrink them.
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Most deliveries one webhook actor keeps in memory; the rest wait in the database.
    pub window: usize,
    /// Most concurrent requests to one (unordered) webhook.
    pub max_in_flight: usize,
    /// Most requests in flight to one receiver origin from one worker thread
    /// (`BEEMA_HOST_CONNECTIONS`).
    pub host_connections: usize,
    /// Longest wait for in-flight attempts at shutdown.
    pub drain_timeout: Duration,
    /// How long the recorder waits to fill a batch.
    pub recorder_flush_every: Duration,
    /// Largest recorder batch.
    pub recorder_batch: usize,
    /// The binary started as transform worker (`None`: this executable; tests name the server's).
    pub transform_worker: Option<std::path::PathBuf>,
    /// A batch closes before its body passes this (`BEEMA_MAX_BODY_BYTES`, set by the app).
    pub max_batch_bytes: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            window: 1000,
            max_in_flight: 32,
            host_connections: 256,
            drain_timeout: Duration::from_secs(10),
            recorder_flush_every: Duration::from_millis(5),
            recorder_batch: 512,
            transform_worker: None,
            max_batch_bytes: 1_048_576,
        }
    }
}

/// The validated configuration shared by every part of the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// The database.
    pub database: DatabaseUrl,
    /// Global admin bearer token.
    pub admin_token: Option<String>,
    /// Publisher key.
    pub event_key: Option<String>,
    /// Which delivery targets are allowed.
    pub targets: TargetPolicy,
    /// `BEEMA_REQUIRE_HTTPS`: enabled webhooks must use `https`.
    pub require_https: bool,
    /// Secret-at-rest key material.
    pub secret_key: Option<String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// `json` logs instead of text.
    pub json_logs: bool,
    /// Internal knobs.
    pub tuning: Tuning,
    /// Check published events against their type's schema (`BEEMA_VALIDATE_EVENTS`).
    pub validate_events: bool,
    /// This node's name in a cluster (`BEEMA_NODE_ID`).
    pub node_id: String,
    /// How long ownership outlives the last heartbeat (`BEEMA_LEASE_TTL_MS`).
    pub lease_ttl: Duration,
}

impl Config {
    /// Validates settings from the command line and environment.
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        let database = DatabaseUrl::parse(&s.database_url)?;
        if s.max_body_bytes == 0 {
            return Err(ConfigError::MaxBody);
        }
        let config = Self {
            listen: s.listen,
            database,
            admin_token: s.admin_token.clone().filter(|t| !t.is_empty()),
            event_key: s.event_key.clone().filter(|t| !t.is_empty()),
            targets: TargetPolicy {
                allow_private: s.allow_private_targets,
                allowed_cidrs: s.allowed_target_cidrs.clone(),
            },
            require_https: s.require_https,
            secret_key: s.secret_key.clone().filter(|t| !t.is_empty()),
            max_body_bytes: s.max_body_bytes,
            json_logs: s.log_format == LogFormat::Json,
            tuning: Tuning {
                host_connections: s.host_connections as usize,
                ..Tuning::default()
            },
            validate_events: s.validate_events,
            node_id: s
                .node_id
                .clone()
                .unwrap_or_else(crate::cli::default_node_id),
            lease_ttl: Duration::from_millis(s.lease_ttl_ms),
        };
        config.check_exposure()?;
        Ok(config)
    }

    /// An open admin API or ingest is only allowed while nothing beyond this host can reach it.
    fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.listen.ip().is_loopback() {
            return Ok(());
        }
        let mut missing = Vec::new();
        if self.admin_token.is_none() {
            missing.push("BEEMA_ADMIN_TOKEN");
        }
        if self.event_key.is_none() {
            missing.push("BEEMA_EVENT_KEY");
        }
        if missing.is_empty() {
            return Ok(());
        }
        Err(ConfigError::OpenOnNetwork {
            addr: self.listen,
            missing: missing.join(" and "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(args: &[&str]) -> Settings {
        let mut all = vec!["beema-webhooks"];
        all.extend_from_slice(args);
        crate::cli::Cli::parse_from(all).settings
    }

    #[test]
    fn defaults_are_valid() {
        let c = Config::from_settings(&settings(&["--database-url", "sqlite://a.db"])).unwrap();
        assert_eq!(c.database, DatabaseUrl::Sqlite("a.db".into()));
        assert_eq!(c.max_body_bytes, 1_048_576);
        assert!(c.validate_events);
        let off = Config::from_settings(&settings(&[
            "--database-url",
            "sqlite://a.db",
            "--validate-events",
            "false",
        ]))
        .unwrap();
        assert!(!off.validate_events);
    }

    #[test]
    fn non_loopback_without_tokens_is_refused() {
        let err = Config::from_settings(&settings(&[
            "--listen",
            "0.0.0.0:3000",
            "--database-url",
            "sqlite://a.db",
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("BEEMA_ADMIN_TOKEN"));
        let ok = Config::from_settings(&settings(&[
            "--listen",
            "0.0.0.0:3000",
            "--admin-token",
            "a",
            "--event-key",
            "b",
            "--database-url",
            "sqlite://a.db",
        ]));
        assert!(ok.is_ok());
    }

    #[test]
    fn bad_urls_are_refused() {
        assert!(DatabaseUrl::parse("mysql://x").is_err());
        assert!(DatabaseUrl::parse("sqlite://").is_err());
        assert!(matches!(
            DatabaseUrl::parse("postgres://u@h/db"),
            Ok(DatabaseUrl::Postgres(_))
        ));
    }
}
