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
    /// The column value of `value`, its integers above `i64::MAX` as the nearest double (see
    /// [`storable`]).
    pub fn new(value: &T) -> Self {
        Self {
            stored: serde_json::to_value(value)
                .map(storable)
                .map_err(|e| e.to_string()),
            _holds: PhantomData,
        }
    }
}

/// `value` with every integer above `i64::MAX` replaced by the nearest double, as JavaScript reads
/// such a number. SQLite's JSONB (as diesel writes and reads it) keeps an integer only within the
/// 64-bit signed range: a larger one is written but cannot be read back, so a filter or a schema
/// holding one made its row unreadable. Both backends store the same value.
fn storable(value: Value) -> Value {
    match value {
        Value::Number(n) if n.as_u64().is_some_and(|u| u > i64::MAX as u64) => n
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
        Value::Array(items) => Value::Array(items.into_iter().map(storable).collect()),
        Value::Object(map) => {
            Value::Object(map.into_iter().map(|(k, v)| (k, storable(v))).collect())
        }
        other => other,
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

    #[test]
    fn integers_beyond_the_signed_range_are_stored_as_doubles_and_read_back() {
        use diesel::connection::SimpleConnection;
        use diesel::{Connection, RunQueryDsl, SqliteConnection};
        #[derive(diesel::QueryableByName)]
        struct Stored {
            #[diesel(sql_type = Jsonb)]
            v: Json<Value>,
        }
        let mut c = SqliteConnection::establish(":memory:").unwrap();
        c.batch_execute("CREATE TABLE t (v BLOB NOT NULL)").unwrap();
        let written = serde_json::json!({
            "big": u64::MAX, "edge": i64::MAX, "low": i64::MIN, "list": [u64::MAX, 1.5],
        });
        diesel::sql_query("INSERT INTO t (v) VALUES (?)")
            .bind::<Jsonb, _>(Json::new(&written))
            .execute(&mut c)
            .unwrap();
        let rows: Vec<Stored> = diesel::sql_query("SELECT v FROM t").load(&mut c).unwrap();
        let read = rows[0].v.parse().expect("the row reads back");
        let double = u64::MAX as f64;
        assert_eq!(
            read,
            serde_json::json!({
                "big": double, "edge": i64::MAX, "low": i64::MIN, "list": [double, 1.5],
            })
        );
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
