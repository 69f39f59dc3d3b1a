//! Reading requests defensively: JSON bodies (415/413/400/422) and path ids (400).

use actix_web::{web, HttpRequest};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::error::{ApiError, ApiResult};

/// Reads a JSON body: `Content-Type` must be JSON, the size within `limit`, the bytes valid JSON.
pub async fn read_json(
    req: &HttpRequest,
    mut payload: actix_web::dev::Payload,
    limit: usize,
) -> ApiResult<Value> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if mime != "application/json" && !(mime.starts_with("application/") && mime.ends_with("+json"))
    {
        return Err(ApiError::unsupported_media());
    }
    if let Some(len) = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        if len > limit {
            return Err(ApiError::too_large(limit));
        }
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("could not read body: {e}")))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::too_large(limit));
        }
        body.extend_from_slice(&chunk);
    }
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "request body is empty; expected JSON",
        ));
    }
    // serde_json refuses nesting deeper than 128 levels, so hostile depth is a 400, not a stack overflow.
    serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

/// Deserializes a parsed body into `T`; a wrong type is a 422 naming the field.
pub fn from_value<T: DeserializeOwned>(value: Value, prefix: &str) -> ApiResult<T> {
    // Every input is a struct, and serde would also fill one from an array by position
    // (`[null, "name", ...]`): only an object is a valid body.
    if !value.is_object() {
        let field = if prefix.is_empty() { "body" } else { prefix };
        return Err(ApiError::validation(field, "must be a JSON object"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = match (prefix.is_empty(), path.as_str()) {
            (_, ".") if !prefix.is_empty() => prefix.to_string(),
            (true, _) => path.clone(),
            (false, _) => format!("{prefix}.{path}"),
        };
        let field = if field == "." {
            "body".to_string()
        } else {
            field
        };
        ApiError::validation(field, clean_serde_message(&e.inner().to_string()))
    })
}

/// `deserialize_with` for an optional integer field that also takes a whole number written as a
/// float (`5.0`, as Python's `json` writes one): JSON Schema's `integer` admits it.
pub fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    use serde::de::{Error, Unexpected};
    use serde::Deserialize;
    let Some(n) = Option::<serde_json::Number>::deserialize(d)? else {
        return Ok(None);
    };
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match (n.as_u64(), n.as_f64()) {
        (Some(u), _) => Err(Error::invalid_value(Unexpected::Unsigned(u), &"an i64")),
        // -2^63 and 2^63 are exact as f64s; every whole float between them fits.
        (None, Some(f))
            if f.fract() == 0.0 && (i64::MIN as f64..-(i64::MIN as f64)).contains(&f) =>
        {
            Ok(Some(f as i64))
        }
        (None, Some(f)) => Err(Error::invalid_value(Unexpected::Float(f), &"an i64")),
        (None, None) => Err(Error::custom("expected an i64")),
    }
}

/// `deserialize_with` for an optional nested struct: `null` is `None`, and only an object fills
/// it (serde would also take an array by position, `[]` giving every default).
pub fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::Deserialize<'de>,
{
    struct ObjectOnly<T>(std::marker::PhantomData<T>);
    impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectOnly<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_any(self)
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
        }
    }
    d.deserialize_any(ObjectOnly(std::marker::PhantomData))
}

fn clean_serde_message(m: &str) -> String {
    // serde_json appends " at line X column Y", meaningless once the body was parsed.
    match m.find(" at line ") {
        Some(i) => m[..i].to_string(),
        None => m.to_string(),
    }
}

/// A numeric path id; anything else is a 400.
pub fn path_id(raw: &str, what: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| ApiError::bad_param(what, format!("`{raw}` is not an id")))
}
