//! The event-type catalog's schemas (README, Event-type catalog): each declared type may carry a
//! JSON Schema (draft 2020-12) of its `data`. [`compile`] checks a schema when it is set; a
//! [`SchemaCache`] holds the compiled validators, built once per change and shared by every node of
//! the process on the same database ([`SchemaCache::shared`]); publishing checks events against it.
//!
//! Nothing is ever fetched: the crate is built without its HTTP retriever, and a `$ref` that leaves
//! the schema is refused before compiling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::{Duration, Instant};

use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, Validator};
use serde_json::Value;

/// Largest schema, as compact JSON.
pub const MAX_SCHEMA_BYTES: usize = 64 * 1024;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1000;

/// The dialect every schema is read as.
const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Checks and compiles a schema of an event's `data`; the error says what is wrong.
pub fn compile(schema: &Value) -> Result<Validator, String> {
    let size = serde_json::to_string(schema).map_or(usize::MAX, |s| s.len());
    if size > MAX_SCHEMA_BYTES {
        return Err(format!(
            "must be at most {} KiB as compact JSON",
            MAX_SCHEMA_BYTES / 1024
        ));
    }
    if !(schema.is_object() || schema.is_boolean()) {
        return Err("must be a JSON Schema (an object or a boolean)".into());
    }
    if let Some(r) = external_ref(schema) {
        return Err(format!(
            "`$ref` {r} points outside the schema; only local references (`#...`) are allowed"
        ));
    }
    if let Some(dialect) = schema.get("$schema") {
        let uri = dialect.as_str().unwrap_or_default().trim_end_matches('#');
        if uri != DRAFT_2020_12 {
            return Err(format!(
                "`$schema` must be {DRAFT_2020_12} (or left out): only draft 2020-12 is supported"
            ));
        }
    }
    jsonschema::draft202012::meta::validate(schema)
        .map_err(|e| format!("is not a valid JSON Schema draft 2020-12: {e}"))?;
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(false)
        .build(schema)
        .map_err(|e| format!("is not a valid JSON Schema draft 2020-12: {e}"))
}

/// The first reference keyword whose target is not inside this schema.
fn external_ref(v: &Value) -> Option<String> {
    match v {
        Value::Object(m) => m.iter().find_map(|(k, v)| match (k.as_str(), v) {
            ("$ref" | "$dynamicRef", Value::String(r)) if !r.starts_with('#') => Some(r.clone()),
            _ => external_ref(v),
        }),
        Value::Array(a) => a.iter().find_map(external_ref),
        _ => None,
    }
}

/// Why an event's `data` does not fit its type's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaFailure {
    /// The first failing path, from the event: `data.premium`, `data.items.0.sku`.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// How often a node asks the database whether the declarations changed (another process may
/// have changed them; within the process a change updates the cache at once).
pub const RECHECK_EVERY: Duration = Duration::from_secs(1);

/// What identifies the stored declarations' state: how many, and the last change.
pub type CatalogVersion = (i64, Option<chrono::NaiveDateTime>);

/// Compiled validators by type name.
#[derive(Default)]
pub struct SchemaCache {
    validators: RwLock<HashMap<String, Arc<Validator>>>,
    /// The declarations' state the validators were loaded for, and when it was last compared
    /// with the database's.
    version: Mutex<(Option<CatalogVersion>, Option<Instant>)>,
}

impl SchemaCache {
    /// The cache of the database `key` in this process (nodes of one process share it, so a change
    /// made through one applies on all from their next publish).
    pub fn shared(key: &str) -> Arc<SchemaCache> {
        static CACHES: OnceLock<Mutex<HashMap<String, Arc<SchemaCache>>>> = OnceLock::new();
        let mut caches = CACHES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        caches.entry(key.to_string()).or_default().clone()
    }

    /// Replaces every validator with those of `schemas` (name, schema); a stored schema that no
    /// longer compiles is skipped with a warning rather than refusing every publish.
    pub fn load(&self, schemas: Vec<(String, Value)>) {
        let mut compiled = HashMap::new();
        for (name, schema) in schemas {
            match compile(&schema) {
                Ok(v) => {
                    compiled.insert(name, Arc::new(v));
                }
                Err(e) => tracing::warn!(event_type = %name, error = %e, "stored schema skipped"),
            }
        }
        *self.validators.write().unwrap_or_else(|p| p.into_inner()) = compiled;
    }

    /// True at most once per [`RECHECK_EVERY`]: the caller then compares the stored version with
    /// [`SchemaCache::is_current`] (the others go on with the cache as it is).
    pub fn recheck_due(&self) -> bool {
        let mut v = self.version.lock().unwrap_or_else(|p| p.into_inner());
        let due = v.1.is_none_or(|at| at.elapsed() >= RECHECK_EVERY);
        if due {
            v.1 = Some(Instant::now());
        }
        due
    }

    /// True when the validators were loaded for `version`.
    pub fn is_current(&self, version: CatalogVersion) -> bool {
        self.version.lock().unwrap_or_else(|p| p.into_inner()).0 == Some(version)
    }

    /// Makes the next publish compare with the database again (after a change stored here, so
    /// that a reload read just before it cannot leave an older schema in place).
    pub fn invalidate(&self) {
        *self.version.lock().unwrap_or_else(|p| p.into_inner()) = (None, None);
    }

    /// Notes that the validators now reflect `version`.
    pub fn loaded(&self, version: CatalogVersion) {
        self.version.lock().unwrap_or_else(|p| p.into_inner()).0 = Some(version);
    }

    /// Sets (or with None removes) the validator of one type, after its change is stored.
    pub fn set(&self, name: &str, validator: Option<Validator>) {
        let mut map = self.validators.write().unwrap_or_else(|p| p.into_inner());
        match validator {
            Some(v) => map.insert(name.to_string(), Arc::new(v)),
            None => map.remove(name),
        };
    }

    /// Checks `data` of an event of type `name`; types without a schema pass.
    pub fn check(&self, name: &str, data: &Value) -> Result<(), SchemaFailure> {
        let validator = self
            .validators
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned();
        let Some(validator) = validator else {
            return Ok(());
        };
        let Err(e) = validator.validate(data) else {
            return Ok(());
        };
        let mut path = String::from("data");
        for seg in e.instance_path().segments() {
            path.push('.');
            match seg {
                LocationSegment::Property(p) => path.push_str(&p),
                LocationSegment::Index(i) => path.push_str(&i.to_string()),
            }
        }
        Err(SchemaFailure {
            path,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn premium() -> Value {
        json!({"type": "object", "properties": {"premium": {"type": "number", "minimum": 0},
               "items": {"type": "array", "items": {"type": "object",
                         "properties": {"sku": {"type": "string"}}}}}})
    }

    #[test]
    fn checks_data_and_names_the_first_failing_path() {
        let cache = SchemaCache::default();
        cache.set("policy/bound", Some(compile(&premium()).unwrap()));
        assert!(cache.check("policy/bound", &json!({"premium": 5})).is_ok());
        assert!(cache.check("other", &json!({"premium": -5})).is_ok());
        let f = cache
            .check("policy/bound", &json!({"premium": -5}))
            .unwrap_err();
        assert_eq!(f.path, "data.premium");
        assert_eq!(f.message, "-5 is less than the minimum of 0");
        let f = cache
            .check(
                "policy/bound",
                &json!({"items": [{"sku": "a"}, {"sku": 1}]}),
            )
            .unwrap_err();
        assert_eq!(f.path, "data.items.1.sku");
        cache.set("policy/bound", None);
        assert!(cache.check("policy/bound", &json!({"premium": -5})).is_ok());
    }

    #[test]
    fn refuses_bad_and_remote_schemas() {
        let table: &[Value] = &[
            json!({"type": "nope"}),
            json!({"minimum": "zero"}),
            json!(3),
            json!({"$ref": "https://example.com/schema.json"}),
            json!({"$schema": "https://example.com/meta-schema"}),
            json!({"$dynamicRef": "https://example.com/schema.json#node"}),
            json!({"properties": {"a": {"$ref": "other.json#/x"}}}),
            json!({"description": "x".repeat(MAX_SCHEMA_BYTES)}),
        ];
        for s in table {
            assert!(compile(s).is_err(), "{s}");
        }
        assert!(compile(&json!({"$defs": {"n": {"type": "number"}},
                                "properties": {"a": {"$ref": "#/$defs/n"}}}))
        .is_ok());
        assert!(compile(&json!(true)).is_ok());
        assert!(compile(
            &json!({"$schema": "https://json-schema.org/draft/2020-12/schema",
                                "type": "object"})
        )
        .is_ok());
    }

    #[test]
    fn rechecks_at_most_once_per_interval_and_after_a_change() {
        let cache = SchemaCache::default();
        assert!(cache.recheck_due());
        assert!(!cache.recheck_due(), "within the interval");
        let v = (8, None);
        assert!(!cache.is_current(v));
        cache.loaded(v);
        assert!(cache.is_current(v));
        cache.invalidate();
        assert!(!cache.is_current(v));
        assert!(
            cache.recheck_due(),
            "a change makes the next publish recheck"
        );
    }

    #[test]
    fn format_is_an_annotation() {
        let v = compile(&json!({"properties": {"at": {"type": "string", "format": "date-time"}}}))
            .unwrap();
        assert!(v.is_valid(&json!({"at": "not a date"})));
    }
}
