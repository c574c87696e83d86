//! Avatars: uploads are decoded and re-encoded (so no payload in the original
//! bytes survives), and users without one get generated initials.

use crate::domain::Invalid;
use crate::domain::ids::UserId;
use crate::images::{self, Bounds, Target};
use crate::views::fnv1a;

/// Largest image accepted; a larger one is refused with `400 image_too_large`.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Body limit of the upload request: room above `MAX_UPLOAD_BYTES` so that a
/// somewhat-too-large image gets the clear 400 rather than a bare 413, while a
/// huge body is still cut off early.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
/// Side of a stored avatar; a smaller upload keeps its own (square) size.
pub const SIZE: u32 = 256;

/// Decodes a PNG, JPEG, GIF or WebP (recognised from its bytes, not its declared
/// type) within `Bounds::UPLOAD` and returns its centred square as a PNG of at
/// most 256×256. CPU-heavy: run it through the image pool.
pub fn normalize(bytes: &[u8]) -> Result<Vec<u8>, Invalid> {
    images::to_png(bytes, &Bounds::UPLOAD, Target::square(SIZE))
}

/// Up to two initials: the first letter of the first two words, or the first
/// character for names without spaces (CJK names read well that way).
pub fn initials(name: &str) -> String {
    let words: Vec<&str> = name.split_whitespace().collect();
    let picked: String = match words.as_slice() {
        [] => "?".to_string(),
        [one] => one.chars().take(1).collect(),
        [first, second, ..] => first
            .chars()
            .take(1)
            .chain(second.chars().take(1))
            .collect(),
    };
    picked.to_uppercase()
}

/// A background colour derived from the user id: stable and well spread.
pub fn colour(user: UserId) -> String {
    let hue = fnv1a(user.0.as_bytes()) % 360;
    format!("hsl({hue}, 55%, 45%)")
}

/// An SVG with the user's initials on their colour.
pub fn generated_svg(user: UserId, name: &str) -> String {
    let text = xml_escape(&initials(name));
    let fill = colour(user);
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256"><rect width="256" height="256" fill="{fill}"/><text x="50%" y="50%" dy=".35em" text-anchor="middle" font-family="system-ui, -apple-system, 'Segoe UI', 'PingFang SC', 'Noto Sans CJK SC', sans-serif" font-size="110" font-weight="600" fill="#ffffff">{text}</text></svg>"##
    )
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initials_and_escaping() {
        assert_eq!(initials("ann lee"), "AL");
        assert_eq!(initials("张三"), "张");
        assert_eq!(initials(""), "?");
        let svg = generated_svg(UserId::new(), "<b>");
        assert!(svg.contains("&lt;"));
        assert!(!svg.contains("<b>"));
    }
}
