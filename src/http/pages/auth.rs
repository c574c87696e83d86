//! Login, registration and logout pages; they work without JavaScript.

use askama::Template;
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde::Deserialize;

use crate::domain::user::Language;
use crate::error::{AppError, Result};
use crate::http::api::auth::{clear_session_cookies, session_cookies};
use crate::http::extract::Client;
use crate::http::identity::csrf_failed;
use crate::http::state::AppState;
use crate::services::accounts::{self, Registration};
use crate::services::profiles;

use super::notice::message_page;
use super::{
    LANG_COOKIE, Page, Submitted, anonymous_csrf, csrf_matches, default_theme, form_csrf, html,
    page, safe_next, session_of, user_page, visitor_lang,
};

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
    let Visitor {
        jar,
        lang,
        csrf,
        next,
    } = match Visitor::arriving(&state, jar, &headers, &query).await? {
        Ok(visitor) => visitor,
        Err(logged_in) => return Ok(logged_in),
    };
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

/// Someone opening the login or registration page.
struct Visitor {
    jar: CookieJar,
    lang: Language,
    /// The form's CSRF token (see `anonymous_csrf`).
    csrf: String,
    /// Where to go once logged in (a local path).
    next: String,
}

impl Visitor {
    /// The visitor's language (remembered if `?lang=` picked it) and CSRF
    /// token; `Err`: they are logged in already, so they go on to `next`.
    async fn arriving(
        state: &AppState,
        jar: CookieJar,
        headers: &HeaderMap,
        query: &AuthQuery,
    ) -> Result<std::result::Result<Self, Response>> {
        let next = safe_next(query.next.as_deref()).to_owned();
        if session_of(state, &jar).await?.is_some() {
            return Ok(Err(Redirect::to(&next).into_response()));
        }
        let lang = visitor_lang(query.lang.as_deref(), &jar, headers);
        let (jar, csrf) = anonymous_csrf(jar, state.config.secure_cookies());
        let jar = remember_lang(jar, query.lang.as_deref(), state);
        Ok(Ok(Self {
            jar,
            lang,
            csrf,
            next,
        }))
    }
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
        Some(form) if !csrf_matches(&form.csrf, &csrf) => Err(csrf_failed()),
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
    let Visitor {
        jar,
        lang,
        csrf,
        next,
    } = match Visitor::arriving(&state, jar, &headers, &query).await? {
        Ok(visitor) => visitor,
        Err(logged_in) => return Ok(logged_in),
    };
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
        Some(form) if !csrf_matches(&form.csrf, &csrf) => Err(csrf_failed()),
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

/// `POST /logout` (form): ends the session, back to the login page.
pub async fn logout_submit(
    State(state): State<AppState>,
    jar: CookieJar,
    form: Submitted,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok((clear_session_cookies(jar), Redirect::to("/login")).into_response());
    };
    if let Err(refused) = form_csrf(form, &session) {
        return Ok(message_page(
            &state,
            Some(&user),
            refused.status(),
            "page.csrf_title",
            state
                .i18n
                .get(user.language)
                .error(refused.code(), &refused.public_message()),
        ));
    }
    accounts::logout(&state, &session.token_hash).await?;
    Ok((clear_session_cookies(jar), Redirect::to("/login")).into_response())
}
