//! Times the queries behind `GET /api/stats` over 1,000,000 deliveries and their attempts spread
//! over the last 7 days (issue 13's target: `window=1h` ≤ 100 ms, `window=7d` ≤ 1 s).
//!
//! ```bash
//! cargo run --release --example stats_bench                      # SQLite, a temporary file
//! cargo run --release --example stats_bench -- postgres://postgres@127.0.0.1:5432/test
//! ```
//! On PostgreSQL it creates and drops its own database next to the one named.

use std::time::Instant;

use beema_webhooks::config::DatabaseUrl;
use beema_webhooks::db::store::stats::{attempt_groups, delivery_counts, StatsScope};
use beema_webhooks::db::{migrate, DbConn, DbPool};
use chrono::{SubsecRound, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

const DELIVERIES: i64 = 1_000_000;
const WEBHOOKS: i64 = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arg = std::env::args().nth(1);
    let dir = tempfile::tempdir()?;
    let (url, pg_admin) = match arg {
        Some(base) if base.starts_with("postgres") => {
            let name = format!("beema_stats_bench_{}", std::process::id());
            admin(&base, &format!("CREATE DATABASE {name}")).await?;
            let (prefix, _) = base.rsplit_once('/').expect("URL ends with /database");
            (
                DatabaseUrl::Postgres(format!("{prefix}/{name}")),
                Some((base, name)),
            )
        }
        _ => (
            DatabaseUrl::Sqlite(dir.path().join("bench.db").to_string_lossy().into_owned()),
            None,
        ),
    };
    let result = run(&url).await;
    if let Some((base, name)) = pg_admin {
        admin(
            &base,
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        )
        .await?;
    }
    result
}

async fn admin(base: &str, sql: &str) -> anyhow::Result<()> {
    let mut conn = AsyncPgConnection::establish(base).await?;
    conn.batch_execute(sql).await?;
    Ok(())
}

async fn run(url: &DatabaseUrl) -> anyhow::Result<()> {
    migrate(url).await?;
    let pool = DbPool::new(url)?;
    let now = Utc::now().naive_utc().trunc_subsecs(0) + chrono::Duration::seconds(1);
    let started = Instant::now();
    let mut conn = pool.write().await?;
    seed(&mut conn, now).await?;
    drop(conn);
    println!(
        "seeded {DELIVERIES} deliveries and their attempts over 7 days in {:.1?}",
        started.elapsed()
    );
    for (window, seconds) in [("1h", 3600), ("24h", 86_400), ("7d", 604_800)] {
        for tenant in [None, Some("tenant-1".to_string())] {
            let scope = StatsScope {
                from: now - chrono::Duration::seconds(seconds),
                to: now,
                bucket_seconds: seconds / 60,
                tenant_id: tenant.clone(),
                webhook_id: None,
                event_type: None,
            };
            let (mut times, mut split) = (Vec::new(), Vec::new());
            let mut counted = 0;
            for _ in 0..5 {
                let mut conn = pool.read().await?;
                let t = Instant::now();
                let d = delivery_counts(&mut conn, &scope).await?;
                let half = t.elapsed();
                let a = attempt_groups(&mut conn, &scope).await?;
                times.push(t.elapsed());
                split.push((half, t.elapsed() - half));
                counted = d.iter().map(|c| c.n).sum::<i64>();
                let _ = a.len();
            }
            times.sort();
            split.sort();
            println!(
                "window={window:>3} tenant={:<8} deliveries={counted:>7}  median {:>7.1?}  max {:>7.1?}  \
                 (deliveries {:.1?} + attempts {:.1?})",
                tenant.as_deref().unwrap_or("all"),
                times[2],
                times[4],
                split[2].0,
                split[2].1
            );
        }
    }
    Ok(())
}

/// One delivery every 0.6048 s back from `now` (1,000,000 over 7 days), one attempt each and a
/// second one for every fifth, written by the database itself.
async fn seed(conn: &mut DbConn, now: chrono::NaiveDateTime) -> anyhow::Result<()> {
    let now = now.format("%Y-%m-%d %H:%M:%S");
    let sql = match conn {
        DbConn::Sqlite(_) => format!(
            "BEGIN;
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {WEBHOOKS})
             INSERT INTO sys_webhooks (webhook_id, webhook_name, tenant_id, event_type, url, secret, created_at, updated_at)
             SELECT i, 'bench ' || i, 'tenant-' || (i % 4), 'claim/opened', 'http://127.0.0.1:9/', 'x', '{now}', '{now}' FROM n;
             WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {DELIVERIES} - 1)
             INSERT INTO sys_webhook_deliveries (delivery_id, webhook_id, event_id, event_type, tenant_id, status,
                 status_code, attempt_number, created_at, updated_at)
             SELECT printf('%020d', i), 1 + i % {WEBHOOKS}, 'ev' || i, 'claim/opened', 'tenant-' || ((1 + i % {WEBHOOKS}) % 4),
                 CASE WHEN i % 10 = 0 THEN 'failed' WHEN i % 50 = 1 THEN 'pending' ELSE 'success' END,
                 200, 1, t, t
             FROM (SELECT i, strftime('%Y-%m-%d %H:%M:%f', '{now}', '-' || (i * 0.6048 + 0.001) || ' seconds') AS t FROM n);
             INSERT INTO sys_webhook_attempts (delivery_id, webhook_id, attempt_number, status_code, duration_ms, attempted_at)
             SELECT delivery_id, webhook_id, 1, CASE status WHEN 'failed' THEN 500 ELSE 200 END, abs(random()) % 400, created_at
             FROM sys_webhook_deliveries;
             INSERT INTO sys_webhook_attempts (delivery_id, webhook_id, attempt_number, status_code, duration_ms, attempted_at)
             SELECT delivery_id, webhook_id, 2, 200, abs(random()) % 400, created_at
             FROM sys_webhook_deliveries WHERE rowid % 5 = 0;
             COMMIT; ANALYZE;"
        ),
        DbConn::Pg(_) => format!(
            "INSERT INTO sys_webhooks (webhook_id, webhook_name, tenant_id, event_type, url, secret, created_at, updated_at)
             SELECT i, 'bench ' || i, 'tenant-' || (i % 4), 'claim/opened', 'http://127.0.0.1:9/', 'x', TIMESTAMP '{now}', TIMESTAMP '{now}'
             FROM generate_series(1, {WEBHOOKS}) i;
             INSERT INTO sys_webhook_deliveries (delivery_id, webhook_id, event_id, event_type, tenant_id, status,
                 status_code, attempt_number, created_at, updated_at)
             SELECT lpad(i::text, 20, '0'), 1 + i % {WEBHOOKS}, 'ev' || i, 'claim/opened', 'tenant-' || ((1 + i % {WEBHOOKS}) % 4),
                 CASE WHEN i % 10 = 0 THEN 'failed' WHEN i % 50 = 1 THEN 'pending' ELSE 'success' END,
                 200, 1, t, t
             FROM (SELECT i, TIMESTAMP '{now}' - (i * 0.6048 + 0.001) * INTERVAL '1 second' AS t
                   FROM generate_series(0, {DELIVERIES} - 1) i) s;
             INSERT INTO sys_webhook_attempts (delivery_id, webhook_id, attempt_number, status_code, duration_ms, attempted_at)
             SELECT delivery_id, webhook_id, 1, CASE status WHEN 'failed' THEN 500 ELSE 200 END, (random() * 400)::bigint, created_at
             FROM sys_webhook_deliveries;
             INSERT INTO sys_webhook_attempts (delivery_id, webhook_id, attempt_number, status_code, duration_ms, attempted_at)
             SELECT delivery_id, webhook_id, 2, 200, (random() * 400)::bigint, created_at
             FROM sys_webhook_deliveries WHERE right(delivery_id, 1) IN ('0', '5');
             ANALYZE;"
        ),
    };
    match conn {
        DbConn::Sqlite(c) => c.batch_execute(&sql).await?,
        DbConn::Pg(c) => c.batch_execute(&sql).await?,
    }
    Ok(())
}
