//! Ogg: what its streams are (from the first pages) and how long it lasts
//! (from the last page's granule position).
//!
//! Opus: duration = (last granule − OpusHead's pre-skip) / 48 000, whatever the
//! input rate (RFC 7845 §4). Vorbis: last granule / the identification
//! header's sample rate.

use std::fs::File;
use std::io;

use super::{Av, Family, read_at};

/// The largest page: a 27-byte header, 255 lacing values, 255 × 255 bytes.
const MAX_PAGE: u64 = 27 + 255 + 255 * 255;

/// `head` is the file's first bytes (the header pages are small).
pub(super) fn read(file: &mut File, len: u64, head: &[u8]) -> io::Result<Option<Av>> {
    let Some(stream) = first_stream(head) else {
        return Ok(None);
    };
    let tail_start = len.saturating_sub(MAX_PAGE + 1);
    let tail = read_at(file, tail_start, len - tail_start)?;
    let duration_ms = last_granule(&tail, stream.serial).map(|granule| {
        let samples = granule.saturating_sub(stream.pre_skip);
        let ms = u128::from(samples) * 1000 / u128::from(stream.rate.max(1));
        u32::try_from(ms).unwrap_or(u32::MAX)
    });
    Ok(Some(Av {
        family: Some(Family::Ogg),
        audio: true,
        video: stream.other_streams,
        duration_ms,
        ..Av::default()
    }))
}

/// The audio stream the file begins with.
#[derive(Debug, PartialEq, Eq)]
struct Stream {
    serial: u32,
    /// Samples to drop from the start (Opus), at `rate`.
    pre_skip: u64,
    /// Granule positions count samples at this rate.
    rate: u32,
    /// Another stream starts beside it (a video's, say).
    other_streams: bool,
}

/// Reads the beginning-of-stream pages at the start: the first must be Opus
/// or Vorbis; any other stream beside it makes the file more than audio.
fn first_stream(head: &[u8]) -> Option<Stream> {
    let page = Page::parse(head)?;
    if !page.begins_stream() {
        return None;
    }
    let packet = page.body;
    let (pre_skip, rate) = if packet.starts_with(b"OpusHead") && packet.len() >= 19 {
        (
            u64::from(u16::from_le_bytes([packet[10], packet[11]])),
            48_000,
        )
    } else if packet.starts_with(b"\x01vorbis") && packet.len() >= 16 {
        let rate = u32::from_le_bytes([packet[12], packet[13], packet[14], packet[15]]);
        (0, rate)
    } else {
        return None;
    };
    if rate == 0 {
        return None;
    }
    // Every stream's first page comes before any other page (RFC 3533 §4).
    let mut other_streams = false;
    let mut rest = &head[page.len..];
    while let Some(next) = Page::parse(rest) {
        if !next.begins_stream() {
            break;
        }
        other_streams |= next.serial != page.serial;
        rest = &rest[next.len..];
    }
    Some(Stream {
        serial: page.serial,
        pre_skip,
        rate,
        other_streams,
    })
}

/// The granule position of the last complete page of stream `serial` in
/// `tail` (found from the end; its checksum rules out "OggS" inside packet data).
fn last_granule(tail: &[u8], serial: u32) -> Option<u64> {
    let mut end = tail.len();
    while let Some(at) = find_last(&tail[..end], b"OggS") {
        if let Some(page) = Page::parse(&tail[at..])
            && page.serial == serial
            // -1: no packet ends on the page; 0: a header page, no audio yet.
            && page.granule != u64::MAX
            && page.granule != 0
            && page.checksum_ok(&tail[at..at + page.len])
        {
            return Some(page.granule);
        }
        end = at;
    }
    None
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).rposition(|w| w == needle)
}

/// One page (RFC 3533 §6).
struct Page<'a> {
    header_type: u8,
    granule: u64,
    serial: u32,
    /// Its body (for a first page, the whole first packet).
    body: &'a [u8],
    /// Header and body.
    len: usize,
}

impl<'a> Page<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        if bytes.get(..4)? != b"OggS" || *bytes.get(4)? != 0 {
            return None;
        }
        let header = bytes.get(..27)?;
        let segments = usize::from(header[26]);
        let lacing = bytes.get(27..27 + segments)?;
        let body_len: usize = lacing.iter().map(|&l| usize::from(l)).sum();
        let start = 27 + segments;
        let body = bytes.get(start..start + body_len)?;
        Some(Self {
            header_type: header[5],
            granule: u64::from_le_bytes(header[6..14].try_into().ok()?),
            serial: u32::from_le_bytes(header[14..18].try_into().ok()?),
            body,
            len: start + body_len,
        })
    }

    fn begins_stream(&self) -> bool {
        self.header_type & 0x02 != 0
    }

    /// `page` is this page's bytes; the CRC field counts as zero.
    fn checksum_ok(&self, page: &[u8]) -> bool {
        let stored = u32::from_le_bytes([page[22], page[23], page[24], page[25]]);
        let mut crc = 0u32;
        for (i, &byte) in page.iter().enumerate() {
            let byte = if (22..26).contains(&i) { 0 } else { byte };
            crc = (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)];
        }
        crc == stored
    }
}

/// CRC-32 with polynomial 0x04C11DB7, unreflected, initial value 0 (Ogg's).
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut r = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            r = if r & 0x8000_0000 != 0 {
                (r << 1) ^ 0x04C1_1DB7
            } else {
                r << 1
            };
            bit += 1;
        }
        table[i] = r;
        i += 1;
    }
    table
};

/// Builds Ogg pages for tests: one packet a page (< 255 × 255 bytes).
#[cfg(test)]
pub(super) fn page(
    header_type: u8,
    granule: u64,
    serial: u32,
    sequence: u32,
    packet: &[u8],
) -> Vec<u8> {
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    let mut page = b"OggS\0".to_vec();
    page.push(header_type);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&serial.to_le_bytes());
    page.extend_from_slice(&sequence.to_le_bytes());
    page.extend_from_slice(&[0; 4]);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(packet);
    let mut crc = 0u32;
    for &byte in &page {
        crc = (crc << 8) ^ CRC_TABLE[usize::from((crc >> 24) as u8 ^ byte)];
    }
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opus_head(pre_skip: u16) -> Vec<u8> {
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        head
    }

    #[test]
    fn the_first_stream_and_the_last_granule_are_read() {
        let mut file = page(0x02, 0, 7, 0, &opus_head(312));
        file.extend(page(0, 0, 7, 1, b"OpusTags\0\0\0\0\0\0\0\0"));
        file.extend(page(0, 48_312, 7, 2, &[0xAB; 300]));
        // A false "OggS" in the last packet's data must not be taken for a page.
        let mut last = vec![0xCD; 40];
        last.splice(10..10, b"OggS\0\0\xff\xff".iter().copied());
        file.extend(page(0x04, 48_000 * 3 + 312, 7, 3, &last));
        let stream = first_stream(&file).unwrap();
        assert_eq!(
            (stream.pre_skip, stream.rate, stream.other_streams),
            (312, 48_000, false)
        );
        assert_eq!(last_granule(&file, 7), Some(48_000 * 3 + 312));
        // A corrupted last page: the one before counts.
        let n = file.len();
        file[n - 1] ^= 1;
        assert_eq!(last_granule(&file, 7), Some(48_312));
        // Another stream's pages are not this one's.
        assert_eq!(last_granule(&file, 8), None);
    }

    #[test]
    fn a_second_stream_or_a_video_is_noticed() {
        let mut file = page(0x02, 0, 1, 0, &opus_head(0));
        file.extend(page(0x02, 0, 2, 0, b"\x80theora..........."));
        assert!(first_stream(&file).unwrap().other_streams);
        assert!(first_stream(&page(0x02, 0, 1, 0, b"\x80theora...........")).is_none());
        assert!(first_stream(b"OggS").is_none());
    }
}
