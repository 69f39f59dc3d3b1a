//! The ops console (README, Console): plain JavaScript modules and a stylesheet compiled into
//! the binary, served under `/console/` with a strict CSP; no build step, nothing from the network.
//!
//! Assets live under `/console/assets/<version>/`, where the version is a hash of every asset: they
//! are cached for a year, and a new binary with other assets changes every URL at once (modules
//! import each other by relative path, so they share one version). The page itself is never cached.

use std::sync::LazyLock;

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{web, HttpResponse};
use sha2::{Digest, Sha256};

/// Every response under `/console/` carries this policy: scripts, styles, fonts and connections to
/// this server only; images also from `data:`; no plugins, no `<base>`, no framing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; \
     form-action 'self'";

/// (name, content type, bytes) of each asset.
const ASSETS: [(&str, &str, &[u8]); 4] = [
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/app.js"),
    ),
    (
        "lib.js",
        "text/javascript; charset=utf-8",
        include_bytes!("assets/lib.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("assets/style.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_bytes!("assets/icon.svg"),
    ),
];

const INDEX: &str = include_str!("assets/index.html");

/// The assets' version: the first 16 hex digits of a SHA-256 over all of them.
pub static VERSION: LazyLock<String> = LazyLock::new(|| {
    let mut h = Sha256::new();
    for (name, _, bytes) in ASSETS {
        h.update(name.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex::encode(h.finalize())[..16].to_string()
});

static PAGE: LazyLock<String> = LazyLock::new(|| INDEX.replace("{{VERSION}}", &VERSION));

/// Routes under `/console`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .wrap(
                DefaultHeaders::new()
                    .add((header::CONTENT_SECURITY_POLICY, CSP))
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
            .route("", web::get().to(redirect))
            .route("/", web::get().to(index))
            .route("/assets/{version}/{name}", web::get().to(asset))
            .default_service(web::to(not_found)),
    );
}

async fn redirect() -> HttpResponse {
    HttpResponse::PermanentRedirect()
        .insert_header((header::LOCATION, "/console/"))
        .finish()
}

async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE.as_str())
}

async fn asset(path: web::Path<(String, String)>) -> HttpResponse {
    let (version, name) = path.into_inner();
    let found = ASSETS.iter().find(|a| a.0 == name);
    match found {
        Some((_, content_type, bytes)) if version == *VERSION => HttpResponse::Ok()
            .content_type(*content_type)
            .insert_header((
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=31536000, immutable"),
            ))
            .body(*bytes),
        _ => not_found().await,
    }
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/plain; charset=utf-8")
        .body("not found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_versioned_assets_only() {
        assert!(PAGE.contains(&format!("assets/{}/app.js", *VERSION)));
        assert!(!PAGE.contains("{{"));
        assert!(!PAGE.contains("http"), "no absolute URL in the page");
    }

    #[test]
    fn the_policy_allows_nothing_inline_or_remote() {
        for bad in [
            "unsafe-inline",
            "unsafe-eval",
            "*",
            "http",
            "strict-dynamic",
        ] {
            assert!(!CSP.contains(bad), "{bad}");
        }
    }

    #[test]
    fn scripts_build_text_not_html() {
        for (name, _, bytes) in ASSETS {
            let text = String::from_utf8_lossy(bytes);
            for bad in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "eval(",
            ] {
                assert!(!text.contains(bad), "{name} uses {bad}");
            }
        }
    }
}
