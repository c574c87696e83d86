//! Files embedded in the binary (read from disk in debug builds, so editing and
//! reloading works):
//! - `/assets/<version>/<path>`: the web app's scripts, styles and images. The
//!   version is a hash of every asset, so each release has its own URLs and
//!   browsers may cache them for ever (`immutable`). One version for the whole
//!   folder rather than one per file: the scripts are ES modules that import
//!   each other by relative path, which then needs no rewriting.
//! - `/static/<path>`: the original system's test pages, at fixed URLs.

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;
use sha2::{Digest, Sha256};

use crate::error::AppError;
use crate::http::state::AppState;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// Pages may load scripts, styles and images from here and talk to this server
/// only; no inline script or style.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; media-src 'self' blob:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The web app's assets and the version their URLs carry.
pub struct AssetBundle {
    version: String,
    /// Release builds serve assets as immutable; debug builds read them from
    /// disk and must not be cached.
    immutable: bool,
}

impl AssetBundle {
    pub fn load() -> Self {
        let mut names: Vec<_> = Assets::iter().collect();
        names.sort();
        let mut hasher = Sha256::new();
        for name in &names {
            if let Some(file) = Assets::get(name) {
                hasher.update(name.as_bytes());
                hasher.update([0]);
                hasher.update(file.metadata.sha256_hash());
            }
        }
        Self {
            version: hex::encode(&hasher.finalize()[..6]),
            immutable: !cfg!(debug_assertions),
        }
    }

    /// `/assets/<version>/`, the base every asset URL starts with.
    pub fn base(&self) -> String {
        format!("/assets/{}/", self.version)
    }

    /// The URL of one asset, e.g. `url("css/app.css")`.
    pub fn url(&self, path: &str) -> String {
        format!("/assets/{}/{path}", self.version)
    }
}

/// `GET /assets/<version>/<path>`.
pub async fn asset_file(
    State(state): State<AppState>,
    Path((version, path)): Path<(String, String)>,
) -> Response {
    let Some(file) = Assets::get(&path) else {
        return AppError::not_found("not_found", "no such file").into_response();
    };
    // A page from another release (a rolling upgrade) still gets a file, but
    // not one it may cache under that release's name.
    let cache = if version != state.assets.version {
        "no-store"
    } else if state.assets.immutable {
        IMMUTABLE
    } else {
        "no-cache"
    };
    respond(&path, file.data.into_owned(), cache)
}

/// `GET /static/<path>`.
pub async fn static_file(Path(path): Path<String>) -> Response {
    let Some(file) = Static::get(&path) else {
        return AppError::not_found("not_found", "no such file").into_response();
    };
    let mut response = respond(&path, file.data.into_owned(), "no-cache");
    if let Ok(etag) = HeaderValue::from_str(&format!(
        "\"{}\"",
        hex::encode(&file.metadata.sha256_hash()[..8])
    )) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

fn respond(path: &str, body: Vec<u8>, cache: &'static str) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    response
}
