//! Avatars: uploads are decoded and re-encoded (so no payload in the original
//! bytes survives), and users without one get generated initials.

use std::io::Cursor;

use image::imageops::FilterType;
use image::{ImageFormat, ImageReader, Limits};

use crate::domain::Invalid;
use crate::domain::ids::UserId;
use crate::views::fnv1a;

/// Largest image accepted; a larger one is refused with `400 image_too_large`.
pub const MAX_UPLOAD_BYTES: usize = 5 * 1024 * 1024;
/// Body limit of the upload request: room above `MAX_UPLOAD_BYTES` so that a
/// somewhat-too-large image gets the clear 400 rather than a bare 413, while a
/// huge body is still cut off early.
pub const MAX_REQUEST_BYTES: usize = 8 * 1024 * 1024;
pub const SIZE: u32 = 256;

/// Decodes a PNG, JPEG, GIF or WebP (recognised from its bytes, not its declared
/// type) and returns a square 256×256 PNG. CPU-heavy: call from a blocking thread.
pub fn normalize(bytes: &[u8]) -> Result<Vec<u8>, Invalid> {
    let unsupported = || {
        Invalid::new(
            "unsupported_image",
            "the avatar must be a PNG, JPEG, GIF or WebP image",
        )
    };
    let format = image::guess_format(bytes).map_err(|_| unsupported())?;
    if !matches!(
        format,
        ImageFormat::Png | ImageFormat::Jpeg | ImageFormat::Gif | ImageFormat::WebP
    ) {
        return Err(unsupported());
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // Bounds decoding so a small "decompression bomb" cannot exhaust memory.
    let mut limits = Limits::default();
    limits.max_image_width = Some(8192);
    limits.max_image_height = Some(8192);
    limits.max_alloc = Some(256 * 1024 * 1024);
    reader.limits(limits);
    let image = reader
        .decode()
        .map_err(|e| Invalid::new("invalid_image", format!("the image could not be read: {e}")))?;
    let square = image
        .resize_to_fill(SIZE, SIZE, FilterType::Triangle)
        .to_rgba8();
    let mut png = Vec::new();
    square
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| {
            Invalid::new(
                "invalid_image",
                format!("the image could not be encoded: {e}"),
            )
        })?;
    Ok(png)
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
    use image::{ImageBuffer, Rgba};

    fn encoded(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img = ImageBuffer::from_pixel(w, h, Rgba([200u8, 10, 10, 255]));
        let mut out = Vec::new();
        image::DynamicImage::ImageRgba8(img)
            .to_rgb8()
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    #[test]
    fn re_encodes_to_a_256_square_png() {
        for format in [
            ImageFormat::Png,
            ImageFormat::Jpeg,
            ImageFormat::Gif,
            ImageFormat::WebP,
        ] {
            let png = normalize(&encoded(format, 300, 120)).unwrap();
            let back = image::load_from_memory_with_format(&png, ImageFormat::Png).unwrap();
            assert_eq!((back.width(), back.height()), (256, 256), "{format:?}");
        }
    }

    #[test]
    fn rejects_what_is_not_an_image() {
        assert_eq!(
            normalize(b"<svg></svg>").unwrap_err().code,
            "unsupported_image"
        );
        assert_eq!(
            normalize(b"GIF89a garbage").unwrap_err().code,
            "invalid_image"
        );
        let mut truncated = encoded(ImageFormat::Png, 10, 10);
        truncated.truncate(40);
        assert!(normalize(&truncated).is_err());
    }

    #[test]
    fn appended_payload_does_not_survive() {
        let mut bytes = encoded(ImageFormat::Png, 32, 32);
        bytes.extend_from_slice(b"<script>alert(1)</script>");
        let png = normalize(&bytes).unwrap();
        assert!(!png.windows(8).any(|w| w == b"<script>"));
    }

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
