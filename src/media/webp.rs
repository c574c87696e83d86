//! WebP's RIFF container, read and rewritten with the image data only.
//!
//! Kept: VP8X (its ICC, EXIF and XMP flags cleared), ANIM and the ANMF frames
//! (each with only its ALPH and VP8/VP8L), ALPH, VP8 and VP8L. Dropped: ICCP,
//! EXIF, XMP, unknown chunks and anything after the RIFF's end. The RIFF
//! header and every chunk header are written anew.

use super::invalid_image;
use crate::domain::Invalid;

const VP8X_ALPHA: u8 = 0x10;
const VP8X_ANIMATION: u8 = 0x02;

/// One chunk as found: its type and payload (without the padding byte).
#[derive(Debug, Clone, Copy)]
struct Chunk<'a> {
    fourcc: [u8; 4],
    payload: &'a [u8],
}

/// What `parse` learnt of a WebP.
#[derive(Debug)]
pub(super) struct Parsed<'a> {
    /// The canvas (VP8X) or the bitstream's size.
    pub canvas: (u32, u32),
    /// VP8X says it is an animation.
    pub animated: bool,
    /// ANMF chunks; 1 for a still image.
    pub frames: usize,
    /// The EXIF chunk, for its orientation (dropped all the same).
    pub exif: Option<&'a [u8]>,
    kept: Vec<Chunk<'a>>,
}

/// Reads the chunks of a whole WebP file and checks it has what a WebP needs.
pub(super) fn parse(bytes: &[u8]) -> Result<Parsed<'_>, Invalid> {
    let broken = |what: &str| invalid_image(format!("the WebP is truncated or corrupt: {what}"));
    if bytes.len() < 12 || &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WEBP" {
        return Err(broken("no RIFF header"));
    }
    let riff_end = 8 + u32_le(&bytes[4..8]) as usize;
    if riff_end > bytes.len() {
        return Err(broken("the file is shorter than its header says"));
    }
    let chunks = chunks(&bytes[12..riff_end]).ok_or_else(|| broken("a chunk runs past the end"))?;
    let first = chunks.first().ok_or_else(|| broken("no chunks"))?;
    let exif = chunks
        .iter()
        .find(|c| &c.fourcc == b"EXIF")
        .map(|c| c.payload);
    if &first.fourcc != b"VP8X" {
        // The simple format: one VP8 or VP8L chunk is the whole image.
        let image = chunks
            .iter()
            .find(|c| &c.fourcc == b"VP8 " || &c.fourcc == b"VP8L")
            .copied()
            .ok_or_else(|| broken("no image data"))?;
        let canvas = bitstream_size(&image).ok_or_else(|| broken("no image size"))?;
        return Ok(Parsed {
            canvas,
            animated: false,
            frames: 1,
            exif,
            kept: vec![image],
        });
    }
    let vp8x = first.payload;
    if vp8x.len() < 10 {
        return Err(broken("a short VP8X chunk"));
    }
    let animated = vp8x[0] & VP8X_ANIMATION != 0;
    let canvas = (1 + u24_le(&vp8x[4..7]), 1 + u24_le(&vp8x[7..10]));
    let mut kept = vec![*first];
    let frames;
    if animated {
        kept.extend(chunks.iter().filter(|c| &c.fourcc == b"ANIM").take(1));
        let anmf: Vec<Chunk<'_>> = chunks
            .iter()
            .filter(|c| &c.fourcc == b"ANMF")
            .copied()
            .collect();
        if kept.len() < 2 || anmf.is_empty() {
            return Err(broken("an animation without ANIM or frames"));
        }
        if anmf
            .iter()
            .any(|f| f.payload.len() < 16 || frame_chunks(f.payload).is_none())
        {
            return Err(broken("a frame without image data"));
        }
        frames = anmf.len();
        kept.extend(anmf);
    } else {
        let image = chunks
            .iter()
            .find(|c| &c.fourcc == b"VP8 " || &c.fourcc == b"VP8L")
            .ok_or_else(|| broken("no image data"))?;
        // An ALPH goes with a VP8 only (VP8L carries its own alpha).
        if &image.fourcc == b"VP8 " {
            kept.extend(chunks.iter().filter(|c| &c.fourcc == b"ALPH").take(1));
        }
        kept.push(*image);
        frames = 1;
    }
    Ok(Parsed {
        canvas,
        animated,
        frames,
        exif,
        kept,
    })
}

/// The WebP made of the kept chunks only.
pub(super) fn rewrite(original: &[u8], parsed: &Parsed<'_>) -> Vec<u8> {
    let mut body = Vec::with_capacity(original.len());
    body.extend_from_slice(b"WEBP");
    for chunk in &parsed.kept {
        match &chunk.fourcc {
            b"VP8X" => {
                let mut vp8x = [0u8; 10];
                vp8x[0] = chunk.payload[0] & (VP8X_ALPHA | VP8X_ANIMATION);
                vp8x[4..10].copy_from_slice(&chunk.payload[4..10]);
                put_chunk(&mut body, b"VP8X", &vp8x);
            }
            b"ANMF" => {
                let mut frame = chunk.payload[..16].to_vec();
                for part in frame_chunks(chunk.payload).unwrap_or_default() {
                    put_chunk(&mut frame, &part.fourcc, part.payload);
                }
                put_chunk(&mut body, b"ANMF", &frame);
            }
            fourcc => put_chunk(&mut body, fourcc, chunk.payload),
        }
    }
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(b"RIFF");
    // Within the original's RIFF size, itself a u32.
    out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// A frame's ALPH and VP8/VP8L (after its 16-byte header); `None` if it has
/// no image data or a sub-chunk runs past its end.
fn frame_chunks(payload: &[u8]) -> Option<Vec<Chunk<'_>>> {
    let parts = chunks(payload.get(16..)?)?;
    let image = parts
        .iter()
        .find(|c| &c.fourcc == b"VP8 " || &c.fourcc == b"VP8L")?;
    let mut kept = Vec::with_capacity(2);
    // An ALPH goes with a VP8 only (VP8L carries its own alpha).
    if &image.fourcc == b"VP8 " {
        kept.extend(parts.iter().filter(|c| &c.fourcc == b"ALPH").take(1));
    }
    kept.push(*image);
    Some(kept)
}

fn chunks(mut data: &[u8]) -> Option<Vec<Chunk<'_>>> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let header = data.get(..8)?;
        let size = u32_le(&header[4..8]) as usize;
        let payload = data.get(8..8usize.checked_add(size)?)?;
        out.push(Chunk {
            fourcc: [header[0], header[1], header[2], header[3]],
            payload,
        });
        // Payloads are padded to an even size; a missing last pad byte is
        // forgiven (some writers leave it out).
        let next = (8 + size + (size & 1)).min(data.len());
        data = &data[next..];
    }
    Some(out)
}

fn put_chunk(out: &mut Vec<u8>, fourcc: &[u8; 4], payload: &[u8]) {
    out.extend_from_slice(fourcc);
    out.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
}

/// The size a VP8 or VP8L bitstream declares.
fn bitstream_size(chunk: &Chunk<'_>) -> Option<(u32, u32)> {
    let p = chunk.payload;
    if &chunk.fourcc == b"VP8L" {
        if *p.first()? != 0x2F {
            return None;
        }
        let bits = u32_le(p.get(1..5)?);
        return Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1));
    }
    // A key frame: 3-byte tag, start code, then 14-bit width and height.
    let header = p.get(3..10)?;
    if header[..3] != [0x9D, 0x01, 0x2A] {
        return None;
    }
    let width = u32::from(u16::from_le_bytes([header[3], header[4]]) & 0x3FFF);
    let height = u32::from(u16::from_le_bytes([header[5], header[6]]) & 0x3FFF);
    Some((width, height))
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

fn u24_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], 0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn riff(chunks: &[u8]) -> Vec<u8> {
        let mut out = b"RIFF".to_vec();
        out.extend_from_slice(&(chunks.len() as u32 + 4).to_le_bytes());
        out.extend_from_slice(b"WEBP");
        out.extend_from_slice(chunks);
        out
    }

    #[test]
    fn short_and_odd_chunks_are_refused_not_panicked_on() {
        // A VP8 key-frame header cut after its start code.
        assert!(parse(&riff(b"VP8 \x06\0\0\0\0\0\0\x9D\x01\x2A")).is_err());
        assert!(parse(&riff(b"VP8L\x01\0\0\0\x2F\0")).is_err());
        assert!(parse(&riff(b"VP8X\x04\0\0\0\x02\0\0\0")).is_err());
        // A chunk longer than the file.
        assert!(parse(&riff(b"VP8L\xFF\0\0\0\x2F")).is_err());
        // An animation flag with no frames.
        let mut vp8x = b"VP8X\x0A\0\0\0\x02\0\0\0\0\0\0\0\0\0".to_vec();
        vp8x.extend_from_slice(b"ANIM\x06\0\0\0\0\0\0\0\0\0");
        assert!(parse(&riff(&vp8x)).is_err());
    }

    #[test]
    fn a_vp8_size_is_read_from_its_key_frame() {
        let chunk = Chunk {
            fourcc: *b"VP8 ",
            payload: &[0, 0, 0, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x41],
        };
        // 14-bit fields; the top two bits are the scale.
        assert_eq!(bitstream_size(&chunk), Some((640, 480)));
    }
}
