//! Free-text cleaning shared by messages and profile fields. Text is stored and
//! returned as plain text; it is never interpreted as HTML anywhere.

use super::Invalid;

/// Removes control characters other than newline and tab (so `\r\n` becomes `\n`).
pub fn strip_controls(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

/// Whether `c` shows nothing by itself: whitespace, controls, and the format
/// characters that only steer others (zero-width spaces and joiners, bidi
/// controls, word joiners and invisible operators, the BOM, the soft hyphen,
/// the Hangul and Mongolian fillers, variation selectors, tag characters, the
/// blank Braille pattern). Joiners and selectors stay inside text: an emoji
/// ZWJ sequence is visible through its emoji.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{034F}'
                | '\u{061C}'
                | '\u{115F}'
                | '\u{1160}'
                | '\u{17B4}'
                | '\u{17B5}'
                | '\u{180B}'..='\u{180F}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{206F}'
                | '\u{2800}'
                | '\u{3164}'
                | '\u{FE00}'..='\u{FE0F}'
                | '\u{FEFF}'
                | '\u{FFA0}'
                | '\u{FFF0}'..='\u{FFFB}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0000}'..='\u{E007F}'
                | '\u{E0100}'..='\u{E01EF}'
        )
}

/// At least one character that shows.
pub fn has_visible(text: &str) -> bool {
    text.chars().any(|c| !is_invisible(c))
}

/// Message content: controls removed, trimmed, 1..=`max_chars` characters, at
/// least one of them visible.
/// Whether the text shows nothing (empty, whitespace, invisible characters).
pub fn is_blank(text: &str) -> bool {
    !has_visible(text.trim())
}

pub fn message_content(raw: &str, max_chars: usize) -> Result<String, Invalid> {
    let cleaned = strip_controls(raw);
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new("content_empty", "the message is empty"));
    }
    if !has_visible(trimmed) {
        return Err(Invalid::new(
            "content_empty",
            "the message has no visible characters",
        ));
    }
    let chars = trimmed.chars().count();
    if chars > max_chars {
        return Err(Invalid::new(
            "content_too_long",
            format!("the message has {chars} characters; the limit is {max_chars}"),
        ));
    }
    Ok(if trimmed.len() == cleaned.len() {
        cleaned
    } else {
        trimmed.to_string()
    })
}

/// A single-line field (names): controls and newlines removed, trimmed, at
/// most `max_chars`; empty, or with at least one visible character.
pub fn single_line(raw: &str, field: &'static str, max_chars: usize) -> Result<String, Invalid> {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim();
    if trimmed.chars().count() > max_chars {
        return Err(Invalid::new(
            "invalid_field",
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    if !trimmed.is_empty() && !has_visible(trimmed) {
        return Err(Invalid::new(
            "invalid_field",
            format!("{field} has no visible characters"),
        ));
    }
    Ok(trimmed.to_string())
}

/// A multi-line field (bio, room description): like message content but may be empty.
pub fn multi_line(raw: &str, field: &'static str, max_chars: usize) -> Result<String, Invalid> {
    let cleaned = strip_controls(raw);
    let trimmed = cleaned.trim();
    if trimmed.chars().count() > max_chars {
        return Err(Invalid::new(
            "invalid_field",
            format!("{field} is longer than {max_chars} characters"),
        ));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn content_is_trimmed_and_cleaned() {
        assert_eq!(
            message_content("  hi \r\n there\u{7}  ", 10).unwrap(),
            "hi \n there"
        );
        assert_eq!(message_content("a\tb", 10).unwrap(), "a\tb");
        assert_eq!(message_content("<b>x</b>", 10).unwrap(), "<b>x</b>");
    }

    #[test]
    fn content_length_bounds() {
        assert_eq!(
            message_content(" \n\t ", 5).unwrap_err().code,
            "content_empty"
        );
        assert_eq!(
            message_content("\u{0}\u{1}", 5).unwrap_err().code,
            "content_empty"
        );
        assert!(message_content("ééééé", 5).is_ok());
        assert_eq!(
            message_content("éééééé", 5).unwrap_err().code,
            "content_too_long"
        );
        // Surrounding whitespace does not count towards the limit.
        assert!(message_content("   12345   ", 5).is_ok());
    }

    #[test]
    fn single_line_drops_newlines() {
        assert_eq!(single_line(" Ann\nLee ", "name", 10).unwrap(), "AnnLee");
        assert!(single_line("abcdefghijk", "name", 10).is_err());
    }

    /// The invisible characters of finding "smaller ones" (issue 14), one by one.
    const INVISIBLE: &[char] = &[
        '\u{200B}',
        '\u{200C}',
        '\u{200D}',
        '\u{200E}',
        '\u{200F}',
        '\u{202A}',
        '\u{202B}',
        '\u{202C}',
        '\u{202D}',
        '\u{202E}',
        '\u{2060}',
        '\u{2061}',
        '\u{2062}',
        '\u{2063}',
        '\u{2064}',
        '\u{2066}',
        '\u{2067}',
        '\u{2068}',
        '\u{2069}',
        '\u{FEFF}',
        '\u{00AD}',
        '\u{034F}',
        '\u{061C}',
        '\u{115F}',
        '\u{1160}',
        '\u{3164}',
        '\u{FFA0}',
        '\u{180E}',
        '\u{FE00}',
        '\u{FE0F}',
        '\u{E0001}',
        '\u{E0020}',
        '\u{E007F}',
        '\u{E0100}',
        '\u{2800}',
        '\u{3000}',
        '\u{00A0}',
    ];

    #[test]
    fn text_of_only_invisible_characters_is_refused() {
        for &c in INVISIBLE {
            let only: String = std::iter::repeat_n(c, 3).collect();
            assert!(!has_visible(&only), "U+{:04X}", c as u32);
            assert_eq!(
                message_content(&only, 50).unwrap_err().code,
                "content_empty",
                "U+{:04X}",
                c as u32
            );
            if c.is_whitespace() {
                // Trimmed away: an empty field.
                assert_eq!(single_line(&only, "display_name", 64).unwrap(), "");
            } else {
                let err = single_line(&only, "display_name", 64).unwrap_err();
                assert_eq!(err.code, "invalid_field");
                assert!(err.message.contains("visible"));
            }
            // With a visible character they are kept as they are.
            let with = format!("a{only}b");
            assert_eq!(message_content(&with, 50).unwrap(), with);
        }
        let mixed = "\u{200B}\u{202E}\u{2060}\u{FEFF}\u{3164}\u{E0041}\u{FE0F}";
        assert!(message_content(mixed, 50).is_err());
        // Emoji, including ZWJ sequences and presentation selectors, are visible.
        for fine in [
            "👨\u{200D}👩\u{200D}👧\u{200D}👦",
            "❤\u{FE0F}",
            "🏳\u{FE0F}\u{200D}🌈",
            "你好",
            "é",
            "\u{0301}",
        ] {
            assert_eq!(message_content(fine, 50).unwrap(), fine);
            assert_eq!(single_line(fine, "name", 64).unwrap(), fine);
        }
        // An empty single-line field is still allowed (it clears the field).
        assert_eq!(single_line("  ", "display_name", 64).unwrap(), "");
    }

    proptest! {
        #[test]
        fn accepted_text_always_has_a_visible_character(
            raw in proptest::collection::vec(
                prop_oneof![
                    proptest::sample::select(INVISIBLE.to_vec()),
                    any::<char>(),
                ],
                0..20,
            ).prop_map(|cs| cs.into_iter().collect::<String>()),
        ) {
            match message_content(&raw, 100) {
                Ok(text) => prop_assert!(has_visible(&text)),
                Err(err) => prop_assert!(!has_visible(&strip_controls(&raw)) || err.code != "content_empty"),
            }
            if let Ok(name) = single_line(&raw, "name", 100) {
                prop_assert!(name.is_empty() || has_visible(&name));
            }
        }

        #[test]
        fn only_invisible_characters_are_always_refused(
            raw in proptest::collection::vec(proptest::sample::select(INVISIBLE.to_vec()), 1..20)
                .prop_map(|cs| cs.into_iter().collect::<String>()),
        ) {
            prop_assert!(message_content(&raw, 100).is_err());
            prop_assert!(single_line(&raw, "name", 100).map_or(true, |n| n.is_empty()));
        }

        #[test]
        fn content_never_panics_and_respects_limits(raw in any::<String>(), max in 1usize..50) {
            if let Ok(text) = message_content(&raw, max) {
                prop_assert!(!text.is_empty());
                prop_assert!(text.chars().count() <= max);
                prop_assert!(text.chars().all(|c| c == '\n' || c == '\t' || !c.is_control()));
                prop_assert_eq!(text.trim(), text.as_str());
            }
        }
    }
}
