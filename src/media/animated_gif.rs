//! GIFs, still or animated: re-encoded frame by frame from their palette
//! indices, so the colours, timing, disposal and looping stay exactly as they
//! were while everything else goes: comments, application extensions other
//! than the NETSCAPE loop count (XMP, ICC, anything), plain-text blocks, bytes
//! after the trailer, and the original LZW data (a GIF/JS polyglot hides its
//! script in those). The output is written by the `gif` encoder alone.

use std::fs::File;
use std::io::{BufReader, Seek};

use gif::{ColorOutput, DecodeOptions, DecodingError, Encoder, Frame, MemoryLimit, Repeat};
use image::{DynamicImage, RgbaImage};

use super::{
    MediaLimits, Processed, check_animation, check_size, invalid_image, picture, too_large,
};
use crate::domain::Invalid;

pub(super) fn process(mut file: File, limits: &MediaLimits) -> Result<Processed, Invalid> {
    file.rewind().map_err(super::unreadable)?;
    let summary = scan(BufReader::new(&mut file), limits)?;
    file.rewind().map_err(super::unreadable)?;
    let (stored, first) = reencode(BufReader::new(file), &summary, limits)?;
    picture::finish(
        &DynamicImage::ImageRgba8(first),
        "image/gif",
        stored,
        summary.frames > 1,
    )
}

/// What the first pass learnt, without decoding any pixel.
struct Summary {
    width: u16,
    height: u16,
    frames: usize,
    repeat: Repeat,
}

fn options(limits: &MediaLimits) -> DecodeOptions {
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::Indexed);
    // Indexed frames take a byte a pixel; one frame is held at a time.
    options.set_memory_limit(MemoryLimit::Bytes(
        std::num::NonZeroU64::new(limits.max_pixels.max(1)).unwrap_or(std::num::NonZeroU64::MIN),
    ));
    options
}

/// Reads every frame's header, skipping its data undecoded: the screen, each
/// frame and all the frames together are checked before anything is decoded.
fn scan(reader: BufReader<&mut File>, limits: &MediaLimits) -> Result<Summary, Invalid> {
    let mut options = options(limits);
    options.skip_frame_decoding(true);
    let mut decoder = options
        .read_info(reader)
        .map_err(|e| read_error(e, limits))?;
    let (width, height) = (decoder.width(), decoder.height());
    check_size(u32::from(width), u32::from(height), limits)?;
    let (mut frames, mut pixels) = (0usize, 0u64);
    while let Some(frame) = decoder
        .next_frame_info()
        .map_err(|e| read_error(e, limits))?
    {
        let (w, h) = (u32::from(frame.width), u32::from(frame.height));
        if w.max(h) > limits.max_side || u64::from(w) * u64::from(h) > limits.max_pixels {
            return Err(too_large(format!(
                "a frame of the GIF is {w}×{h} pixels, more than is accepted"
            )));
        }
        frames += 1;
        pixels += u64::from(w) * u64::from(h);
        check_animation(frames, pixels, limits)?;
    }
    if frames == 0 {
        return Err(invalid_image("the GIF has no frames"));
    }
    Ok(Summary {
        width,
        height,
        frames,
        repeat: decoder.repeat(),
    })
}

/// Decodes each frame to its indices and writes it again; the first frame
/// is also drawn on the screen for the thumbnails.
fn reencode(
    reader: BufReader<File>,
    summary: &Summary,
    limits: &MediaLimits,
) -> Result<(Vec<u8>, RgbaImage), Invalid> {
    let mut decoder = options(limits)
        .read_info(reader)
        .map_err(|e| read_error(e, limits))?;
    let global = decoder.global_palette().unwrap_or_default().to_vec();
    let mut encoder =
        Encoder::new(Vec::new(), summary.width, summary.height, &global).map_err(encode_error)?;
    if summary.frames > 1 {
        encoder.set_repeat(summary.repeat).map_err(encode_error)?;
    }
    let mut first: Option<RgbaImage> = None;
    while let Some(frame) = decoder
        .read_next_frame()
        .map_err(|e| read_error(e, limits))?
    {
        if first.is_none() {
            first = Some(draw_first(frame, &global, summary));
        }
        if frame.width == 0 || frame.height == 0 {
            continue;
        }
        let clean = Frame {
            delay: frame.delay,
            dispose: frame.dispose,
            transparent: frame.transparent,
            needs_user_input: false,
            top: frame.top,
            left: frame.left,
            width: frame.width,
            height: frame.height,
            // The decoder de-interlaces; the encoder writes rows in order.
            interlaced: false,
            palette: frame.palette.clone(),
            buffer: std::borrow::Cow::Borrowed(&frame.buffer),
        };
        encoder.write_frame(&clean).map_err(encode_error)?;
    }
    let stored = encoder.into_inner().map_err(encode_error)?;
    let first = first.ok_or_else(|| invalid_image("the GIF has no frames"))?;
    Ok((stored, first))
}

/// The first frame on a transparent screen: its pixels in its rectangle
/// (clipped to the screen), the transparent index and unknown colours left clear.
fn draw_first(frame: &Frame<'_>, global: &[u8], summary: &Summary) -> RgbaImage {
    let mut screen = RgbaImage::new(u32::from(summary.width), u32::from(summary.height));
    let palette = frame.palette.as_deref().unwrap_or(global);
    let width = usize::from(frame.width);
    for (i, &index) in frame
        .buffer
        .iter()
        .enumerate()
        .take(width * usize::from(frame.height))
    {
        if Some(index) == frame.transparent {
            continue;
        }
        let Some(rgb) = palette.get(usize::from(index) * 3..usize::from(index) * 3 + 3) else {
            continue;
        };
        let x = u32::from(frame.left) + (i % width) as u32;
        let y = u32::from(frame.top) + (i / width) as u32;
        if x < screen.width() && y < screen.height() {
            screen.put_pixel(x, y, image::Rgba([rgb[0], rgb[1], rgb[2], u8::MAX]));
        }
    }
    screen
}

fn read_error(err: DecodingError, limits: &MediaLimits) -> Invalid {
    match err {
        DecodingError::OutOfMemory => too_large(format!(
            "the GIF needs more memory to decode than is allowed (at most {} pixels a frame)",
            limits.max_pixels
        )),
        e => invalid_image(format!("the GIF could not be read: {e}")),
    }
}

fn encode_error(err: gif::EncodingError) -> Invalid {
    invalid_image(format!("the GIF could not be re-encoded: {err}"))
}
