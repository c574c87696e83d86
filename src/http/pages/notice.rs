//! Friendly pages for what went wrong (not found, no access, expired form).

use askama::Template;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;

use crate::domain::user::{Language, User};
use crate::error::AppError;
use crate::http::state::AppState;

use super::{Page, default_theme, html, page, session_of, user_page, visitor_lang};

#[derive(Template)]
#[template(path = "message.html")]
struct MessageTemplate<'a> {
    page: Page<'a>,
    title_key: &'static str,
    text: String,
    logged_in: bool,
}

/// A friendly page saying what went wrong, with a way back.
pub(super) fn message_page(
    state: &AppState,
    user: Option<&User>,
    status: StatusCode,
    title_key: &'static str,
    text: &str,
) -> Response {
    let page = match user {
        Some(user) => user_page(state, user, None),
        None => page(state, Language::ZhCn, default_theme(), None),
    };
    let template = MessageTemplate {
        page,
        title_key,
        text: text.to_owned(),
        logged_in: user.is_some(),
    };
    html(&template, status)
}

/// Unknown paths: a not-found page for browsers, the JSON error otherwise.
pub async fn not_found(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !wants_html || uri.path().starts_with("/tools/api/") {
        return AppError::not_found("not_found", "no such page").into_response();
    }
    let user = session_of(&state, &jar)
        .await
        .ok()
        .flatten()
        .map(|(_, user)| user);
    let lang = match &user {
        Some(user) => user.language,
        None => visitor_lang(None, &jar, &headers),
    };
    let text = state.i18n.get(lang).t("page.not_found_text").to_owned();
    match &user {
        Some(user) => message_page(
            &state,
            Some(user),
            StatusCode::NOT_FOUND,
            "page.not_found_title",
            &text,
        ),
        None => {
            let template = MessageTemplate {
                page: page(&state, lang, default_theme(), None),
                title_key: "page.not_found_title",
                text,
                logged_in: false,
            };
            html(&template, StatusCode::NOT_FOUND)
        }
    }
}
