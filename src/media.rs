//! Uploaded attachments: what a file is, decided from its bytes, and what is
//! stored and shown for it.
//!
//! The type comes from the magic bytes (`infer`), never from the file's name
//! or what the client said; the client's word only asks for a voice message,
//! which the bytes must then bear out. Then:
//! - PNG, JPEG and still WebP are decoded within limits checked from the
//!   header first (a bomb allocates nothing), turned upright (EXIF
//!   orientation) and stored re-encoded or rewritten without their metadata
//!   (`picture`); GIFs are re-encoded frame by frame from their palette
//!   indices and animated WebPs rewritten chunk by chunk, so both keep their
//!   animation (`animated_gif`, `webp`). Images get two thumbnails and a tiny
//!   placeholder.
//! - Ogg, WebM/Matroska and MP4 are read only as far as their headers (and,
//!   for a duration, their tail): audio alone is a voice message, a video
//!   track makes a video, stored as uploaded (`ogg`, `matroska`, `mp4`).
//! - Anything else is a file, stored as is and always downloaded.
//!
//! Everything here is blocking and CPU-heavy: run `process` on the image
//! worker pool (`images::pool`), never on the async threads.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use crate::domain::Invalid;
use crate::domain::attachment::AttachmentKind;

mod animated_gif;
mod jpeg;
mod matroska;
mod mp4;
mod ogg;
mod picture;
mod webp;

#[cfg(test)]
mod tests;

/// What an uploaded image or voice message may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaLimits {
    /// Width × height of an image (of each frame of an animation).
    pub max_pixels: u64,
    /// Longest side of an image, in pixels.
    pub max_side: u32,
    /// Longest voice message, in milliseconds.
    pub max_voice_ms: u32,
}

impl Default for MediaLimits {
    /// 40 MP and 10 000 px a side (Revolt's figures; a 48 MP phone photo is
    /// 8000×6000 and fits on its side but not in pixels), voice 5 minutes.
    fn default() -> Self {
        Self {
            max_pixels: 40_000_000,
            max_side: 10_000,
            max_voice_ms: 300_000,
        }
    }
}

impl MediaLimits {
    /// Bytes a decoded image may take: 4 a pixel, so an 8-bit RGBA image of
    /// `max_pixels` fits, a 16-bit one only half as large.
    fn max_decoded_bytes(&self) -> u64 {
        self.max_pixels.saturating_mul(4)
    }

    /// Pixels of all the frames of an animation together (each frame is
    /// decoded, so this bounds the CPU an animation costs): a few seconds of
    /// a full-size image, hundreds of frames of a usual GIF.
    fn max_animation_pixels(&self) -> u64 {
        self.max_pixels.saturating_mul(ANIMATION_PIXELS_FACTOR)
    }
}

/// `max_animation_pixels` over `max_pixels`.
const ANIMATION_PIXELS_FACTOR: u64 = 4;
/// Frames an animation may have, whatever their size (each costs a little
/// bookkeeping even when it is one pixel).
const MAX_FRAMES: usize = 5_000;

/// What the client said it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declared {
    /// Nothing: the bytes decide.
    Auto,
    /// A recording (`kind=voice`, `send-audio/`): the bytes must be audio.
    /// `duration_ms` is the recorder's figure, used when the container has
    /// none; `waveform` has been checked with `domain::attachment::parse_waveform`.
    Voice {
        duration_ms: Option<u32>,
        waveform: Option<Vec<u8>>,
    },
}

/// The two thumbnails of an image, of at most `THUMBNAIL_SMALL` and
/// `THUMBNAIL_LARGE` pixels on the long side (never upscaled), both of one type:
/// JPEG for an opaque image, PNG when it has transparent pixels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnails {
    pub mime: &'static str,
    pub small: Vec<u8>,
    pub large: Vec<u8>,
}

/// What an upload turned out to be and what to store for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Processed {
    pub kind: AttachmentKind,
    /// Detected from the bytes; `application/octet-stream` for unknown files.
    pub mime: &'static str,
    /// Images after orientation; video when the container says.
    pub width: Option<u32>,
    pub height: Option<u32>,
    /// A GIF or WebP of more than one frame.
    pub animated: bool,
    pub duration_ms: Option<u32>,
    /// Voice: the recorder's waveform, passed through.
    pub waveform: Option<Vec<u8>>,
    /// Images: `data:image/png;base64,…` of at most 16 px on the long side
    /// and under 1 KB, stretched (blurred) until the thumbnail loads.
    pub placeholder: Option<String>,
    /// Bytes to store instead of the upload (images: without metadata);
    /// `None` stores the upload as it is.
    pub replacement: Option<Vec<u8>>,
    /// Images only (an animation's are its first frame, still).
    pub thumbnails: Option<Thumbnails>,
}

impl Processed {
    /// A file stored as is, downloaded, never rendered.
    fn file(mime: Option<&'static str>) -> Self {
        Self {
            kind: AttachmentKind::File,
            mime: mime.unwrap_or(OCTET_STREAM),
            width: None,
            height: None,
            animated: false,
            duration_ms: None,
            waveform: None,
            placeholder: None,
            replacement: None,
            thumbnails: None,
        }
    }
}

const OCTET_STREAM: &str = "application/octet-stream";

/// Reads the upload at `path` (complete, on local disk) and decides what it is:
/// see the module's documentation. Errors carry the codes of the upload API
/// (`empty_file`, `invalid_image`, `image_too_large`, `invalid_voice`,
/// `voice_too_long`), and `upload_unreadable` if the file itself cannot be
/// read (a server fault, not the client's). Blocking and CPU-heavy.
pub fn process(
    path: &Path,
    declared: &Declared,
    limits: &MediaLimits,
) -> Result<Processed, Invalid> {
    let mut file = File::open(path).map_err(unreadable)?;
    let len = file.metadata().map_err(unreadable)?.len();
    if len == 0 {
        return Err(Invalid::new("empty_file", "the file is empty"));
    }
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    // Every reader below starts from the beginning.
    file.rewind().map_err(unreadable)?;
    let sniffed = sniff(&head);
    match declared {
        Declared::Voice {
            duration_ms,
            waveform,
        } => {
            let Some(av) = read_av(sniffed, &mut file, len, &head)? else {
                return Err(invalid_voice(
                    "a voice message must be Ogg (Opus or Vorbis), WebM or MP4 audio",
                ));
            };
            voice(&av, *duration_ms, waveform.clone(), limits)
        }
        Declared::Auto => match sniffed {
            Sniffed::Png => picture::png(file, limits),
            Sniffed::Jpeg => picture::jpeg(file, limits),
            Sniffed::WebP => picture::webp(file, len, limits),
            Sniffed::Gif => animated_gif::process(file, limits),
            Sniffed::Other(mime) => Ok(Processed::file(mime)),
            Sniffed::Ogg { .. } | Sniffed::Matroska { .. } | Sniffed::Mp4 { .. } => {
                match read_av(sniffed, &mut file, len, &head)? {
                    Some(av) => Ok(auto_av(&av, sniffed.mime(), limits)),
                    None => Ok(Processed::file(sniffed.mime())),
                }
            }
        },
    }
}

/// Whether a stored attachment of this kind and type may be shown inline (an
/// `<img>`, `<audio>` or `<video>` of the web app); everything else is served
/// as a download. Never SVG, HTML, XML or script, whatever the kind says.
pub fn inline_safe(kind: AttachmentKind, mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or("").trim();
    let is = |allowed: &[&str]| allowed.iter().any(|a| a.eq_ignore_ascii_case(essence));
    match kind {
        AttachmentKind::Image => is(&["image/png", "image/jpeg", "image/gif", "image/webp"]),
        AttachmentKind::Voice => is(&["audio/webm", "audio/ogg", "audio/mp4", "audio/mpeg"]),
        AttachmentKind::Video => is(&["video/mp4", "video/webm"]),
        AttachmentKind::File => false,
    }
}

/// Bytes read for sniffing; also where the Ogg and WebM headers are looked for
/// first. `infer` looks at most this far (office documents aside).
const HEAD_BYTES: usize = 8192;

/// What the first bytes say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    Png,
    Jpeg,
    Gif,
    WebP,
    Ogg {
        mime: &'static str,
    },
    /// EBML: WebM, or Matroska with another DocType.
    Matroska {
        mime: &'static str,
    },
    /// ISO base media (`ftyp`).
    Mp4 {
        mime: &'static str,
    },
    /// Anything else, with `infer`'s type when it knows one.
    Other(Option<&'static str>),
}

impl Sniffed {
    /// `infer`'s type, for a container that turns out to be a plain file.
    fn mime(self) -> Option<&'static str> {
        match self {
            Self::Png => Some("image/png"),
            Self::Jpeg => Some("image/jpeg"),
            Self::Gif => Some("image/gif"),
            Self::WebP => Some("image/webp"),
            Self::Ogg { mime } | Self::Matroska { mime } | Self::Mp4 { mime } => Some(mime),
            Self::Other(mime) => mime,
        }
    }
}

/// `infer` names the type; the image formats also need their whole signature
/// (`infer` takes any file starting with "GIF" for a GIF, so a text file
/// that starts "GIF is…" would otherwise be an image that does not decode).
fn sniff(head: &[u8]) -> Sniffed {
    let Some(mime) = infer::get(head).map(|t| t.mime_type()) else {
        return Sniffed::Other(None);
    };
    let signed = |ok: bool, sniffed: Sniffed| if ok { sniffed } else { Sniffed::Other(None) };
    match mime {
        "image/png" => signed(head.starts_with(b"\x89PNG\r\n\x1a\n"), Sniffed::Png),
        "image/jpeg" => signed(head.starts_with(&[0xFF, 0xD8, 0xFF]), Sniffed::Jpeg),
        "image/gif" => signed(
            head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a"),
            Sniffed::Gif,
        ),
        "image/webp" => signed(
            head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP"),
            Sniffed::WebP,
        ),
        "audio/ogg" | "audio/opus" => Sniffed::Ogg { mime },
        "video/webm" | "video/x-matroska" => Sniffed::Matroska { mime },
        "video/mp4" | "audio/m4a" | "video/x-m4v" if head.get(4..8) == Some(b"ftyp") => {
            Sniffed::Mp4 { mime }
        }
        other => Sniffed::Other(Some(other)),
    }
}

/// The container families audio and video come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Ogg,
    WebM,
    /// Matroska with a DocType other than "webm".
    Matroska,
    Mp4,
}

/// What an audio/video container says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Av {
    family: Option<Family>,
    audio: bool,
    video: bool,
    /// Tracks that are neither (subtitles, say).
    other: bool,
    width: Option<u32>,
    height: Option<u32>,
    /// The container's own figure (Ogg: last granule; WebM: Segment Duration;
    /// MP4: the movie header's).
    duration_ms: Option<u32>,
    /// WebM without a Duration: where the last block starts, which a recorder's
    /// figure cannot undercut by much.
    estimate_ms: Option<u32>,
}

impl Av {
    fn audio_only(&self) -> bool {
        self.audio && !self.video && !self.other
    }
}

/// Reads the header (and tail) of an Ogg, Matroska or MP4 file; `None` for
/// anything else or a container too broken to say what it holds.
fn read_av(
    sniffed: Sniffed,
    file: &mut File,
    len: u64,
    head: &[u8],
) -> Result<Option<Av>, Invalid> {
    match sniffed {
        Sniffed::Ogg { .. } => ogg::read(file, len, head).map_err(unreadable),
        Sniffed::Matroska { .. } => matroska::read(file, len).map_err(unreadable),
        Sniffed::Mp4 { .. } => mp4::read(file, len).map_err(unreadable),
        _ => Ok(None),
    }
}

/// The duration to report: the container's, else the recorder's, unless the
/// blocks say the recording is clearly longer (a recorder's figure could
/// otherwise slip a long recording under the limit).
fn duration(av: &Av, declared: Option<u32>) -> Option<u32> {
    /// How far the last block may start after the recorder's end: blocks last
    /// 20–60 ms, and recorders round.
    const SLACK_MS: u32 = 1_000;
    if av.duration_ms.is_some() {
        return av.duration_ms;
    }
    match (av.estimate_ms, declared) {
        (Some(estimate), Some(declared)) if estimate > declared.saturating_add(SLACK_MS) => {
            Some(estimate)
        }
        (_, Some(declared)) => Some(declared),
        (estimate, None) => estimate,
    }
}

fn voice_mime(family: Family) -> &'static str {
    match family {
        Family::Ogg => "audio/ogg",
        Family::WebM | Family::Matroska => "audio/webm",
        Family::Mp4 => "audio/mp4",
    }
}

/// A declared voice message: audio alone, with a duration within the limit.
fn voice(
    av: &Av,
    declared_ms: Option<u32>,
    waveform: Option<Vec<u8>>,
    limits: &MediaLimits,
) -> Result<Processed, Invalid> {
    let Some(family) = av.family.filter(|_| av.audio_only()) else {
        return Err(invalid_voice(
            "a voice message must hold audio only (Opus or Vorbis in Ogg or WebM, or MP4 audio)",
        ));
    };
    let Some(duration_ms) = duration(av, declared_ms) else {
        return Err(invalid_voice(
            "the recording's duration is unknown: the file has none, and no duration_ms was sent",
        ));
    };
    if duration_ms > limits.max_voice_ms {
        return Err(Invalid::new(
            "voice_too_long",
            format!(
                "the voice message lasts {} s; at most {} s are accepted",
                duration_ms.div_ceil(1000),
                limits.max_voice_ms / 1000
            ),
        ));
    }
    Ok(Processed {
        kind: AttachmentKind::Voice,
        mime: voice_mime(family),
        duration_ms: Some(duration_ms),
        waveform,
        ..Processed::file(None)
    })
}

/// An audio or video container nobody declared: a WebM or MP4 with a video
/// track is a video; audio alone (Ogg, WebM, MP4) is a recording, a voice
/// message when its duration is known and within the limit; anything else
/// (Matroska video, an Ogg of Theora, a long piece of music) is a file.
fn auto_av(av: &Av, sniffed_mime: Option<&'static str>, limits: &MediaLimits) -> Processed {
    match av.family {
        Some(family @ (Family::WebM | Family::Mp4)) if av.video => Processed {
            kind: AttachmentKind::Video,
            mime: if family == Family::WebM {
                "video/webm"
            } else {
                "video/mp4"
            },
            width: av.width,
            height: av.height,
            duration_ms: av.duration_ms,
            ..Processed::file(None)
        },
        Some(_) if av.audio_only() => {
            voice(av, None, None, limits).unwrap_or_else(|_| Processed::file(sniffed_mime))
        }
        _ => Processed::file(sniffed_mime),
    }
}

/// Checks an image's (or a frame's) size from its header, before anything is
/// allocated for it.
fn check_size(width: u32, height: u32, limits: &MediaLimits) -> Result<(), Invalid> {
    if width == 0 || height == 0 {
        return Err(invalid_image("the image has no pixels"));
    }
    if width > limits.max_side || height > limits.max_side {
        return Err(too_large(format!(
            "the image is {width}×{height} pixels; at most {} on a side are accepted",
            limits.max_side
        )));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(too_large(format!(
            "the image is {width}×{height}, {:.1} million pixels; at most {:.1} million are accepted",
            pixels as f64 / 1e6,
            limits.max_pixels as f64 / 1e6
        )));
    }
    Ok(())
}

/// Refuses an animation whose frames together are too much to decode.
fn check_animation(frames: usize, pixels: u64, limits: &MediaLimits) -> Result<(), Invalid> {
    if frames > MAX_FRAMES {
        return Err(too_large(format!(
            "the animation has {frames} frames; at most {MAX_FRAMES} are accepted"
        )));
    }
    if pixels > limits.max_animation_pixels() {
        return Err(too_large(format!(
            "the animation's {frames} frames hold {:.0} million pixels together; at most {:.0} million are accepted",
            pixels as f64 / 1e6,
            limits.max_animation_pixels() as f64 / 1e6
        )));
    }
    Ok(())
}

/// The whole file, for formats rewritten in memory (WebP).
fn read_all(mut file: File, len: u64) -> Result<Vec<u8>, Invalid> {
    file.rewind().map_err(unreadable)?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes).map_err(unreadable)?;
    Ok(bytes)
}

/// Up to `len` bytes from `pos` (fewer at the end of the file).
fn read_at(file: &mut File, pos: u64, len: u64) -> io::Result<Vec<u8>> {
    file.seek(SeekFrom::Start(pos))?;
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut bytes)?;
    Ok(bytes)
}

fn invalid_image(message: impl Into<String>) -> Invalid {
    Invalid::new("invalid_image", message)
}

fn too_large(message: impl Into<String>) -> Invalid {
    Invalid::new("image_too_large", message)
}

fn invalid_voice(message: impl Into<String>) -> Invalid {
    Invalid::new("invalid_voice", message)
}

/// The upload could not be read from local disk: not the client's doing.
fn unreadable(err: io::Error) -> Invalid {
    Invalid::new(
        "upload_unreadable",
        format!("the uploaded file could not be read: {err}"),
    )
}
