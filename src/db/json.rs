//! [`Json<T>`]: a `Jsonb` column that says what it holds.
//!
//! Reading never fails the query: a value that is not JSON (SQLite stores whatever is written) or
//! not a `T` stays in the row, and [`Json::parse`] reports it when the row is converted, so that
//! one damaged row is reported on its own instead of failing every row read with it.

use std::fmt;
use std::marker::PhantomData;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Jsonb;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

/// A `Jsonb` column holding a `T`.
#[derive(diesel::AsExpression, diesel::FromSqlRow)]
#[diesel(sql_type = Jsonb)]
pub struct Json<T> {
    /// The stored JSON, or why it could not be read as JSON.
    stored: Result<Value, String>,
    _holds: PhantomData<fn() -> T>,
}

impl<T: Serialize> Json<T> {
    /// The column value of `value`.
    pub fn new(value: &T) -> Self {
        Self {
            stored: serde_json::to_value(value).map_err(|e| e.to_string()),
            _holds: PhantomData,
        }
    }
}

impl<T: DeserializeOwned> Json<T> {
    /// The stored value as a `T`, or why it is not one.
    pub fn parse(&self) -> Result<T, String> {
        let value = self.stored.as_ref().map_err(Clone::clone)?;
        T::deserialize(value).map_err(|e| e.to_string())
    }
}

impl<T> Clone for Json<T> {
    fn clone(&self) -> Self {
        Self {
            stored: self.stored.clone(),
            _holds: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.stored {
            Ok(v) => write!(f, "Json({v})"),
            Err(e) => write!(f, "Json(<unreadable: {e}>)"),
        }
    }
}

impl<T, DB: Backend> ToSql<Jsonb, DB> for Json<T>
where
    Value: ToSql<Jsonb, DB>,
{
    fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
        match &self.stored {
            Ok(v) => v.to_sql(out),
            Err(e) => Err(e.clone().into()),
        }
    }
}

impl<T, DB: Backend> FromSql<Jsonb, DB> for Json<T>
where
    Value: FromSql<Jsonb, DB>,
{
    fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
        Ok(Self {
            stored: Value::from_sql(bytes).map_err(|e| e.to_string()),
            _holds: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::RetryConfig;

    #[test]
    fn a_value_of_the_wrong_shape_is_reported_by_parse() {
        let good = Json::<RetryConfig>::new(&RetryConfig::default());
        assert_eq!(good.parse(), Ok(RetryConfig::default()));
        let bad: Json<RetryConfig> = Json {
            stored: Ok(serde_json::json!({ "maxAttempts": "many" })),
            _holds: PhantomData,
        };
        assert!(bad.parse().unwrap_err().contains("invalid type"));
    }

    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Jsonb)]
        retry: Json<RetryConfig>,
    }

    #[test]
    fn a_column_that_is_not_json_still_reads_and_fails_only_its_parse() {
        use diesel::connection::SimpleConnection;
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, retry BLOB NOT NULL); \
             INSERT INTO t (retry) VALUES ('not json'); \
             INSERT INTO t (retry) VALUES (jsonb('{\"maxAttempts\": 2, \"backoffMs\": 50}'));",
        )
        .unwrap();
        let rows: Vec<Row> = diesel::sql_query("SELECT retry FROM t ORDER BY id")
            .load(&mut c)
            .expect("one damaged row does not fail the query");
        assert!(rows[0].retry.parse().is_err());
        let ok = RetryConfig {
            max_attempts: 2,
            backoff_ms: 50,
        };
        assert_eq!(rows[1].retry.parse(), Ok(ok));
    }
}
