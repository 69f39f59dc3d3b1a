//! A webhook's `filter` (README, Routing and payloads): a MongoDB-style condition on the payload a
//! receiver would get. [`Filter::compile`] checks it and builds it once (paths split, regexes
//! compiled) when the webhook is stored; [`Filter::matches`] evaluates it per event and never
//! fails.

use std::cmp::Ordering;
use std::fmt;

use regex::Regex;
use serde_json::{Map, Value};

/// Largest filter, as compact JSON.
pub const MAX_BYTES: usize = 4096;
/// Deepest nesting: each object or array is a level.
pub const MAX_DEPTH: usize = 10;

/// A compiled filter and the JSON it was compiled from (what the API returns).
pub struct Filter {
    source: Value,
    root: Node,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Filter({})", self.source)
    }
}

/// Two filters are the same when their sources are.
impl PartialEq for Filter {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Path(Vec<String>, Vec<Op>),
}

enum Op {
    Eq(Value),
    Ne(Value),
    Cmp(Value, fn(Ordering) -> bool),
    In(Vec<Value>),
    Nin(Vec<Value>),
    Exists(bool),
    Regex(Regex),
}

impl Filter {
    /// Checks and compiles `source`; the error says what is wrong (field `filter`).
    pub fn compile(source: Value) -> Result<Self, String> {
        let size = serde_json::to_string(&source).map_or(usize::MAX, |s| s.len());
        if size > MAX_BYTES {
            return Err(format!("must be at most {MAX_BYTES} bytes as compact JSON"));
        }
        if depth(&source) > MAX_DEPTH {
            return Err(format!("must not nest deeper than {MAX_DEPTH} levels"));
        }
        let root = filter(&source, "")?;
        Ok(Self { source, root })
    }

    /// The filter as given.
    pub fn source(&self) -> &Value {
        &self.source
    }

    /// True when `payload` passes.
    pub fn matches(&self, payload: &Value) -> bool {
        self.root.eval(payload)
    }
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// `at` names where the filter sits, for messages.
fn filter(v: &Value, at: &str) -> Result<Node, String> {
    let Value::Object(m) = v else {
        return Err(format!("{}must be an object", where_(at)));
    };
    m.iter()
        .map(|(k, v)| entry(k, v, at))
        .collect::<Result<_, _>>()
        .map(Node::All)
}

fn where_(at: &str) -> String {
    if at.is_empty() {
        String::new()
    } else {
        format!("{at}: ")
    }
}

fn entry(key: &str, v: &Value, at: &str) -> Result<Node, String> {
    let here = if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    };
    match key {
        "$and" | "$or" => {
            let items = match v {
                Value::Array(a) if !a.is_empty() => a,
                _ => return Err(format!("{here}: must be a non-empty array of filters")),
            };
            let nodes = items
                .iter()
                .enumerate()
                .map(|(i, f)| filter(f, &format!("{here}.{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(if key == "$and" {
                Node::All(nodes)
            } else {
                Node::Any(nodes)
            })
        }
        "$not" => Ok(Node::Not(Box::new(filter(v, &here)?))),
        k if k.starts_with('$') => Err(format!("{here}: unknown operator")),
        path => Ok(Node::Path(
            path.split('.').map(str::to_string).collect(),
            condition(v, &here)?,
        )),
    }
}

fn condition(v: &Value, at: &str) -> Result<Vec<Op>, String> {
    let Value::Object(m) = v else {
        return Ok(vec![Op::Eq(v.clone())]);
    };
    let operators = m.keys().filter(|k| k.starts_with('$')).count();
    if operators == 0 {
        return Ok(vec![Op::Eq(v.clone())]);
    }
    if operators != m.len() {
        return Err(format!(
            "{at}: a condition cannot mix operators and plain keys"
        ));
    }
    m.iter().map(|(k, v)| operator(k, v, at)).collect()
}

fn operator(key: &str, v: &Value, at: &str) -> Result<Op, String> {
    let wrong = |what: &str| Err(format!("{at}.{key}: must be {what}"));
    Ok(match key {
        "$eq" => Op::Eq(v.clone()),
        "$ne" => Op::Ne(v.clone()),
        "$gt" | "$gte" | "$lt" | "$lte" => {
            if !(v.is_number() || v.is_string()) {
                return wrong("a number or a string");
            }
            let holds: fn(Ordering) -> bool = match key {
                "$gt" => |o| o == Ordering::Greater,
                "$gte" => |o| o != Ordering::Less,
                "$lt" => |o| o == Ordering::Less,
                _ => |o| o != Ordering::Greater,
            };
            Op::Cmp(v.clone(), holds)
        }
        "$in" | "$nin" => {
            let Value::Array(a) = v else {
                return wrong("an array");
            };
            if key == "$in" {
                Op::In(a.clone())
            } else {
                Op::Nin(a.clone())
            }
        }
        "$exists" => match v {
            Value::Bool(b) => Op::Exists(*b),
            _ => return wrong("a boolean"),
        },
        "$regex" => match v {
            Value::String(s) => {
                Op::Regex(Regex::new(s).map_err(|e| format!("{at}.$regex: does not compile: {e}"))?)
            }
            _ => return wrong("a string"),
        },
        _ => return Err(format!("{at}.{key}: unknown operator")),
    })
}

impl Node {
    fn eval(&self, root: &Value) -> bool {
        match self {
            Node::All(nodes) => nodes.iter().all(|n| n.eval(root)),
            Node::Any(nodes) => nodes.iter().any(|n| n.eval(root)),
            Node::Not(n) => !n.eval(root),
            Node::Path(path, ops) => {
                let value = lookup(root, path);
                ops.iter().all(|op| op.holds(value))
            }
        }
    }
}

/// The value at `path`: a key of an object, or a digits segment indexing an array.
fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(root, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) => {
            a.get(seg.parse::<usize>().ok()?)
        }
        _ => None,
    })
}

impl Op {
    fn holds(&self, value: Option<&Value>) -> bool {
        let Some(v) = value else {
            return matches!(self, Op::Exists(false));
        };
        match self {
            Op::Eq(x) => json_eq(v, x),
            Op::Ne(x) => !json_eq(v, x),
            Op::Cmp(x, holds) => compare(v, x).is_some_and(holds),
            Op::In(xs) => xs.iter().any(|x| json_eq(v, x)),
            Op::Nin(xs) => !xs.iter().any(|x| json_eq(v, x)),
            Op::Exists(b) => *b,
            Op::Regex(r) => v.as_str().is_some_and(|s| r.is_match(s)),
        }
    }
}

/// Deep equality with numbers compared by value (`1` equals `1.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => compare(a, b) == Some(Ordering::Equal),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => objects_eq(x, y),
        _ => a == b,
    }
}

fn objects_eq(x: &Map<String, Value>, y: &Map<String, Value>) -> bool {
    x.len() == y.len()
        && x.iter()
            .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
}

/// Numbers with numbers (exactly for integers), strings with strings by code point; other pairs
/// do not compare.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                return Some(x.cmp(&y));
            }
            if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                return Some(x.cmp(&y));
            }
            x.as_f64()?.partial_cmp(&y.as_f64()?)
        }
        (Value::String(x), Value::String(y)) => Some(x.as_str().cmp(y.as_str())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn payload() -> Value {
        json!({
            "id": "e1", "event": "claim/opened",
            "data": {"claimAmount": 7500, "region": "EU", "ratio": 1.0, "note": null,
                     "items": [{"sku": "A-1"}, {"sku": "B-2"}], "tags": ["x", "y"],
                     "at": "2026-02-12T10:00:00Z"},
            "user": {"id": "u-2"},
            "timestamp": "2026-02-12T10:00:00Z"
        })
    }

    #[test]
    fn evaluates_the_contract_table() {
        let p = payload();
        let table: &[(Value, bool)] = &[
            (json!({}), true),
            (json!({"event": "claim/opened"}), true),
            (json!({"data.claimAmount": {"$gte": 5000}}), true),
            (json!({"data.claimAmount": {"$gt": 7500}}), false),
            (
                json!({"data.claimAmount": {"$lte": 7500, "$gt": 7000}}),
                true,
            ),
            (json!({"data.claimAmount": {"$lt": "9000"}}), false),
            (json!({"data.claimAmount": 7500.0}), true),
            (json!({"data.ratio": {"$eq": 1}}), true),
            (json!({"data.ratio": {"$ne": 1}}), false),
            (json!({"data.region": {"$in": ["EU", "UK"]}}), true),
            (json!({"data.region": {"$nin": ["EU", "UK"]}}), false),
            (json!({"data.region": {"$regex": "^E"}}), true),
            (json!({"data.region": {"$regex": "U"}}), true),
            (json!({"data.claimAmount": {"$regex": "7"}}), false),
            (json!({"data.at": {"$gte": "2026-01-01T00:00:00Z"}}), true),
            (json!({"data.items.1.sku": "B-2"}), true),
            (json!({"data.items.2.sku": {"$exists": false}}), true),
            (json!({"data.items.0": {"sku": "A-1"}}), true),
            (json!({"data.tags": ["x", "y"]}), true),
            (json!({"data.tags": ["y", "x"]}), false),
            (json!({"data.note": {"$exists": true}}), true),
            (json!({"data.note": null}), true),
            (json!({"data.missing": {"$exists": false}}), true),
            (json!({"data.missing": {"$exists": true}}), false),
            (json!({"data.missing": {"$ne": 5}}), false),
            (json!({"data.missing": {"$nin": [5]}}), false),
            (json!({"data.region.x": {"$exists": false}}), true),
            (json!({"$not": {"data.missing": 5}}), true),
            (json!({"$not": {"data.region": "EU"}}), false),
            (
                json!({"$or": [{"data.region": "US"}, {"user.id": "u-2"}]}),
                true,
            ),
            (
                json!({"$or": [{"data.region": "US"}, {"user.id": "u-1"}]}),
                false,
            ),
            (
                json!({"$and": [{"data.region": "EU"}, {"user.id": "u-2"}]}),
                true,
            ),
            (
                json!({"data.claimAmount": {"$gte": 5000},
                       "$or": [{"data.region": {"$in": ["EU", "UK"]}}, {"$not": {"user.id": "u-1"}}]}),
                true,
            ),
        ];
        for (f, want) in table {
            let compiled = Filter::compile(f.clone()).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert_eq!(compiled.matches(&p), *want, "{f}");
        }
    }

    #[test]
    fn refuses_invalid_filters() {
        let deep = (0..11).fold(json!(1), |v, _| json!([v]));
        let table: &[Value] = &[
            json!([]),
            json!("x"),
            json!({"$nor": []}),
            json!({"a": {"$not": {"$eq": 1}}}),
            json!({"a": {"$foo": 1}}),
            json!({"a": {"$gt": true}}),
            json!({"a": {"$in": 3}}),
            json!({"a": {"$exists": "yes"}}),
            json!({"a": {"$regex": 5}}),
            json!({"a": {"$regex": "("}}),
            json!({"a": {"$eq": 1, "b": 2}}),
            json!({"$and": []}),
            json!({"$or": {}}),
            json!({"$and": [3]}),
            json!({"$not": 3}),
            json!({"a": deep}),
            json!({"a": "x".repeat(MAX_BYTES)}),
        ];
        for f in table {
            assert!(Filter::compile(f.clone()).is_err(), "{f}");
        }
    }

    #[test]
    fn nesting_counts_objects_and_arrays() {
        // 10 levels: the filter object and 9 nested arrays.
        let nine = (0..9).fold(json!(1), |v, _| json!([v]));
        assert!(Filter::compile(json!({"a": {"$in": nine.clone()}})).is_err());
        let eight = (0..8).fold(json!(1), |v, _| json!([v]));
        assert!(Filter::compile(json!({"a": {"$in": eight}})).is_ok());
        assert!(Filter::compile(json!({"a": nine})).is_ok());
    }

    #[test]
    fn keeps_its_source() {
        let f = Filter::compile(json!({"a": 1})).unwrap();
        assert_eq!(f.source(), &json!({"a": 1}));
        assert_eq!(f, Filter::compile(json!({"a": 1})).unwrap());
    }
}
