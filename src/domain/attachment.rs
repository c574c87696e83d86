//! Attachments: the images, files, voice and video messages carry.

use serde::{Deserialize, Serialize};

use super::Invalid;
use super::ids::AttachmentId;

/// What an attachment is, decided by the server from its bytes (and, for
/// voice, from how it was recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachmentKind {
    /// PNG, JPEG, GIF or WebP, decoded and re-encoded by the server.
    Image,
    /// Anything else: stored as is, always downloaded, never rendered.
    File,
    /// Recorded audio (Opus in WebM or Ogg, or MP4 audio).
    Voice,
    /// MP4 or WebM video, stored as is.
    Video,
}

impl AttachmentKind {
    pub fn code(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::File => "file",
            Self::Voice => "voice",
            Self::Video => "video",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "image" => Some(Self::Image),
            "file" => Some(Self::File),
            "voice" => Some(Self::Voice),
            "video" => Some(Self::Video),
            _ => None,
        }
    }
}

/// The sizes thumbnails are made at (the longer side, in pixels): the
/// timeline loads the small one, the lightbox the large one.
pub const THUMBNAIL_SMALL: u32 = 320;
pub const THUMBNAIL_LARGE: u32 = 1280;

/// An uploaded file as messages carry it. Stored with the message (as JSON)
/// so history, resume and the live frames need no second query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub id: AttachmentId,
    pub kind: AttachmentKind,
    /// The uploader's file name, sanitised (see [`sanitize_name`]).
    pub name: String,
    /// Detected from the bytes, never taken from the client.
    pub mime: String,
    /// Bytes of the stored file.
    pub size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// An animated GIF or WebP (its thumbnails are still).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub animated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u32>,
    /// Voice: amplitudes 0–255, as the recorder measured them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waveform: Option<Vec<u8>>,
    /// A tiny preview (a `data:` URL) shown until the thumbnail loads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<String>,
    /// The type of the thumbnails, when there are any (images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail_mime: Option<String>,
}

impl Attachment {
    pub fn has_thumbnails(&self) -> bool {
        self.thumbnail_mime.is_some()
    }
}

/// Longest file name kept, in characters (the extension is kept when cutting).
pub const NAME_MAX_CHARS: usize = 200;

/// A file name fit to show and to put in `Content-Disposition`: no path (the
/// last component of either separator), no control or bidi-override
/// characters, no leading dots, at most [`NAME_MAX_CHARS`] characters keeping
/// the extension. An empty result becomes `fallback`.
pub fn sanitize_name(raw: &str, fallback: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| !c.is_control() && !is_bidi_control(*c))
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        return fallback.to_string();
    }
    if trimmed.chars().count() <= NAME_MAX_CHARS {
        return trimmed.to_string();
    }
    let (stem, ext) = match trimmed.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.chars().count() <= 16 => (stem, Some(ext)),
        _ => (trimmed, None),
    };
    let keep = NAME_MAX_CHARS - ext.map_or(0, |e| e.chars().count() + 1);
    let stem: String = stem.chars().take(keep).collect();
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem,
    }
}

/// Characters that reorder text (a name like `"gpj.exe"` shown as `"exe.jpg"`).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{200E}' | '\u{200F}' | '\u{061C}')
}

/// Amplitude values a voice message's waveform may have.
pub const WAVEFORM_MIN: usize = 16;
pub const WAVEFORM_MAX: usize = 256;

/// A recorder's waveform: `WAVEFORM_MIN`–`WAVEFORM_MAX` integers 0–255, as a
/// JSON array or comma-separated.
pub fn parse_waveform(raw: &str) -> Result<Vec<u8>, Invalid> {
    let invalid = || {
        Invalid::new(
            "invalid_waveform",
            format!("waveform is {WAVEFORM_MIN}-{WAVEFORM_MAX} integers from 0 to 255"),
        )
    };
    let inner = raw.trim().trim_start_matches('[').trim_end_matches(']');
    let values: Vec<u8> = inner
        .split(',')
        .map(|v| v.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .map_err(|_| invalid())?;
    if (WAVEFORM_MIN..=WAVEFORM_MAX).contains(&values.len()) {
        Ok(values)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_controls_and_length() {
        assert_eq!(sanitize_name("../../etc/passwd", "file"), "passwd");
        assert_eq!(
            sanitize_name("C:\\Users\\a\\photo.JPG", "file"),
            "photo.JPG"
        );
        assert_eq!(sanitize_name("..", "file"), "file");
        assert_eq!(sanitize_name(".htaccess", "file"), "htaccess");
        assert_eq!(sanitize_name("a\u{202E}gpj.exe", "file"), "agpj.exe");
        assert_eq!(sanitize_name("bad\r\nname.txt", "file"), "badname.txt");
        assert_eq!(sanitize_name("照片 2026.png", "file"), "照片 2026.png");
        let long = format!("{}.pdf", "x".repeat(300));
        let cut = sanitize_name(&long, "file");
        assert_eq!(cut.chars().count(), NAME_MAX_CHARS);
        assert!(cut.ends_with(".pdf"));
        assert_eq!(sanitize_name("", "voice.webm"), "voice.webm");
    }

    #[test]
    fn waveforms_are_checked() {
        let ok = vec!["7"; 64].join(",");
        assert_eq!(parse_waveform(&ok).unwrap().len(), 64);
        assert_eq!(parse_waveform(&format!("[{ok}]")).unwrap()[0], 7);
        assert!(parse_waveform("1,2,3").is_err());
        assert!(parse_waveform(&vec!["256"; 64].join(",")).is_err());
        assert!(parse_waveform(&vec!["-1"; 64].join(",")).is_err());
        assert!(parse_waveform(&vec!["1"; 300].join(",")).is_err());
        assert!(parse_waveform("").is_err());
    }
}
