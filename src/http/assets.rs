//! Static files under `/static/`, embedded in the binary (read from disk in
//! debug builds, so editing and reloading works).

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use crate::error::AppError;

#[derive(RustEmbed)]
#[folder = "static/"]
struct Static;

/// Pages may load scripts, styles and images from here and talk to this server only.
pub const PAGE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self' ws: wss:; media-src 'self' blob:; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// `GET /static/<path>`.
pub async fn static_file(Path(path): Path<String>) -> Response {
    let Some(file) = Static::get(&path) else {
        return AppError::not_found("not_found", "no such file").into_response();
    };
    let mime = mime_guess::from_path(&path).first_or_octet_stream();
    let mut response = (StatusCode::OK, file.data.into_owned()).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(etag) = HeaderValue::from_str(&format!(
        "\"{}\"",
        hex::encode(&file.metadata.sha256_hash()[..8])
    )) {
        headers.insert(header::ETAG, etag);
    }
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    response
}
