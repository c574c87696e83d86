//! `/u/<username>`: a user's profile card, and starting a direct message from it.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;

use crate::error::{AppError, Result};
use crate::http::state::AppState;
use crate::services::{profiles, rooms};
use crate::views::ProfileView;

use super::notice::message_page;
use super::{Page, Submitted, form_csrf, html, room_path, session_of, to_login, user_page};

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

    /// "last seen 2026-12-04": shown instead of "online" (never both).
    fn last_seen(&self, rfc3339: &str) -> String {
        self.page
            .t_with("people.last_seen", "when", &self.date(rfc3339))
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
    form: Submitted,
) -> Result<Response> {
    let Some((session, user)) = session_of(&state, &jar).await? else {
        return Ok(to_login(&uri));
    };
    form_csrf(form, &session)?;
    let other = state
        .store
        .get_user_by_username(&username)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    match rooms::direct(&state, &user, other.id).await {
        Ok((room, _)) => Ok(Redirect::to(&room_path(room.id.as_str())).into_response()),
        // A block or the room quota: a page saying so, not the API's JSON.
        Err(err) if !err.is_server_error() => Ok(super::notice::message_page(
            &state,
            Some(&user),
            err.status(),
            "page.direct_refused_title",
            state
                .i18n
                .get(user.language)
                .error(err.code(), &err.public_message()),
        )),
        Err(err) => Err(err),
    }
}
