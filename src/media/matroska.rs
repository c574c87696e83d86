//! WebM and Matroska (EBML): the DocType, the tracks, the video's size and
//! the duration, read element by element from the file, seeking over what is
//! not needed.
//!
//! The duration is Segment Info's Duration × TimecodeScale. Chrome's
//! MediaRecorder writes none (it cannot know it while streaming); then the
//! start of the last block (the last Cluster's Timecode plus its blocks'
//! offsets, found in the file's tail) is the estimate a recorder's figure is
//! held to.

use std::fs::File;
use std::io;

use super::{Av, Family, read_at};

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const INFO: u32 = 0x1549_A966;
const TIMECODE_SCALE: u32 = 0x2A_D7B1;
const DURATION: u32 = 0x4489;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_TYPE: u32 = 0x83;
const VIDEO: u32 = 0xE0;
const PIXEL_WIDTH: u32 = 0xB0;
const PIXEL_HEIGHT: u32 = 0xBA;
const CLUSTER: u32 = 0x1F43_B675;
const TIMECODE: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;

/// Top-level elements looked at before giving up on finding Info and Tracks.
const MAX_ELEMENTS: usize = 256;
/// Largest Info and Tracks read (both are a few hundred bytes in practice).
const MAX_HEADER_ELEMENT: u64 = 1 << 20;
/// Bytes at the end searched for the last cluster: a recorder's cluster of
/// Opus holds a few seconds, a few kilobytes a second.
const TAIL_BYTES: u64 = 256 * 1024;

pub(super) fn read(file: &mut File, len: u64) -> io::Result<Option<Av>> {
    let Some(ebml) = element_at(file, 0, len)? else {
        return Ok(None);
    };
    if ebml.id != EBML {
        return Ok(None);
    }
    let header = read_at(file, ebml.data, ebml.size.unwrap_or(0).min(4096))?;
    let family = match children(&header).find(|e| e.id == DOC_TYPE).map(|e| e.data) {
        Some(b"webm") => Family::WebM,
        Some(b"matroska") => Family::Matroska,
        _ => return Ok(None),
    };
    let Some(ebml_size) = ebml.size else {
        return Ok(None);
    };
    let Some(segment) = element_at(file, ebml.data.saturating_add(ebml_size), len)? else {
        return Ok(None);
    };
    if segment.id != SEGMENT {
        return Ok(None);
    }
    let segment_end = segment
        .size
        .map_or(len, |s| segment.data.saturating_add(s))
        .min(len);
    let (mut info, mut tracks) = (None, None);
    let mut pos = segment.data;
    for _ in 0..MAX_ELEMENTS {
        if pos >= segment_end || (info.is_some() && tracks.is_some()) {
            break;
        }
        let Some(element) = element_at(file, pos, len)? else {
            break;
        };
        let small = element.size.filter(|&s| s <= MAX_HEADER_ELEMENT);
        match (element.id, small) {
            (INFO, Some(size)) => info = Some(parse_info(&read_at(file, element.data, size)?)),
            (TRACKS, Some(size)) => {
                tracks = Some(parse_tracks(&read_at(file, element.data, size)?))
            }
            (CLUSTER, _) => break,
            _ => {}
        }
        let Some(size) = element.size else {
            break;
        };
        pos = element.data.saturating_add(size);
    }
    let Some(tracks) = tracks else {
        return Ok(None);
    };
    let info = info.unwrap_or_default();
    let scale = info.timecode_scale.unwrap_or(1_000_000);
    let to_ms = |ticks: f64| {
        let ms = ticks * scale as f64 / 1e6;
        (ms.is_finite() && ms >= 0.0).then(|| ms.min(f64::from(u32::MAX)).round() as u32)
    };
    let duration_ms = info.duration.and_then(to_ms);
    let estimate_ms = if duration_ms.is_none() {
        let start = len.saturating_sub(TAIL_BYTES);
        let tail = read_at(file, start, len - start)?;
        last_block_time(&tail).and_then(|t| to_ms(t as f64))
    } else {
        None
    };
    Ok(Some(Av {
        family: Some(family),
        audio: tracks.audio,
        video: tracks.video,
        other: tracks.other,
        width: tracks.size.map(|s| s.0),
        height: tracks.size.map(|s| s.1),
        duration_ms,
        estimate_ms,
    }))
}

/// An element's header as found at `data - header length`.
#[derive(Debug, Clone, Copy)]
struct Header {
    id: u32,
    /// `None`: unknown (a live stream's Segment or Cluster).
    size: Option<u64>,
    /// Where its data starts.
    data: u64,
}

fn element_at(file: &mut File, pos: u64, len: u64) -> io::Result<Option<Header>> {
    if pos >= len {
        return Ok(None);
    }
    let bytes = read_at(file, pos, 12)?;
    Ok(header(&bytes).map(|(id, size, header_len)| Header {
        id,
        size,
        data: pos + header_len as u64,
    }))
}

/// An element ID (with its length marker, as IDs are written) and size
/// (without), and the header's length.
fn header(bytes: &[u8]) -> Option<(u32, Option<u64>, usize)> {
    let first = *bytes.first()?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return None;
    }
    let id = bytes
        .get(..id_len)?
        .iter()
        .fold(0u32, |v, &b| v << 8 | u32::from(b));
    let size_first = *bytes.get(id_len)?;
    let size_len = size_first.leading_zeros() as usize + 1;
    if size_len > 8 {
        return None;
    }
    let raw = bytes.get(id_len..id_len + size_len)?;
    let mask = if size_len == 8 { 0 } else { 0xFFu8 >> size_len };
    let size = raw[1..]
        .iter()
        .fold(u64::from(size_first & mask), |v, &b| v << 8 | u64::from(b));
    let unknown = size == (1u64 << (7 * size_len)) - 1;
    Some((id, (!unknown).then_some(size), id_len + size_len))
}

/// An element inside a parent read into memory.
struct Child<'a> {
    id: u32,
    data: &'a [u8],
}

/// The children of `bytes`, up to the first that does not fit.
fn children(mut bytes: &[u8]) -> impl Iterator<Item = Child<'_>> {
    std::iter::from_fn(move || {
        let (id, size, header_len) = header(bytes)?;
        let size = usize::try_from(size?).ok()?;
        let data = bytes.get(header_len..header_len.checked_add(size)?)?;
        bytes = &bytes[header_len + size..];
        Some(Child { id, data })
    })
}

fn uint(data: &[u8]) -> Option<u64> {
    (data.len() <= 8).then(|| data.iter().fold(0u64, |v, &b| v << 8 | u64::from(b)))
}

#[derive(Debug, Default)]
struct Info {
    timecode_scale: Option<u64>,
    /// In TimecodeScale units.
    duration: Option<f64>,
}

fn parse_info(bytes: &[u8]) -> Info {
    let mut info = Info::default();
    for child in children(bytes) {
        match child.id {
            TIMECODE_SCALE => info.timecode_scale = uint(child.data).filter(|&s| s > 0),
            DURATION => {
                info.duration = match child.data.len() {
                    4 => Some(f64::from(f32::from_be_bytes(
                        child.data.try_into().unwrap_or_default(),
                    ))),
                    8 => Some(f64::from_be_bytes(
                        child.data.try_into().unwrap_or_default(),
                    )),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    info
}

#[derive(Debug, Default)]
struct Tracks {
    audio: bool,
    video: bool,
    /// Subtitles, buttons, …
    other: bool,
    /// The first video track's PixelWidth × PixelHeight.
    size: Option<(u32, u32)>,
}

fn parse_tracks(bytes: &[u8]) -> Tracks {
    let mut tracks = Tracks::default();
    for entry in children(bytes).filter(|c| c.id == TRACK_ENTRY) {
        match children(entry.data)
            .find(|c| c.id == TRACK_TYPE)
            .and_then(|c| uint(c.data))
        {
            Some(1) => {
                tracks.video = true;
                if tracks.size.is_none() {
                    tracks.size = video_size(entry.data);
                }
            }
            Some(2) => tracks.audio = true,
            _ => tracks.other = true,
        }
    }
    tracks
}

fn video_size(entry: &[u8]) -> Option<(u32, u32)> {
    let video = children(entry).find(|c| c.id == VIDEO)?;
    let dimension = |id| {
        children(video.data)
            .find(|c| c.id == id)
            .and_then(|c| uint(c.data))
            .and_then(|v| u32::try_from(v).ok())
            .filter(|&v| v > 0)
    };
    Some((dimension(PIXEL_WIDTH)?, dimension(PIXEL_HEIGHT)?))
}

/// When the last block found in `tail` starts, in TimecodeScale units: the
/// last Cluster whose first child is its Timecode, plus the largest offset of
/// the blocks after it (a block cut by the end of the file still counts).
fn last_block_time(tail: &[u8]) -> Option<u64> {
    let mut end = tail.len();
    while let Some(at) = tail[..end]
        .windows(4)
        .rposition(|w| w == CLUSTER.to_be_bytes())
    {
        end = at;
        let Some((CLUSTER, _, header_len)) = header(&tail[at..]) else {
            continue;
        };
        let mut rest = &tail[at + header_len..];
        let Some((TIMECODE, Some(size @ 1..=8), timecode_len)) = header(rest) else {
            continue;
        };
        let Some(timecode) = rest
            .get(timecode_len..timecode_len + size as usize)
            .and_then(uint)
        else {
            continue;
        };
        rest = &rest[timecode_len + size as usize..];
        let mut latest = 0i64;
        while let Some((id, size, header_len)) = header(rest) {
            let data = &rest[header_len..];
            let offset = match id {
                SIMPLE_BLOCK => block_offset(data),
                BLOCK_GROUP => header(data)
                    .filter(|h| h.0 == BLOCK)
                    .and_then(|h| block_offset(&data[h.2..])),
                // Other cluster children (Position, PrevSize, CRC-32, Void)
                // are stepped over; anything else ends the cluster.
                0xA7 | 0xAB | 0xBF | 0xEC => None,
                _ => break,
            };
            if let Some(offset) = offset {
                latest = latest.max(i64::from(offset));
            }
            let Some(next) = size
                .and_then(|s| usize::try_from(s).ok())
                .and_then(|s| header_len.checked_add(s))
            else {
                break;
            };
            let Some(after) = rest.get(next..) else {
                break;
            };
            rest = after;
        }
        return Some(timecode.saturating_add(latest as u64));
    }
    None
}

/// A block's timecode relative to its cluster: after the track number (a
/// size-style vint), a big-endian i16.
fn block_offset(data: &[u8]) -> Option<i16> {
    let track_len = data.first()?.leading_zeros() as usize + 1;
    let bytes = data.get(track_len..track_len + 2)?;
    Some(i16::from_be_bytes([bytes[0], bytes[1]]))
}

/// Writes an element for tests: a one-byte size as recorders write for small
/// elements (and `infer` needs for the DocType), else an 8-byte one.
#[cfg(test)]
pub(super) fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = id
        .to_be_bytes()
        .into_iter()
        .skip_while(|&b| b == 0)
        .collect();
    if payload.len() < 127 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x01);
        out.extend_from_slice(&(payload.len() as u64).to_be_bytes()[1..]);
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_unknown_sizes() {
        assert_eq!(
            header(&[0x1A, 0x45, 0xDF, 0xA3, 0x84]),
            Some((EBML, Some(4), 5))
        );
        // An unknown size, written as all ones.
        assert_eq!(
            header(&[0x1F, 0x43, 0xB6, 0x75, 0xFF]),
            Some((CLUSTER, None, 5))
        );
        assert_eq!(
            header(&[
                0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF
            ]),
            Some((SEGMENT, None, 12))
        );
        assert_eq!(
            header(&[0xE7, 0x42, 0x10]),
            Some((TIMECODE, Some(0x210), 3))
        );
        assert_eq!(header(&[0x00, 0x81]), None);
        assert_eq!(header(&[0x83]), None);
    }

    #[test]
    fn the_last_block_of_the_last_cluster() {
        let block = |offset: i16| {
            let mut b = vec![0x81];
            b.extend_from_slice(&offset.to_be_bytes());
            b.extend_from_slice(&[0x80, 1, 2, 3]);
            element(SIMPLE_BLOCK, &b)
        };
        let cluster = |timecode: u16, offsets: &[i16]| {
            let mut c = vec![0x1F, 0x43, 0xB6, 0x75, 0xFF];
            c.extend(element(TIMECODE, &timecode.to_be_bytes()));
            for &o in offsets {
                c.extend(block(o));
            }
            c
        };
        let mut tail = vec![0x55; 10];
        tail.extend(cluster(1_000, &[0, 20, 40]));
        tail.extend(cluster(9_000, &[0, 20, 2_960]));
        assert_eq!(last_block_time(&tail), Some(11_960));
        // The last block cut short still counts; a cluster id without a
        // Timecode after it is not a cluster.
        tail.truncate(tail.len() - 3);
        tail.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0x81, 0x00]);
        assert_eq!(last_block_time(&tail), Some(11_960));
        assert_eq!(last_block_time(&[0x55; 64]), None);
    }
}
