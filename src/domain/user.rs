//! Users and their profile fields.

use serde::{Deserialize, Serialize};

use super::Invalid;
use super::ids::UserId;

/// A user as stored (without credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub first_name: String,
    pub last_name: String,
    pub bio: String,
    pub email: String,
    pub membership: Membership,
    /// The instant the paid membership ends (exclusive), Unix ms; `None` = no end.
    pub membership_until: Option<i64>,
    pub theme_mode: ThemeMode,
    pub theme_style: ThemeStyle,
    pub language: Language,
    pub is_admin: bool,
    /// 0 = no uploaded avatar; bumped on every upload (cache busting).
    pub avatar_version: i64,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    /// IANA time zone name ("Asia/Shanghai"); empty = unknown.
    pub time_zone: String,
}

impl User {
    /// The name shown in the UI: the nickname, else the username.
    pub fn shown_name(&self) -> &str {
        if self.display_name.is_empty() {
            &self.username
        } else {
            &self.display_name
        }
    }

    /// The paid membership in force at `now` (free once expired).
    pub fn membership_at(&self, now_ms: i64) -> Membership {
        match self.membership_until {
            Some(until) if now_ms >= until => Membership::Free,
            _ => self.membership,
        }
    }
}

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $code:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $code)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable code stored in the database and used on the wire.
            pub fn code(self) -> &'static str {
                match self { $($name::$variant => $code),+ }
            }

            pub fn from_code(code: &str) -> Option<Self> {
                match code { $($code => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

code_enum!(
    /// Membership level.
    Membership { Free = "free", Basic = "basic", Premium = "premium", Vip = "vip" }
);
code_enum!(
    /// Theme mode: picks the accent palette and shows as a tag.
    ThemeMode { Work = "work", Life = "life", Training = "training", Emo = "emo" }
);
code_enum!(
    /// Light/dark preference.
    ThemeStyle { Auto = "auto", Light = "light", Dark = "dark" }
);
code_enum!(
    /// UI language.
    Language { ZhCn = "zh-CN", En = "en" }
);

impl Membership {
    /// The label the original system shows in `membership_type`.
    pub fn label_zh(self) -> &'static str {
        match self {
            Membership::Free => "免费用户",
            Membership::Basic => "基础会员",
            Membership::Premium => "高级会员",
            Membership::Vip => "VIP会员",
        }
    }
}

impl ThemeMode {
    pub fn label_zh(self) -> &'static str {
        match self {
            ThemeMode::Work => "极客模式",
            ThemeMode::Life => "生活模式",
            ThemeMode::Training => "狂暴模式",
            ThemeMode::Emo => "Emo模式",
        }
    }

    /// Also accepts the names the original UI used (geek, rage).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "geek" => Some(ThemeMode::Work),
            "rage" => Some(ThemeMode::Training),
            other => Self::from_code(other),
        }
    }
}

pub const USERNAME_MIN: usize = 3;
pub const USERNAME_MAX: usize = 32;
pub const PASSWORD_MIN: usize = 8;
pub const PASSWORD_MAX: usize = 1024;
pub const BIO_MAX: usize = 500;
pub const NAME_MAX: usize = 64;

/// 3–32 letters, digits, `_`, `-` or `.`. Uniqueness is case-insensitive (see [`username_key`]).
pub fn parse_username(raw: &str) -> Result<String, Invalid> {
    let len = raw.chars().count();
    let ok = (USERNAME_MIN..=USERNAME_MAX).contains(&len)
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(raw.to_string())
    } else {
        Err(Invalid::new(
            "invalid_username",
            "usernames are 3-32 characters: letters, digits, '_', '-' or '.'",
        ))
    }
}

/// The key that makes usernames unique regardless of case.
pub fn username_key(username: &str) -> String {
    username.to_ascii_lowercase()
}

/// The 10 000 most common passwords of 8 or more characters, lowercased, one
/// a line (vendor/common-passwords/README.md says where they come from).
const COMMON_PASSWORDS: &str = include_str!("../../vendor/common-passwords/passwords.txt");

/// The rules for a new password of `username`: 8–1024 characters, not only
/// whitespace, not one of the most common passwords, not the username
/// (both compared ignoring case and surrounding spaces).
pub fn check_password(raw: &str, username: &str) -> Result<(), Invalid> {
    let len = raw.chars().count();
    if len < PASSWORD_MIN {
        return Err(Invalid::new(
            "weak_password",
            "passwords need at least 8 characters",
        ));
    }
    if len > PASSWORD_MAX {
        return Err(Invalid::new(
            "invalid_password",
            "passwords are at most 1024 characters",
        ));
    }
    let core = raw.trim();
    if core.is_empty() {
        return Err(Invalid::new(
            "blank_password",
            "a password cannot be only spaces",
        ));
    }
    let lower = core.to_lowercase();
    if lower == username_key(username.trim()) {
        return Err(Invalid::new(
            "password_is_username",
            "the password cannot be the username",
        ));
    }
    // A linear scan of 10 000 short lines (tens of microseconds) beside the
    // Argon2 hash that follows (tens of milliseconds).
    if COMMON_PASSWORDS.lines().any(|common| common == lower) {
        return Err(Invalid::new(
            "common_password",
            "this password is one of the most common ones; choose another",
        ));
    }
    Ok(())
}

/// A plausible e-mail address (empty clears it). Full validation is the mail server's job.
pub fn parse_email(raw: &str) -> Result<String, Invalid> {
    let email = raw.trim();
    if email.is_empty() {
        return Ok(String::new());
    }
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.contains('@')
        });
    if valid {
        Ok(email.to_string())
    } else {
        Err(Invalid::new("invalid_email", "not a valid e-mail address"))
    }
}

/// The longest IANA time zone name accepted (the longest real one has 32).
pub const TIME_ZONE_MAX: usize = 64;

/// An IANA time zone name such as `Asia/Shanghai`, `America/Argentina/Buenos_Aires`
/// or `Etc/GMT-8`: ASCII letters, digits and `_ + -` in `/`-separated parts that
/// each start with a letter. Whether the zone exists is the browser's business
/// (it shows nothing for one it does not know). Empty = unknown.
pub fn parse_time_zone(raw: &str) -> Result<String, Invalid> {
    let zone = raw.trim();
    let part_ok = |part: &str| {
        part.starts_with(|c: char| c.is_ascii_alphabetic())
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
    };
    if zone.is_empty() || (zone.len() <= TIME_ZONE_MAX && zone.split('/').all(part_ok)) {
        Ok(zone.to_string())
    } else {
        Err(Invalid::new(
            "invalid_time_zone",
            format!(
                "time_zone is an IANA time zone name such as Asia/Shanghai (at most {TIME_ZONE_MAX} characters)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_at_their_bounds() {
        assert!(parse_username("abc").is_ok());
        assert!(parse_username("ab").is_err());
        assert!(parse_username(&"a".repeat(32)).is_ok());
        assert!(parse_username(&"a".repeat(33)).is_err());
        assert!(parse_username("a.b_c-d9").is_ok());
        assert!(parse_username("a b").is_err());
        assert!(parse_username("张三丰").is_err());
        assert!(parse_username("<script>").is_err());
        assert_eq!(username_key("Alice"), "alice");
    }

    #[test]
    fn passwords_need_eight_characters() {
        assert_eq!(
            check_password("1234567", "ann").unwrap_err().code,
            "weak_password"
        );
        assert!(check_password("correct-horse-9", "ann").is_ok());
        assert!(check_password("密码密码密码密码", "ann").is_ok());
        assert_eq!(
            check_password(&"x".repeat(1025), "ann").unwrap_err().code,
            "invalid_password"
        );
    }

    #[test]
    fn common_blank_and_username_passwords_are_refused() {
        for common in [
            "12345678",
            "password",
            "PassWord",
            " qwertyuiop ",
            "iloveyou",
            "1qaz2wsx",
        ] {
            assert_eq!(
                check_password(common, "ann").unwrap_err().code,
                "common_password",
                "{common:?}"
            );
        }
        // The list's last entry is in too (the whole file is read).
        let last = COMMON_PASSWORDS.lines().last().unwrap();
        assert_eq!(
            check_password(last, "ann").unwrap_err().code,
            "common_password"
        );
        assert_eq!(COMMON_PASSWORDS.lines().count(), 10_000);
        assert!(
            COMMON_PASSWORDS
                .lines()
                .all(|p| p.chars().count() >= 8 && p == p.to_lowercase())
        );
        for blank in [
            "        ",
            "\t\t\t\t\t\t\t\t",
            "\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}\u{3000}",
        ] {
            assert_eq!(
                check_password(blank, "ann").unwrap_err().code,
                "blank_password",
                "{blank:?}"
            );
        }
        assert_eq!(
            check_password("Alice.Lee", "alice.lee").unwrap_err().code,
            "password_is_username"
        );
        assert_eq!(
            check_password(" alice.lee ", "Alice.Lee").unwrap_err().code,
            "password_is_username"
        );
        assert!(check_password("alice.lee2", "alice.lee").is_ok());
    }

    #[test]
    fn emails() {
        assert_eq!(parse_email("").unwrap(), "");
        assert_eq!(parse_email(" a@b.cn ").unwrap(), "a@b.cn");
        assert!(parse_email("nope").is_err());
        assert!(parse_email("a@b").is_err());
        assert!(parse_email("a b@c.d").is_err());
    }

    #[test]
    fn time_zones() {
        for ok in [
            "Asia/Shanghai",
            "UTC",
            "Etc/GMT-8",
            "America/Argentina/Buenos_Aires",
            "America/Port-au-Prince",
        ] {
            assert_eq!(parse_time_zone(ok).unwrap(), ok);
        }
        assert_eq!(parse_time_zone(" ").unwrap(), "");
        for bad in [
            "Asia//Shanghai",
            "/UTC",
            "UTC/",
            "../etc/passwd",
            "Asia/Shang hai",
            "<b>",
            "8/Asia",
            "亚洲/上海",
        ] {
            assert_eq!(
                parse_time_zone(bad).unwrap_err().code,
                "invalid_time_zone",
                "{bad}"
            );
        }
        let long = format!("A{}", "/Abcdefg".repeat(8));
        assert!(long.len() > TIME_ZONE_MAX);
        assert!(parse_time_zone(&long).is_err());
        assert!(parse_time_zone(&long[..TIME_ZONE_MAX]).is_ok());
    }

    #[test]
    fn codes_round_trip() {
        for m in Membership::ALL {
            assert_eq!(Membership::from_code(m.code()), Some(*m));
        }
        assert_eq!(ThemeMode::parse("geek"), Some(ThemeMode::Work));
        assert_eq!(ThemeMode::parse("rage"), Some(ThemeMode::Training));
        assert_eq!(Language::from_code("zh-CN"), Some(Language::ZhCn));
    }
}
