//! The text mapping of [`DeliveryStatus`] (a `Text` column on both backends), and the literal SQL
//! of "open" for the queries that need the values spelled out.

use std::sync::LazyLock;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::domain::DeliveryStatus;

impl<DB: Backend> ToSql<Text, DB> for DeliveryStatus
where
    str: ToSql<Text, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        self.as_str().to_sql(out)
    }
}

impl<DB: Backend> FromSql<Text, DB> for DeliveryStatus
where
    String: FromSql<Text, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(String::from_sql(bytes)?.parse()?)
    }
}

/// `status IN ('pending', 'retrying')` spelled from [`DeliveryStatus::OPEN`]: the partial indexes
/// on open deliveries are only usable when the planner can see the values (with bind parameters
/// SQLite never uses them, and PostgreSQL's generic plans may not). The migrations' index
/// predicates spell the same list; `open_sql_matches_the_migrations` keeps them in step.
pub fn open_sql() -> &'static str {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let list: Vec<String> = DeliveryStatus::OPEN
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        format!("status IN ({})", list.join(", "))
    });
    &SQL
}

/// The `status IN (...)` filter of [`open_sql`] as a diesel expression.
pub fn is_open() -> diesel::expression::SqlLiteral<diesel::sql_types::Bool> {
    diesel::dsl::sql::<diesel::sql_types::Bool>(open_sql())
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;

    use super::*;

    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Text)]
        status: DeliveryStatus,
    }

    #[test]
    fn every_status_round_trips_through_a_text_column() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (status TEXT NOT NULL)")
            .unwrap();
        for s in DeliveryStatus::ALL {
            diesel::sql_query("INSERT INTO t (status) VALUES (?)")
                .bind::<Text, _>(s)
                .execute(&mut c)
                .unwrap();
        }
        let raw: Vec<String> = diesel::dsl::sql::<Text>("SELECT status FROM t")
            .load(&mut c)
            .unwrap();
        assert_eq!(raw, DeliveryStatus::ALL.map(|s| s.as_str().to_string()));
        let back: Vec<DeliveryStatus> = diesel::sql_query("SELECT status FROM t")
            .load::<Row>(&mut c)
            .unwrap()
            .into_iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(back, DeliveryStatus::ALL);
    }

    #[test]
    fn an_unknown_stored_status_is_an_error_not_a_default() {
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        let r = diesel::sql_query("SELECT 'paused' AS status").get_result::<Row>(&mut c);
        assert!(r.is_err());
    }

    #[test]
    fn open_sql_matches_the_migrations() {
        assert_eq!(open_sql(), "status IN ('pending', 'retrying')");
        for dir in ["migrations/sqlite", "migrations/postgres"] {
            let mut found = false;
            for entry in std::fs::read_dir(dir).unwrap() {
                let up = entry.unwrap().path().join("up.sql");
                let sql = std::fs::read_to_string(up).unwrap_or_default();
                found |= sql.contains(open_sql());
            }
            assert!(found, "{dir}: no partial index on {}", open_sql());
        }
    }
}
