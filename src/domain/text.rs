//! Free-text cleaning shared by messages and profile fields. Text is stored and
//! returned as plain text; it is never interpreted as HTML anywhere.

use super::Invalid;

/// Removes control characters other than newline and tab (so `\r\n` becomes `\n`).
pub fn strip_controls(text: &str) -> String {
    text.chars()
        .filter(|&c| c == '\n' || c == '\t' || !c.is_control())
        .collect()
}

/// Message content: controls removed, trimmed, 1..=`max_chars` characters.
pub fn message_content(raw: &str, max_chars: usize) -> Result<String, Invalid> {
    let cleaned = strip_controls(raw);
    let trimmed = cleaned.trim();
    if trimmed.is_empty() {
        return Err(Invalid::new("content_empty", "the message is empty"));
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

/// A single-line field (names): controls and newlines removed, trimmed, at most `max_chars`.
pub fn single_line(raw: &str, field: &'static str, max_chars: usize) -> Result<String, Invalid> {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).collect();
    let trimmed = cleaned.trim();
    if trimmed.chars().count() > max_chars {
        return Err(Invalid::new(
            "invalid_field",
            format!("{field} is longer than {max_chars} characters"),
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

    proptest! {
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
