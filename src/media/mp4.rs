//! MP4 (ISO base media): its tracks' kinds, the video's size and the
//! duration, from the `moov` box, found by stepping over the top-level boxes
//! (seeking past `mdat`, wherever `moov` is).
//!
//! A track is video or sound by its handler (`hdlr` "vide" / "soun"), not by
//! the brand: Safari records audio into an "iso5"/"mp42" file like any video.
//! Without a readable `moov`, an audio-only brand ("M4A ", …) says audio.

use std::fs::File;
use std::io;

use super::{Av, Family, read_at};

/// Top-level boxes stepped over before giving up.
const MAX_BOXES: usize = 1024;
/// Largest `moov` read: a few megabytes for hours of video.
const MAX_MOOV: u64 = 32 * 1024 * 1024;
const AUDIO_BRANDS: [&[u8; 4]; 5] = [b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "];

pub(super) fn read(file: &mut File, len: u64) -> io::Result<Option<Av>> {
    let Some(ftyp) = box_at(file, 0, len)? else {
        return Ok(None);
    };
    if &ftyp.kind != b"ftyp" {
        return Ok(None);
    }
    let brand = read_at(file, ftyp.data, 4)?;
    let audio_brand = AUDIO_BRANDS
        .iter()
        .any(|b| b.as_slice() == brand.as_slice());
    let mut pos = ftyp.end;
    let mut movie = None;
    for _ in 0..MAX_BOXES {
        let Some(found) = box_at(file, pos, len)? else {
            break;
        };
        if &found.kind == b"moov" {
            if found.end - found.data <= MAX_MOOV {
                movie = Some(parse_moov(&read_at(
                    file,
                    found.data,
                    found.end - found.data,
                )?));
            }
            break;
        }
        pos = found.end;
    }
    let movie = movie.unwrap_or(Movie {
        audio: audio_brand,
        video: !audio_brand,
        ..Movie::default()
    });
    Ok(Some(Av {
        family: Some(Family::Mp4),
        audio: movie.audio,
        video: movie.video,
        width: movie.size.map(|s| s.0),
        height: movie.size.map(|s| s.1),
        duration_ms: movie.duration_ms,
        ..Av::default()
    }))
}

/// A box found in the file: its type, where its data starts and where it ends.
struct Found {
    kind: [u8; 4],
    data: u64,
    end: u64,
}

fn box_at(file: &mut File, pos: u64, len: u64) -> io::Result<Option<Found>> {
    if pos >= len {
        return Ok(None);
    }
    let bytes = read_at(file, pos, 16)?;
    let Some((kind, header_len, size)) = header(&bytes) else {
        return Ok(None);
    };
    // Size 0: up to the end of the file.
    let end = size.map_or(len, |s| pos.saturating_add(s)).min(len);
    let data = pos + header_len as u64;
    Ok((end >= data).then_some(Found { kind, data, end }))
}

/// A box header: type, header length, total size (`None`: to the end).
fn header(bytes: &[u8]) -> Option<([u8; 4], usize, Option<u64>)> {
    let size = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?);
    let kind: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
    match size {
        0 => Some((kind, 8, None)),
        1 => {
            let large = u64::from_be_bytes(bytes.get(8..16)?.try_into().ok()?);
            (large >= 16).then_some((kind, 16, Some(large)))
        }
        2..=7 => None,
        size => Some((kind, 8, Some(u64::from(size)))),
    }
}

/// The boxes inside a box read into memory: (type, data).
fn boxes(mut bytes: &[u8]) -> impl Iterator<Item = ([u8; 4], &[u8])> {
    std::iter::from_fn(move || {
        let (kind, header_len, size) = header(bytes)?;
        let size = size.map_or(Some(bytes.len()), |s| usize::try_from(s).ok())?;
        let data = bytes.get(header_len..size)?;
        bytes = &bytes[size..];
        Some((kind, data))
    })
}

fn child<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    boxes(bytes).find(|(k, _)| k == kind).map(|(_, data)| data)
}

fn be_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn be_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

#[derive(Debug, Default)]
struct Movie {
    audio: bool,
    video: bool,
    /// The first video track's display size, turned by its matrix.
    size: Option<(u32, u32)>,
    duration_ms: Option<u32>,
}

fn parse_moov(moov: &[u8]) -> Movie {
    let mut movie = Movie::default();
    let mut timescale = 0;
    let mut duration = 0;
    if let Some(mvhd) = child(moov, b"mvhd") {
        (timescale, duration) = match mvhd.first() {
            Some(1) => (be_u32(mvhd, 20).unwrap_or(0), be_u64(mvhd, 24).unwrap_or(0)),
            _ => (
                be_u32(mvhd, 12).unwrap_or(0),
                u64::from(be_u32(mvhd, 16).unwrap_or(0)),
            ),
        };
        // All ones: unknown.
        if duration == u64::MAX || duration == u64::from(u32::MAX) {
            duration = 0;
        }
    }
    // A fragmented file (a recorder's) may give its length in mvex/mehd.
    if duration == 0
        && let Some(mehd) = child(moov, b"mvex").and_then(|mvex| child(mvex, b"mehd"))
    {
        duration = match mehd.first() {
            Some(1) => be_u64(mehd, 4).unwrap_or(0),
            _ => u64::from(be_u32(mehd, 4).unwrap_or(0)),
        };
    }
    if duration > 0 && timescale > 0 {
        let ms = u128::from(duration) * 1000 / u128::from(timescale);
        movie.duration_ms = Some(u32::try_from(ms).unwrap_or(u32::MAX));
    }
    for (_, trak) in boxes(moov).filter(|(k, _)| k == b"trak") {
        let handler = child(trak, b"mdia")
            .and_then(|mdia| child(mdia, b"hdlr"))
            .and_then(|hdlr| hdlr.get(8..12));
        match handler {
            Some(b"vide") => {
                movie.video = true;
                if movie.size.is_none() {
                    movie.size = child(trak, b"tkhd").and_then(track_size);
                }
            }
            Some(b"soun") => movie.audio = true,
            // Hints, chapters (text), timecodes, metadata: neither.
            _ => {}
        }
    }
    movie
}

/// tkhd's width and height (16.16 fixed point), swapped when its matrix
/// turns the picture a quarter (a phone held upright).
fn track_size(tkhd: &[u8]) -> Option<(u32, u32)> {
    let (matrix, size) = match tkhd.first() {
        Some(1) => (52, 88),
        _ => (40, 76),
    };
    let width = be_u32(tkhd, size)? >> 16;
    let height = be_u32(tkhd, size + 4)? >> 16;
    if width == 0 || height == 0 {
        return None;
    }
    let (a, d) = (be_u32(tkhd, matrix)?, be_u32(tkhd, matrix + 16)?);
    Some(if a == 0 && d == 0 {
        (height, width)
    } else {
        (width, height)
    })
}

/// Writes a box for tests.
#[cfg(test)]
pub(super) fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32 + 8).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(payload);
    out
}

/// A `trak` of the given handler; a video one `width`×`height`, turned a
/// quarter if `turned`.
#[cfg(test)]
pub(super) fn trak(handler: &[u8; 4], width: u32, height: u32, turned: bool) -> Vec<u8> {
    let mut tkhd = vec![0u8; 84];
    let (a, b, c, d): (u32, u32, u32, u32) = if turned {
        (0, 0x1_0000, 0xFFFF_0000, 0)
    } else {
        (0x1_0000, 0, 0, 0x1_0000)
    };
    for (i, v) in [a, b, 0, c, d].into_iter().enumerate() {
        tkhd[40 + i * 4..44 + i * 4].copy_from_slice(&v.to_be_bytes());
    }
    tkhd[76..80].copy_from_slice(&(width << 16).to_be_bytes());
    tkhd[80..84].copy_from_slice(&(height << 16).to_be_bytes());
    let mut hdlr = vec![0u8; 8];
    hdlr.extend_from_slice(handler);
    hdlr.extend_from_slice(&[0; 13]);
    let mdia = mp4_box(b"mdia", &mp4_box(b"hdlr", &hdlr));
    let mut payload = mp4_box(b"tkhd", &tkhd);
    payload.extend(mdia);
    mp4_box(b"trak", &payload)
}

/// An `mvhd` (version 0) of `duration` at `timescale`.
#[cfg(test)]
pub(super) fn mvhd(timescale: u32, duration: u32) -> Vec<u8> {
    let mut mvhd = vec![0u8; 100];
    mvhd[12..16].copy_from_slice(&timescale.to_be_bytes());
    mvhd[16..20].copy_from_slice(&duration.to_be_bytes());
    mp4_box(b"mvhd", &mvhd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_size_and_duration_come_from_moov() {
        let mut moov = mvhd(600, 600 * 42 + 300);
        moov.extend(trak(b"soun", 0, 0, false));
        moov.extend(trak(b"vide", 1920, 1080, true));
        let movie = parse_moov(&moov);
        assert!(movie.audio && movie.video);
        assert_eq!(movie.size, Some((1080, 1920)));
        assert_eq!(movie.duration_ms, Some(42_500));
        let audio = parse_moov(&trak(b"soun", 0, 0, false));
        assert!(audio.audio && !audio.video);
        assert_eq!(audio.duration_ms, None);
    }

    #[test]
    fn box_headers() {
        assert_eq!(header(b"\0\0\0\x10ftypisom"), Some((*b"ftyp", 8, Some(16))));
        assert_eq!(header(b"\0\0\0\0mdat"), Some((*b"mdat", 8, None)));
        assert_eq!(
            header(b"\0\0\0\x01mdat\0\0\0\x01\0\0\0\0"),
            Some((*b"mdat", 16, Some(1 << 32)))
        );
        assert_eq!(header(b"\0\0\0\x04free"), None);
        assert_eq!(header(b"\0\0"), None);
    }
}
