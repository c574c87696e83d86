//! The web app's HTML pages: server-rendered (askama templates in `templates/`),
//! enhanced by the scripts under `assets/js/`. Login, registration, logout,
//! joining by invite and starting a direct message also work without
//! JavaScript: a form POST carrying `csrfmiddlewaretoken`, then a 303 redirect.

use askama::Template;
use axum::Form;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::user::{Language, ThemeMode, ThemeStyle, User};
use crate::error::{AppError, Result};
use crate::http::assets::PAGE_CSP;
use crate::http::extract::CSRF_COOKIE;
use crate::http::identity::{Caller, Claim, csrf_failed};
use crate::http::state::AppState;
use crate::i18n::{self, Catalog};
use crate::services::accounts;
use crate::store::SessionRecord;

mod auth;
mod chat;
mod invite;
mod notice;
mod profile;
mod settings;

pub use auth::{
    login_page, login_submit, logout_page, logout_submit, register_page, register_submit,
};
pub use chat::{app_page, enhanced_chat_page};
pub use invite::{invite_page, invite_submit};
pub use notice::not_found;
pub use profile::{direct_submit, profile_page};
pub use settings::settings_page;

/// Remembers the language an anonymous visitor picked on the login page.
const LANG_COOKIE: &str = "lang";

/// What every page's layout needs.
pub struct Page<'a> {
    catalog: &'a Catalog,
    pub lang: &'static str,
    pub mode: &'static str,
    pub style: &'static str,
    assets: &'a crate::http::assets::AssetBundle,
    /// JSON for the page's script, in `<body data-boot>` (attribute-escaped by
    /// the template, so user text in it can never become markup).
    pub boot: String,
}

impl Page<'_> {
    pub fn t(&self, key: impl AsRef<str>) -> String {
        self.catalog.t(key.as_ref()).to_owned()
    }

    pub fn t_with(&self, key: &str, name: &str, value: &str) -> String {
        self.catalog.t_with(key, &[(name, value)])
    }

    pub fn asset(&self, path: &str) -> String {
        self.assets.url(path)
    }

    /// The markup of one icon of the sprite (`assets/img/icons.svg`), hidden
    /// from assistive technology: the control holding it is named instead.
    /// `name` is always a literal in a template, never user input.
    pub fn icon(&self, name: &str) -> String {
        format!(
            r##"<svg class="icon" aria-hidden="true" focusable="false"><use href="{}#{name}"/></svg>"##,
            self.assets.url("img/icons.svg")
        )
    }

    /// `zh-CN` / `en`, for the language switch links.
    pub fn other_lang(&self) -> (&'static str, &'static str) {
        match self.lang {
            "en" => ("zh-CN", "中文"),
            _ => ("en", "English"),
        }
    }
}

/// The data a page's script starts from.
#[derive(Serialize)]
struct Boot<'a, T: Serialize> {
    lang: &'static str,
    catalog: &'a RawValue,
    assets: String,
    csrf: &'a str,
    #[serde(flatten)]
    page: T,
}

/// A page in `lang`; `boot` is the script's data, for pages that have a script.
fn page(
    state: &AppState,
    lang: Language,
    theme: (ThemeMode, ThemeStyle),
    boot: Option<String>,
) -> Page<'_> {
    Page {
        catalog: state.i18n.get(lang),
        lang: lang.code(),
        mode: theme.0.code(),
        style: theme.1.code(),
        assets: &state.assets,
        boot: boot.unwrap_or_default(),
    }
}

/// A page of a logged-in user, in their language and theme.
fn user_page<'a>(state: &'a AppState, user: &User, boot: Option<String>) -> Page<'a> {
    page(
        state,
        user.language,
        (user.theme_mode, user.theme_style),
        boot,
    )
}

/// The boot data of a page with a script: its catalogue, CSRF token and `data`.
fn script_boot<T: Serialize>(state: &AppState, user: &User, csrf: &str, data: T) -> String {
    let boot = Boot {
        lang: user.language.code(),
        catalog: state.i18n.get(user.language).raw_json(),
        assets: state.assets.base(),
        csrf,
        page: data,
    };
    serde_json::to_string(&boot).unwrap_or_else(|_| "{}".into())
}

/// Renders a template as an HTML response with the page CSP, never cached
/// (pages carry the CSRF token and the user's data).
fn html(template: &impl Template, status: StatusCode) -> Response {
    match template.render() {
        Ok(body) => {
            let mut response = (status, body).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(PAGE_CSP),
            );
            response
        }
        Err(err) => {
            AppError::Internal(anyhow::anyhow!("rendering a page failed: {err}")).into_response()
        }
    }
}

/// The logged-in user of a page request, from the session cookie.
async fn session_of(state: &AppState, jar: &CookieJar) -> Result<Option<(SessionRecord, User)>> {
    let Some(claim) = Claim::session(jar) else {
        return Ok(None);
    };
    Ok(match claim.identify(state).await? {
        Some(Caller::Session(session, user)) => Some((session, user)),
        _ => None,
    })
}

/// Where to send a visitor who must log in first, coming back here afterwards.
fn to_login(uri: &Uri) -> Response {
    let next = uri.path_and_query().map_or("/", |p| p.as_str());
    let query = serde_urlencoded_pair("next", next);
    Redirect::to(&format!("/login?{query}")).into_response()
}

fn serde_urlencoded_pair(key: &str, value: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .append_pair(key, value)
        .finish()
}

/// Only local paths: `next` must never send a user to another site.
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path
        }
        _ => "/",
    }
}

/// The language of an anonymous page: `?lang=`, then the `lang` cookie, then
/// `Accept-Language`.
fn visitor_lang(query: Option<&str>, jar: &CookieJar, headers: &HeaderMap) -> Language {
    query
        .and_then(Language::from_code)
        .or_else(|| {
            jar.get(LANG_COOKIE)
                .and_then(|c| Language::from_code(c.value()))
        })
        .unwrap_or_else(|| {
            i18n::negotiate(
                headers
                    .get(header::ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok()),
            )
        })
}

/// The CSRF token for a form shown before login: the `csrftoken` cookie's value
/// (created if absent), checked against the form field on submit. A cross-site
/// form cannot read or set the cookie (SameSite=Lax), so it cannot pass.
fn anonymous_csrf(jar: CookieJar, secure: bool) -> (CookieJar, String) {
    if let Some(cookie) = jar.get(CSRF_COOKIE) {
        let token = cookie.value().to_owned();
        return (jar, token);
    }
    let token = accounts::random_token();
    let cookie = Cookie::build((CSRF_COOKIE, token.clone()))
        .path("/")
        .same_site(SameSite::Lax)
        .secure(secure)
        .build();
    (jar.add(cookie), token)
}

fn csrf_matches(sent: &str, expected: &str) -> bool {
    !expected.is_empty() && accounts::constant_time_eq(sent, expected)
}

/// A page form that carries only its CSRF token (`csrfmiddlewaretoken`).
#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default, rename = "csrfmiddlewaretoken")]
    csrf: String,
}

/// What a page's form submission brings: its fields, or why they could not be read.
type Submitted = std::result::Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>;

/// The one CSRF check of a logged-in page's form: its token must be the session's.
fn form_csrf(form: Submitted, session: &SessionRecord) -> Result<()> {
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if csrf_matches(&sent, &session.csrf_token) {
        Ok(())
    } else {
        Err(csrf_failed())
    }
}

fn default_theme() -> (ThemeMode, ThemeStyle) {
    (ThemeMode::Work, ThemeStyle::Auto)
}

fn room_path(room: &str) -> String {
    format!("/tools/chat/enhanced/{room}/")
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(
            safe_next(Some("/tools/chat/enhanced/general/")),
            "/tools/chat/enhanced/general/"
        );
        assert_eq!(safe_next(Some("/settings?x=1")), "/settings?x=1");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/a\nb")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
