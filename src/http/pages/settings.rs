//! `/settings`: the forms the settings script sends to the API.

use askama::Template;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum_extra::extract::cookie::CookieJar;
use serde::Serialize;

use crate::error::Result;
use crate::http::state::AppState;
use crate::services::profiles;
use crate::views::ProfileView;

use super::{Page, html, script_boot, session_of, to_login, user_page};

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsTemplate<'a> {
    page: Page<'a>,
    me: ProfileView,
    /// An uploaded avatar shows (else the generated initials: nothing to remove).
    has_avatar: bool,
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
    let template = SettingsTemplate {
        page,
        me,
        has_avatar: user.avatar_version > 0,
    };
    Ok(html(&template, StatusCode::OK))
}
