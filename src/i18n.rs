//! UI strings: one catalogue per language (`i18n/<lang>.json`), used by the
//! server-rendered pages and handed whole to the browser script, so both sides
//! translate from the same file.

use std::collections::HashMap;

use anyhow::Context;
use serde_json::value::RawValue;

use crate::domain::user::Language;

const ZH_CN: &str = include_str!("../i18n/zh-CN.json");
const EN: &str = include_str!("../i18n/en.json");

/// One language's strings.
pub struct Catalog {
    pub lang: Language,
    strings: HashMap<String, String>,
    /// The file as it is, for the browser.
    json: Box<RawValue>,
}

impl Catalog {
    fn parse(lang: Language, json: &str) -> anyhow::Result<Self> {
        let strings: HashMap<String, String> = serde_json::from_str(json).with_context(|| {
            format!(
                "the {} catalogue is not a flat JSON object of strings",
                lang.code()
            )
        })?;
        // Sent compactly: the file keeps one string per line for people.
        let json = RawValue::from_string(serde_json::to_string(&strings)?)?;
        Ok(Self {
            lang,
            strings,
            json,
        })
    }

    /// The string for `key`; a missing key shows as itself (the catalogue test
    /// makes sure none is missing).
    pub fn t<'a>(&'a self, key: &'a str) -> &'a str {
        self.strings.get(key).map_or(key, String::as_str)
    }

    /// `t(key)` with `{name}` placeholders filled in.
    pub fn t_with(&self, key: &str, vars: &[(&str, &str)]) -> String {
        let mut text = self.t(key).to_owned();
        for (name, value) in vars {
            text = text.replace(&format!("{{{name}}}"), value);
        }
        text
    }

    /// The translated message for an API error code, else `fallback`.
    pub fn error<'a>(&'a self, code: &str, fallback: &'a str) -> &'a str {
        self.strings
            .get(&format!("error.{code}"))
            .map_or(fallback, String::as_str)
    }

    pub fn raw_json(&self) -> &RawValue {
        &self.json
    }

    #[cfg(test)]
    fn keys(&self) -> impl Iterator<Item = &String> {
        self.strings.keys()
    }
}

/// Both catalogues, loaded once at startup.
pub struct Catalogs {
    zh_cn: Catalog,
    en: Catalog,
}

impl Catalogs {
    pub fn load() -> anyhow::Result<Self> {
        Ok(Self {
            zh_cn: Catalog::parse(Language::ZhCn, ZH_CN)?,
            en: Catalog::parse(Language::En, EN)?,
        })
    }

    pub fn get(&self, lang: Language) -> &Catalog {
        match lang {
            Language::ZhCn => &self.zh_cn,
            Language::En => &self.en,
        }
    }
}

/// The language an `Accept-Language` header prefers among ours; Chinese when
/// nothing matches (the original system's language).
pub fn negotiate(accept_language: Option<&str>) -> Language {
    let Some(header) = accept_language else {
        return Language::ZhCn;
    };
    let mut best: Option<(f32, Language)> = None;
    for part in header.split(',') {
        let mut pieces = part.trim().split(';');
        let tag = pieces
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let quality = pieces
            .find_map(|p| p.trim().strip_prefix("q="))
            .and_then(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        let lang = if tag == "zh" || tag.starts_with("zh-") {
            Language::ZhCn
        } else if tag == "en" || tag.starts_with("en-") {
            Language::En
        } else {
            continue;
        };
        if quality > 0.0 && best.is_none_or(|(q, _)| quality > q) {
            best = Some((quality, lang));
        }
    }
    best.map_or(Language::ZhCn, |(_, lang)| lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_catalogues_have_the_same_keys_and_no_empty_strings() {
        let catalogs = Catalogs::load().expect("catalogues parse");
        let zh: std::collections::BTreeSet<_> = catalogs.zh_cn.keys().collect();
        let en: std::collections::BTreeSet<_> = catalogs.en.keys().collect();
        let only_zh: Vec<_> = zh.difference(&en).collect();
        let only_en: Vec<_> = en.difference(&zh).collect();
        assert!(only_zh.is_empty(), "missing in en.json: {only_zh:?}");
        assert!(only_en.is_empty(), "missing in zh-CN.json: {only_en:?}");
        for catalog in [&catalogs.zh_cn, &catalogs.en] {
            for key in catalog.keys() {
                assert!(!catalog.t(key).trim().is_empty(), "{key} is empty");
            }
        }
    }

    /// Every key the templates and scripts use exists: `t('...')`/`tn('...')`
    /// in the scripts, `t("...")`/`t_with("...")` in the templates.
    #[test]
    fn every_key_used_in_templates_and_scripts_exists() {
        let catalogs = Catalogs::load().expect("catalogues parse");
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut missing = Vec::new();
        for dir in ["templates", "assets/js"] {
            for entry in std::fs::read_dir(root.join(dir)).expect("directory exists") {
                let path = entry.expect("readable entry").path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                for key in used_keys(&text) {
                    if !catalogs.en.strings.contains_key(key) {
                        missing.push(format!("{}: {key}", path.display()));
                    }
                }
            }
        }
        assert!(
            missing.is_empty(),
            "keys missing from the catalogues: {missing:#?}"
        );
    }

    /// Literal keys in `t("key"` / `t('key'` / `tn('key'` / `t_with("key"` calls.
    fn used_keys(text: &str) -> Vec<&str> {
        let mut keys = Vec::new();
        for opener in ["t(\"", "t('", "tn('", "t_with(\""] {
            let mut rest = text;
            while let Some(at) = rest.find(opener) {
                let before = rest[..at].chars().next_back();
                rest = &rest[at + opener.len()..];
                // `t(` must be a call of its own, not the end of another name.
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue;
                }
                let close = if opener.ends_with('\'') { '\'' } else { '"' };
                if let Some(end) = rest.find(close) {
                    let key = &rest[..end];
                    if !key.is_empty()
                        && key
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
                    {
                        keys.push(key);
                    }
                }
            }
        }
        keys
    }

    #[test]
    fn accept_language_picks_our_best_match() {
        assert_eq!(negotiate(None), Language::ZhCn);
        assert_eq!(negotiate(Some("en-US,en;q=0.9")), Language::En);
        assert_eq!(negotiate(Some("zh-CN,zh;q=0.9,en;q=0.8")), Language::ZhCn);
        assert_eq!(negotiate(Some("fr-FR,en;q=0.5,zh;q=0.4")), Language::En);
        assert_eq!(negotiate(Some("de, zh-TW;q=0.3")), Language::ZhCn);
        assert_eq!(negotiate(Some("fr")), Language::ZhCn);
        assert_eq!(negotiate(Some("en;q=0, zh;q=0.1")), Language::ZhCn);
    }

    #[test]
    fn placeholders_are_filled() {
        let catalogs = Catalogs::load().expect("catalogues parse");
        let text = catalogs
            .get(Language::En)
            .t_with("typing.one", &[("name", "Alice")]);
        assert_eq!(text, "Alice is typing…");
    }
}
