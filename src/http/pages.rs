//! The web app's HTML pages: server-rendered (askama templates in `templates/`),
//! enhanced by the scripts under `assets/js/`. Login, registration, logout,
//! joining by invite and starting a direct message also work without
//! JavaScript: a form POST carrying `csrfmiddlewaretoken`, then a 303 redirect.

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::domain::ids::RoomId;
use crate::domain::room::RoomKind;
use crate::domain::time::now_ms;
use crate::domain::user::{Language, ThemeMode, ThemeStyle, User};
use crate::error::{AppError, Result};
use crate::http::api::auth::{clear_session_cookies, session_cookies};
use crate::http::assets::PAGE_CSP;
use crate::http::extract::{CSRF_COOKIE, Client, SESSION_COOKIE};
use crate::i18n::{self, Catalog};
use crate::services::accounts::{self, Registration};
use crate::services::{profiles, rooms};
use crate::state::AppState;
use crate::store::SessionRecord;
use crate::views::ProfileView;

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
    match jar.get(SESSION_COOKIE) {
        Some(cookie) => accounts::session_user(state, cookie.value()).await,
        None => Ok(None),
    }
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

// ---------------------------------------------------------------- login / register

#[derive(Deserialize, Default)]
pub struct AuthQuery {
    next: Option<String>,
    lang: Option<String>,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginTemplate<'a> {
    page: Page<'a>,
    csrf: String,
    next: String,
    username: String,
    error: Option<String>,
    registration_open: bool,
}

#[derive(Template)]
#[template(path = "register.html")]
struct RegisterTemplate<'a> {
    page: Page<'a>,
    csrf: String,
    next: String,
    username: String,
    display_name: String,
    error: Option<String>,
    registration_open: bool,
}

/// `GET /login`.
pub async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(query): Query<AuthQuery>,
) -> Result<Response> {
    let next = safe_next(query.next.as_deref()).to_owned();
    if session_of(&state, &jar).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let lang = visitor_lang(query.lang.as_deref(), &jar, &headers);
    let (jar, csrf) = anonymous_csrf(jar, state.config.secure_cookies());
    let jar = remember_lang(jar, query.lang.as_deref(), &state);
    let template = LoginTemplate {
        page: page(&state, lang, default_theme(), None),
        csrf,
        next,
        username: String::new(),
        error: None,
        registration_open: state.config.registration_open,
    };
    Ok((jar, html(&template, StatusCode::OK)).into_response())
}

fn default_theme() -> (ThemeMode, ThemeStyle) {
    (ThemeMode::Work, ThemeStyle::Auto)
}

fn remember_lang(jar: CookieJar, picked: Option<&str>, state: &AppState) -> CookieJar {
    match picked.and_then(Language::from_code) {
        Some(lang) => jar.add(
            Cookie::build((LANG_COOKIE, lang.code()))
                .path("/")
                .same_site(SameSite::Lax)
                .secure(state.config.secure_cookies())
                .max_age(cookie::time::Duration::days(365))
                .build(),
        ),
        None => jar,
    }
}

#[derive(Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default, rename = "csrfmiddlewaretoken")]
    csrf: String,
    next: Option<String>,
}

/// `POST /login` (form).
pub async fn login_submit(
    State(state): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    headers: HeaderMap,
    form: std::result::Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response> {
    let lang = visitor_lang(None, &jar, &headers);
    let (jar, csrf) = anonymous_csrf(jar, state.config.secure_cookies());
    let form = form.ok().map(|Form(f)| f);
    let next = safe_next(form.as_ref().and_then(|f| f.next.as_deref())).to_owned();
    let username = form
        .as_ref()
        .map(|f| f.username.trim().to_owned())
        .unwrap_or_default();
    let outcome = match form {
        None => Err(AppError::bad_request(
            "invalid_form",
            "the form could not be read",
        )),
        Some(form) if !csrf_matches(&form.csrf, &csrf) => Err(csrf_error()),
        Some(form) => accounts::login(&state, &form.username, form.password, &client).await,
    };
    match outcome {
        Ok((_, session)) => {
            let jar = session_cookies(&state, jar, &session);
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Err(err) => {
            let catalog = state.i18n.get(lang);
            let template = LoginTemplate {
                page: page(&state, lang, default_theme(), None),
                csrf: csrf.clone(),
                next,
                username,
                error: Some(catalog.error(err.code(), &err.public_message()).to_owned()),
                registration_open: state.config.registration_open,
            };
            Ok((jar, form_error(&err, html(&template, err.status()))).into_response())
        }
    }
}

fn csrf_error() -> AppError {
    AppError::forbidden(
        "csrf_failed",
        "the form expired; reload the page and try again",
    )
}

/// Keeps a rate limit's `Retry-After` on a re-rendered form.
fn form_error(err: &AppError, mut response: Response) -> Response {
    if let AppError::RateLimited { retry_after, .. } = err
        && let Ok(value) = HeaderValue::from_str(&retry_after.as_secs().max(1).to_string())
    {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `GET /register`.
pub async fn register_page(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    Query(query): Query<AuthQuery>,
) -> Result<Response> {
    let next = safe_next(query.next.as_deref()).to_owned();
    if session_of(&state, &jar).await?.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let lang = visitor_lang(query.lang.as_deref(), &jar, &headers);
    let (jar, csrf) = anonymous_csrf(jar, state.config.secure_cookies());
    let jar = remember_lang(jar, query.lang.as_deref(), &state);
    let template = RegisterTemplate {
        page: page(&state, lang, default_theme(), None),
        csrf,
        next,
        username: String::new(),
        display_name: String::new(),
        error: None,
        registration_open: state.config.registration_open,
    };
    let status = if state.config.registration_open {
        StatusCode::OK
    } else {
        StatusCode::FORBIDDEN
    };
    Ok((jar, html(&template, status)).into_response())
}

#[derive(Deserialize)]
pub struct RegisterForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password2: String,
    #[serde(default, rename = "csrfmiddlewaretoken")]
    csrf: String,
    next: Option<String>,
}

/// `POST /register` (form).
pub async fn register_submit(
    State(state): State<AppState>,
    Client(client): Client,
    jar: CookieJar,
    headers: HeaderMap,
    form: std::result::Result<Form<RegisterForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response> {
    let lang = visitor_lang(None, &jar, &headers);
    let (jar, csrf) = anonymous_csrf(jar, state.config.secure_cookies());
    let form = form.ok().map(|Form(f)| f);
    let next = safe_next(form.as_ref().and_then(|f| f.next.as_deref())).to_owned();
    let (username, display_name) = form
        .as_ref()
        .map(|f| {
            (
                f.username.trim().to_owned(),
                f.display_name.trim().to_owned(),
            )
        })
        .unwrap_or_default();
    let outcome = match form {
        None => Err(AppError::bad_request(
            "invalid_form",
            "the form could not be read",
        )),
        Some(form) if !csrf_matches(&form.csrf, &csrf) => Err(csrf_error()),
        Some(form) if form.password != form.password2 => Err(AppError::bad_request(
            "password_mismatch",
            "the two passwords differ",
        )),
        Some(form) => {
            let input = Registration {
                username: form.username,
                password: form.password,
                display_name: Some(form.display_name).filter(|n| !n.trim().is_empty()),
            };
            accounts::register(&state, input, &client).await
        }
    };
    match outcome {
        Ok((user, session)) => {
            let jar = session_cookies(&state, jar, &session);
            // A new account starts in the language it registered in.
            if user.language != lang {
                let patch = profiles::ProfilePatch {
                    language: Some(lang.code().to_owned()),
                    ..Default::default()
                };
                profiles::update(&state, &user, patch).await?;
            }
            Ok((jar, Redirect::to(&next)).into_response())
        }
        Err(err) => {
            let catalog = state.i18n.get(lang);
            let template = RegisterTemplate {
                page: page(&state, lang, default_theme(), None),
                csrf: csrf.clone(),
                next,
                username,
                display_name,
                error: Some(catalog.error(err.code(), &err.public_message()).to_owned()),
                registration_open: state.config.registration_open,
            };
            Ok((jar, form_error(&err, html(&template, err.status()))).into_response())
        }
    }
}

// ---------------------------------------------------------------- logout

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutTemplate<'a> {
    page: Page<'a>,
    csrf: String,
}

/// `GET /logout`: a confirmation (a GET must not change anything).
pub async fn logout_page(State(state): State<AppState>, jar: CookieJar) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let template = LogoutTemplate {
        page: user_page(&state, &user, None),
        csrf: session.csrf_token.clone(),
    };
    Ok(html(&template, StatusCode::OK))
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default, rename = "csrfmiddlewaretoken")]
    csrf: String,
}

/// `POST /logout` (form): ends the session, back to the login page.
pub async fn logout_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    form: std::result::Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok((clear_session_cookies(jar), Redirect::to("/login")).into_response());
    };
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !csrf_matches(&sent, &session.csrf_token) {
        return Ok(message_page(
            &state,
            Some(&user),
            StatusCode::FORBIDDEN,
            "page.csrf_title",
            state
                .i18n
                .get(user.language)
                .error("csrf_failed", "CSRF check failed"),
        ));
    }
    accounts::logout(&state, &session.token_hash).await?;
    Ok((clear_session_cookies(jar), Redirect::to("/login")).into_response())
}

// ---------------------------------------------------------------- the app

#[derive(Template)]
#[template(path = "app.html")]
struct AppTemplate<'a> {
    page: Page<'a>,
    me: ProfileView,
    csrf: String,
}

#[derive(Serialize)]
struct AppBoot<'a> {
    me: &'a ProfileView,
    /// The room to open first (`/tools/chat/enhanced/<room_id>/`), if any.
    room: Option<&'a str>,
    max_message_chars: usize,
}

/// `GET /`: the chat app.
pub async fn app_page(State(state): State<AppState>, jar: CookieJar, uri: Uri) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    render_app(&state, &session, &user, None).await
}

/// `GET /tools/chat/enhanced/<room_id>/`: the app opened on a room. An unknown
/// room is a not-found page: a GET never creates anything.
pub async fn enhanced_chat_page(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(room_id): Path<String>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let Ok(room) = RoomId::parse(&room_id) else {
        return Ok(room_missing_page(&state, &user));
    };
    match rooms::access(&state, &room, user.id).await {
        Ok(_) => render_app(&state, &session, &user, Some(room.as_str())).await,
        Err(AppError::NotFound { .. }) => Ok(room_missing_page(&state, &user)),
        Err(AppError::Forbidden { .. }) => Ok(message_page(
            &state,
            Some(&user),
            StatusCode::FORBIDDEN,
            "page.forbidden_room_title",
            state.i18n.get(user.language).t("page.forbidden_room_text"),
        )),
        Err(other) => Err(other),
    }
}

fn room_missing_page(state: &AppState, user: &User) -> Response {
    message_page(
        state,
        Some(user),
        StatusCode::NOT_FOUND,
        "page.missing_room_title",
        state.i18n.get(user.language).t("page.missing_room_text"),
    )
}

async fn render_app(
    state: &AppState,
    session: &SessionRecord,
    user: &User,
    room: Option<&str>,
) -> Result<Response> {
    let me = profiles::view(state, user, Some(user)).await?;
    let boot = AppBoot {
        me: &me,
        room,
        max_message_chars: state.config.max_message_chars,
    };
    let page = user_page(
        state,
        user,
        Some(script_boot(state, user, &session.csrf_token, boot)),
    );
    let template = AppTemplate {
        page,
        me,
        csrf: session.csrf_token.clone(),
    };
    Ok(html(&template, StatusCode::OK))
}

// ---------------------------------------------------------------- profile card

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfileTemplate<'a> {
    page: Page<'a>,
    profile: ProfileView,
    is_me: bool,
    csrf: String,
}

impl ProfileTemplate<'_> {
    fn real_name(&self) -> String {
        real_name(&self.profile)
    }

    fn shown_name(&self) -> &str {
        if self.profile.display_name.is_empty() {
            &self.profile.username
        } else {
            &self.profile.display_name
        }
    }

    /// The tag's label in the page's language, with its emoji.
    fn tag_label(&self, kind: &str, code: &str) -> String {
        self.page.t(format!("tag.{kind}.{code}"))
    }

    fn membership_key(&self) -> String {
        format!("membership.{}", self.profile.membership)
    }

    fn mode_key(&self) -> String {
        format!("mode.{}", self.profile.theme.mode)
    }

    fn date(&self, rfc3339: &str) -> String {
        rfc3339.get(..10).unwrap_or(rfc3339).to_owned()
    }
}

fn real_name(profile: &ProfileView) -> String {
    format!("{} {}", profile.first_name, profile.last_name)
        .trim()
        .to_owned()
}

/// `GET /u/<username>`: a user's profile card.
pub async fn profile_page(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(username): Path<String>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let Some(subject) = state.store.get_user_by_username(&username).await? else {
        return Ok(message_page(
            &state,
            Some(&user),
            StatusCode::NOT_FOUND,
            "page.missing_user_title",
            state.i18n.get(user.language).t("page.missing_user_text"),
        ));
    };
    let profile = profiles::view(&state, &subject, Some(&user)).await?;
    let template = ProfileTemplate {
        page: user_page(&state, &user, None),
        is_me: subject.id == user.id,
        profile,
        csrf: session.csrf_token.clone(),
    };
    Ok(html(&template, StatusCode::OK))
}

/// `POST /u/<username>/message` (form): opens the direct room with that user.
pub async fn direct_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(username): Path<String>,
    form: std::result::Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !csrf_matches(&sent, &session.csrf_token) {
        return Err(csrf_error());
    }
    let other = state
        .store
        .get_user_by_username(&username)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    let (room, _) = rooms::direct(&state, &user, other.id).await?;
    Ok(Redirect::to(&room_path(room.id.as_str())).into_response())
}

fn room_path(room: &str) -> String {
    format!("/tools/chat/enhanced/{room}/")
}

// ---------------------------------------------------------------- settings

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsTemplate<'a> {
    page: Page<'a>,
    me: ProfileView,
}

impl SettingsTemplate<'_> {
    fn modes(&self) -> [(&'static str, &'static str); 4] {
        [
            ("work", "mode.work"),
            ("life", "mode.life"),
            ("training", "mode.training"),
            ("emo", "mode.emo"),
        ]
    }

    fn styles(&self) -> [(&'static str, &'static str); 3] {
        [
            ("auto", "style.auto"),
            ("light", "style.light"),
            ("dark", "style.dark"),
        ]
    }

    fn email(&self) -> &str {
        self.me.email.as_deref().unwrap_or_default()
    }
}

#[derive(Serialize)]
struct SettingsBoot<'a> {
    me: &'a ProfileView,
}

/// `GET /settings`.
pub async fn settings_page(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let me = profiles::view(&state, &user, Some(&user)).await?;
    let page = user_page(
        &state,
        &user,
        Some(script_boot(
            &state,
            &user,
            &session.csrf_token,
            SettingsBoot { me: &me },
        )),
    );
    let template = SettingsTemplate { page, me };
    Ok(html(&template, StatusCode::OK))
}

// ---------------------------------------------------------------- invites

#[derive(Template)]
#[template(path = "invite.html")]
struct InviteTemplate<'a> {
    page: Page<'a>,
    room_name: String,
    room_kind: &'static str,
    code: String,
    csrf: String,
}

/// `GET /invite/<code>`: what the link leads to, and a button to join.
pub async fn invite_page(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(code): Path<String>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let now = now_ms();
    let invite = state.store.get_invite(&code).await?.filter(|i| {
        !i.revoked
            && i.expires_at.is_none_or(|at| now < at)
            && i.max_uses.is_none_or(|max| i.uses < max)
    });
    let room = match &invite {
        Some(invite) => state.store.get_room(&invite.room_id).await?,
        None => None,
    };
    let Some(room) = room else {
        return Ok(message_page(
            &state,
            Some(&user),
            StatusCode::NOT_FOUND,
            "page.invite_invalid_title",
            state
                .i18n
                .get(user.language)
                .error("invite_invalid", "invalid invite"),
        ));
    };
    if state.store.get_member(&room.id, user.id).await?.is_some() {
        return Ok(Redirect::to(&room_path(room.id.as_str())).into_response());
    }
    let template = InviteTemplate {
        page: user_page(&state, &user, None),
        room_name: room.name,
        room_kind: if room.kind == RoomKind::Public {
            "public"
        } else {
            "group"
        },
        code,
        csrf: session.csrf_token.clone(),
    };
    Ok(html(&template, StatusCode::OK))
}

/// `POST /invite/<code>` (form): joins, then opens the room.
pub async fn invite_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    uri: Uri,
    Path(code): Path<String>,
    form: std::result::Result<Form<CsrfForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    let sent = form.map(|Form(f)| f.csrf).unwrap_or_default();
    if !csrf_matches(&sent, &session.csrf_token) {
        return Err(csrf_error());
    }
    match rooms::redeem_invite(&state, &user, &code).await {
        Ok(room) => Ok(Redirect::to(&room_path(room.id.as_str())).into_response()),
        Err(err) if !err.is_server_error() => Ok(message_page(
            &state,
            Some(&user),
            err.status(),
            "page.invite_invalid_title",
            state
                .i18n
                .get(user.language)
                .error(err.code(), &err.public_message()),
        )),
        Err(err) => Err(err),
    }
}

// ---------------------------------------------------------------- messages

#[derive(Template)]
#[template(path = "message.html")]
struct MessageTemplate<'a> {
    page: Page<'a>,
    title_key: &'static str,
    text: String,
    logged_in: bool,
}

/// A friendly page saying what went wrong, with a way back.
fn message_page(
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
