//! Profiles: viewing (with computed tags and presence), editing and avatars.

use serde::Deserialize;

use crate::avatar;
use crate::domain::ids::UserId;
use crate::domain::text;
use crate::domain::time::{day_of, now_ms};
use crate::domain::user::{self, Language, ThemeMode, ThemeStyle, User};
use crate::error::{AppError, Result};
use crate::services::Services;
use crate::store::ProfileChanges;
use crate::views::ProfileView;

/// Profiles of `users` as `viewer` sees them: one query for all their activity.
pub async fn views(
    ctx: &Services,
    users: &[User],
    viewer: Option<&User>,
) -> Result<Vec<ProfileView>> {
    let now = now_ms();
    let ids: Vec<UserId> = users.iter().map(|u| u.id).collect();
    // "The last 7 days" are today and the six before it (UTC).
    let active = ctx.store.count_active_days(&ids, day_of(now) - 6).await?;
    let online = ctx.bus.online(&ids).await;
    Ok(users
        .iter()
        .map(|u| {
            let show_email = viewer.is_some_and(|v| v.id == u.id || v.is_admin);
            let days = active.get(&u.id).copied().unwrap_or(0);
            ProfileView::new(u, now, days, online.contains(&u.id), show_email)
        })
        .collect())
}

pub async fn view(ctx: &Services, user: &User, viewer: Option<&User>) -> Result<ProfileView> {
    let mut views = views(ctx, std::slice::from_ref(user), viewer).await?;
    views
        .pop()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("profile view missing")))
}

pub async fn get(ctx: &Services, id: UserId, viewer: &User) -> Result<ProfileView> {
    let user = ctx
        .store
        .get_user(id)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    view(ctx, &user, Some(viewer)).await
}

/// `PATCH /tools/api/user/me/profile/`: any subset of these fields.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilePatch {
    pub display_name: Option<String>,
    pub nickname: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub bio: Option<String>,
    pub email: Option<String>,
    pub theme_mode: Option<String>,
    /// `auto`, `light` or `dark`.
    pub theme: Option<String>,
    pub theme_style: Option<String>,
    pub language: Option<String>,
    /// IANA zone name; `""` forgets it.
    pub time_zone: Option<String>,
}

impl ProfilePatch {
    fn validate(self) -> Result<ProfileChanges> {
        let one_line = |v: Option<String>, field| {
            v.map(|v| text::single_line(&v, field, user::NAME_MAX))
                .transpose()
        };
        let display_name = one_line(self.display_name.or(self.nickname), "display_name")?;
        let theme_mode = self
            .theme_mode
            .map(|m| {
                ThemeMode::parse(&m).ok_or_else(|| {
                    AppError::bad_request(
                        "invalid_theme_mode",
                        "theme_mode is work, life, training or emo",
                    )
                })
            })
            .transpose()?;
        let theme_style = self
            .theme_style
            .or(self.theme)
            .map(|s| {
                ThemeStyle::from_code(&s).ok_or_else(|| {
                    AppError::bad_request("invalid_theme", "theme is auto, light or dark")
                })
            })
            .transpose()?;
        let language = self
            .language
            .map(|l| {
                Language::from_code(&l).ok_or_else(|| {
                    AppError::bad_request("invalid_language", "language is zh-CN or en")
                })
            })
            .transpose()?;
        Ok(ProfileChanges {
            display_name,
            first_name: one_line(self.first_name, "first_name")?,
            last_name: one_line(self.last_name, "last_name")?,
            bio: self
                .bio
                .map(|b| text::multi_line(&b, "bio", user::BIO_MAX))
                .transpose()?,
            email: self.email.map(|e| user::parse_email(&e)).transpose()?,
            theme_mode,
            theme_style,
            language,
            time_zone: self
                .time_zone
                .map(|z| user::parse_time_zone(&z))
                .transpose()?,
        })
    }
}

pub async fn update(ctx: &Services, user: &User, patch: ProfilePatch) -> Result<ProfileView> {
    let changes = patch.validate()?;
    let updated = ctx.store.update_profile(user.id, &changes).await?;
    // History shows senders' current names.
    ctx.tail.sender_changed(user.id);
    view(ctx, &updated, Some(&updated)).await
}

/// Stores a new avatar from uploaded bytes. Every attempt counts towards the
/// user's upload rate (a refused image cost work too); decoding waits for the
/// image pool.
pub async fn set_avatar(ctx: &Services, user: &User, bytes: Vec<u8>) -> Result<ProfileView> {
    ctx.limits
        .check_image_upload(user.id)
        .await
        .map_err(|retry_after| AppError::RateLimited {
            code: "rate_limited",
            message: format!(
                "too many image uploads; at most {} a minute",
                ctx.config.image_uploads_per_minute
            ),
            retry_after,
        })?;
    if bytes.len() > avatar::MAX_UPLOAD_BYTES {
        return Err(AppError::bad_request(
            "image_too_large",
            "the avatar is over 5 MB; upload a smaller image",
        ));
    }
    let png = ctx.images.run(move || avatar::normalize(&bytes)).await??;
    let updated = ctx.store.put_avatar(user.id, &png, now_ms()).await?;
    ctx.tail.sender_changed(user.id);
    view(ctx, &updated, Some(&updated)).await
}

/// Drops the user's uploaded avatar: the generated initials show again.
/// Removing when there is none is not an error (the answer is the same).
pub async fn remove_avatar(ctx: &Services, user: &User) -> Result<ProfileView> {
    let updated = ctx.store.delete_avatar(user.id).await?;
    ctx.tail.sender_changed(user.id);
    view(ctx, &updated, Some(&updated)).await
}

/// Users whose username or display name contains `query`. Control characters
/// are dropped first (a NUL would end the pattern early in SQLite and list
/// everyone; PostgreSQL refuses it), and a query with nothing visible left
/// finds nobody.
pub async fn search(ctx: &Services, query: &str, viewer: &User) -> Result<Vec<ProfileView>> {
    let cleaned: String = query.chars().filter(|c| !c.is_control()).collect();
    let query = cleaned.trim();
    if !text::has_visible(query) {
        return Ok(Vec::new());
    }
    let users = ctx.store.search_users(query, 20).await?;
    views(ctx, &users, Some(viewer)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patch_validation() {
        let ok = ProfilePatch {
            nickname: Some(" Ann ".into()),
            theme_mode: Some("geek".into()),
            theme: Some("dark".into()),
            language: Some("en".into()),
            bio: Some("<b>hi</b>".into()),
            ..Default::default()
        }
        .validate()
        .unwrap();
        assert_eq!(ok.display_name.as_deref(), Some("Ann"));
        assert_eq!(ok.theme_mode, Some(ThemeMode::Work));
        assert_eq!(ok.theme_style, Some(ThemeStyle::Dark));
        assert_eq!(ok.bio.as_deref(), Some("<b>hi</b>"));

        let long_bio = ProfilePatch {
            bio: Some("x".repeat(501)),
            ..Default::default()
        };
        assert!(long_bio.validate().is_err());
        let exact_bio = ProfilePatch {
            bio: Some("x".repeat(500)),
            ..Default::default()
        };
        assert!(exact_bio.validate().is_ok());
        let bad_mode = ProfilePatch {
            theme_mode: Some("party".into()),
            ..Default::default()
        };
        assert_eq!(
            bad_mode.validate().unwrap_err().code(),
            "invalid_theme_mode"
        );
        let bad_lang = ProfilePatch {
            language: Some("fr".into()),
            ..Default::default()
        };
        assert_eq!(bad_lang.validate().unwrap_err().code(), "invalid_language");
        let bad_email = ProfilePatch {
            email: Some("nope".into()),
            ..Default::default()
        };
        assert_eq!(bad_email.validate().unwrap_err().code(), "invalid_email");
    }
}
