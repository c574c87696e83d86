//! Automatic user tags, computed on read. The strings are exactly those of the
//! original system because its clients match on them.

use serde::Serialize;

use super::time::DAY_MS;
use super::user::{Membership, ThemeMode, User};

/// Joined more than this many days ago: an old user.
const OLD_AFTER_DAYS: i64 = 365;
/// Joined at least this many days ago: an active user.
const ACTIVE_AFTER_DAYS: i64 = 31;
/// Sending on this many of the last 7 days also makes an active user.
const ACTIVE_DAYS_NEEDED: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tag {
    /// `membership`, `theme_mode`, `admin` or `activity`.
    pub kind: &'static str,
    /// e.g. `vip`, `work`, `admin`, `old`, `active`, `new`.
    pub code: &'static str,
    /// The Chinese label of the original system, without the emoji.
    pub label: &'static str,
    pub emoji: &'static str,
}

impl Tag {
    /// The tag string clients of the original system expect, e.g. `💎 VIP会员`.
    pub fn text(&self) -> String {
        format!("{} {}", self.emoji, self.label)
    }
}

/// The tags of `user` at `now_ms`, in order: membership, theme mode, admin, age/activity.
/// `active_days` is the number of distinct UTC days among the last 7 (today included)
/// on which the user sent a message.
pub fn compute(user: &User, now_ms: i64, active_days: u32) -> Vec<Tag> {
    let mut tags = Vec::with_capacity(4);
    if let Some(tag) = membership_tag(user.membership_at(now_ms)) {
        tags.push(tag);
    }
    tags.push(theme_tag(user.theme_mode));
    if user.is_admin {
        tags.push(Tag {
            kind: "admin",
            code: "admin",
            label: "管理员",
            emoji: "👑",
        });
    }
    tags.push(activity_tag(user.created_at, now_ms, active_days));
    tags
}

fn membership_tag(membership: Membership) -> Option<Tag> {
    let (code, label) = match membership {
        Membership::Free => return None,
        Membership::Basic => ("basic", "基础会员"),
        Membership::Premium => ("premium", "高级会员"),
        Membership::Vip => ("vip", "VIP会员"),
    };
    Some(Tag {
        kind: "membership",
        code,
        label,
        emoji: "💎",
    })
}

fn theme_tag(mode: ThemeMode) -> Tag {
    let emoji = match mode {
        ThemeMode::Work => "💻",
        ThemeMode::Life => "🌱",
        ThemeMode::Training => "💪",
        ThemeMode::Emo => "🎭",
    };
    Tag {
        kind: "theme_mode",
        code: mode.code(),
        label: mode.label_zh(),
        emoji,
    }
}

fn activity_tag(joined_ms: i64, now_ms: i64, active_days: u32) -> Tag {
    let days = (now_ms - joined_ms).div_euclid(DAY_MS);
    if days > OLD_AFTER_DAYS {
        Tag {
            kind: "activity",
            code: "old",
            label: "老用户",
            emoji: "🎂",
        }
    } else if days >= ACTIVE_AFTER_DAYS || active_days >= ACTIVE_DAYS_NEEDED {
        Tag {
            kind: "activity",
            code: "active",
            label: "活跃用户",
            emoji: "🌟",
        }
    } else {
        Tag {
            kind: "activity",
            code: "new",
            label: "新用户",
            emoji: "🆕",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserId;
    use crate::domain::user::{Language, ThemeStyle};

    const NOW: i64 = 1_800_000_000_000;

    fn user() -> User {
        User {
            id: UserId::new(),
            username: "ann".into(),
            display_name: String::new(),
            first_name: String::new(),
            last_name: String::new(),
            bio: String::new(),
            email: String::new(),
            membership: Membership::Free,
            membership_until: None,
            theme_mode: ThemeMode::Work,
            theme_style: ThemeStyle::Auto,
            language: Language::ZhCn,
            is_admin: false,
            avatar_version: 0,
            created_at: NOW,
            last_seen_at: None,
            time_zone: String::new(),
        }
    }

    fn texts(user: &User, active_days: u32) -> Vec<String> {
        compute(user, NOW, active_days)
            .iter()
            .map(Tag::text)
            .collect()
    }

    fn joined_days_ago(days: i64) -> User {
        User {
            created_at: NOW - days * DAY_MS,
            ..user()
        }
    }

    #[test]
    fn new_user_in_work_mode() {
        assert_eq!(texts(&user(), 0), ["💻 极客模式", "🆕 新用户"]);
    }

    #[test]
    fn age_boundaries() {
        assert_eq!(texts(&joined_days_ago(30), 0)[1], "🆕 新用户");
        assert_eq!(texts(&joined_days_ago(31), 0)[1], "🌟 活跃用户");
        assert_eq!(texts(&joined_days_ago(365), 0)[1], "🌟 活跃用户");
        assert_eq!(texts(&joined_days_ago(366), 0)[1], "🎂 老用户");
        // A day is counted only once complete: 30 days and 23:59 is still day 30.
        let almost = User {
            created_at: NOW - 31 * DAY_MS + 1,
            ..user()
        };
        assert_eq!(texts(&almost, 0)[1], "🆕 新用户");
    }

    #[test]
    fn activity_boundaries() {
        assert_eq!(texts(&user(), 2)[1], "🆕 新用户");
        assert_eq!(texts(&user(), 3)[1], "🌟 活跃用户");
        // Old users stay old however active they are.
        assert_eq!(texts(&joined_days_ago(400), 7)[1], "🎂 老用户");
    }

    #[test]
    fn membership_and_expiry_instant() {
        let vip = User {
            membership: Membership::Vip,
            membership_until: Some(NOW + 1),
            ..user()
        };
        assert_eq!(texts(&vip, 0)[0], "💎 VIP会员");
        let at_expiry = User {
            membership_until: Some(NOW),
            ..vip.clone()
        };
        assert_eq!(texts(&at_expiry, 0)[0], "💻 极客模式");
        let expired = User {
            membership_until: Some(NOW - 1),
            ..vip.clone()
        };
        assert_eq!(texts(&expired, 0)[0], "💻 极客模式");
        let forever = User {
            membership_until: None,
            ..vip
        };
        assert_eq!(texts(&forever, 0)[0], "💎 VIP会员");
        let basic = User {
            membership: Membership::Basic,
            ..user()
        };
        assert_eq!(texts(&basic, 0)[0], "💎 基础会员");
        let premium = User {
            membership: Membership::Premium,
            ..user()
        };
        assert_eq!(texts(&premium, 0)[0], "💎 高级会员");
    }

    #[test]
    fn theme_modes() {
        for (mode, text) in [
            (ThemeMode::Work, "💻 极客模式"),
            (ThemeMode::Life, "🌱 生活模式"),
            (ThemeMode::Training, "💪 狂暴模式"),
            (ThemeMode::Emo, "🎭 Emo模式"),
        ] {
            assert_eq!(
                texts(
                    &User {
                        theme_mode: mode,
                        ..user()
                    },
                    0
                )[0],
                text
            );
        }
    }

    #[test]
    fn full_order_for_an_admin_vip() {
        let u = User {
            membership: Membership::Premium,
            theme_mode: ThemeMode::Emo,
            is_admin: true,
            ..joined_days_ago(500)
        };
        assert_eq!(
            texts(&u, 0),
            ["💎 高级会员", "🎭 Emo模式", "👑 管理员", "🎂 老用户"]
        );
        let details = compute(&u, NOW, 0);
        assert_eq!(details[0].kind, "membership");
        assert_eq!(details[0].code, "premium");
        assert_eq!(details[2].code, "admin");
        assert_eq!(details[3].code, "old");
    }
}
