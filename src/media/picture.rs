//! Still images (PNG, JPEG, WebP): decoded within the limits, turned upright,
//! stored without their metadata; and the thumbnails and placeholder of every
//! image, animations' first frames included.

use std::fs::File;
use std::io::{BufRead, BufReader, Cursor, Seek};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits};

use super::{MediaLimits, Processed, Thumbnails, check_size, invalid_image, jpeg, too_large, webp};
use crate::domain::Invalid;
use crate::domain::attachment::{AttachmentKind, THUMBNAIL_LARGE, THUMBNAIL_SMALL};

/// Quality of a re-encoded JPEG: visually the same as a camera's, about as large.
const JPEG_QUALITY: u8 = 90;
/// Quality of JPEG thumbnails: seen small, loaded often.
const THUMBNAIL_QUALITY: u8 = 80;
/// Scans a JPEG may have: each is a pass over all the image's coefficients;
/// at 16 M pixels a progressive file of 98 scans took 1.7 s to decode, the
/// usual 10 take 0.4 s (see `images::Bounds::max_jpeg_scans`).
const MAX_JPEG_SCANS: usize = 32;
/// Longest side of the placeholder, and the smaller sizes tried when a busy
/// image does not fit in `MAX_PLACEHOLDER_BYTES` at that size.
const PLACEHOLDER_SIDES: [u32; 4] = [16, 12, 8, 4];
const MAX_PLACEHOLDER_BYTES: usize = 1024;
/// What a decoder may allocate besides the image itself (PNG text chunks,
/// WebP frame buffers, …).
const DECODER_SLACK_BYTES: u64 = 64 * 1024 * 1024;

/// A PNG: re-encoded from its pixels, so text, eXIf and iTXt chunks and
/// anything after IEND (aCropalypse's leftover data) are gone.
pub(super) fn png(file: File, limits: &MediaLimits) -> Result<Processed, Invalid> {
    let (mut image, orientation) = decode(BufReader::new(file), ImageFormat::Png, limits)?;
    image.apply_orientation(orientation);
    let stored = encode_png(&image, CompressionType::Default)?;
    finish(&image, "image/png", stored, false)
}

/// A JPEG: upright after its EXIF orientation, re-encoded, so EXIF (GPS),
/// XMP, ICC, IPTC and comments are gone.
pub(super) fn jpeg(mut file: File, limits: &MediaLimits) -> Result<Processed, Invalid> {
    // zune-jpeg pads a truncated file with grey instead of failing, and the
    // number of scans decides the decoding time: walk the markers first.
    let structure = jpeg::walk(BufReader::new(&mut file)).map_err(super::unreadable)?;
    if structure.scans > MAX_JPEG_SCANS {
        return Err(too_large(format!(
            "the JPEG has {} scans; at most {MAX_JPEG_SCANS} are accepted (save it as baseline or standard progressive)",
            structure.scans
        )));
    }
    if !structure.complete {
        return Err(invalid_image("the JPEG is truncated or corrupt"));
    }
    file.rewind().map_err(super::unreadable)?;
    let (mut image, orientation) = decode(BufReader::new(file), ImageFormat::Jpeg, limits)?;
    image.apply_orientation(orientation);
    let stored = encode_jpeg(&image, JPEG_QUALITY)?;
    finish(&image, "image/jpeg", stored, false)
}

/// A WebP. Its RIFF chunks are rewritten keeping only the image data
/// (VP8/VP8L, ALPH, and for an animation VP8X, ANIM and the frames): a lossy
/// photo stays as small as it came, with EXIF, XMP, ICC and unknown chunks
/// gone; re-encoding would make it lossless and many times larger. Only a
/// still WebP whose EXIF turns it (rare) is decoded, turned and re-encoded,
/// losslessly, as `image` can write no other WebP.
pub(super) fn webp(file: File, len: u64, limits: &MediaLimits) -> Result<Processed, Invalid> {
    let bytes = super::read_all(file, len)?;
    let parsed = webp::parse(&bytes)?;
    let (width, height) = parsed.canvas;
    check_size(width, height, limits)?;
    if parsed.frames > 1 || parsed.animated {
        let pixels = u64::from(width) * u64::from(height);
        super::check_animation(
            parsed.frames,
            pixels.saturating_mul(parsed.frames as u64),
            limits,
        )?;
    }
    let orientation = parsed
        .exif
        // The chunk is a TIFF block; some writers put JPEG's "Exif\0\0" before it.
        .map(|exif| exif.strip_prefix(b"Exif\0\0").unwrap_or(exif))
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let rewritten = webp::rewrite(&bytes, &parsed);
    let (animation, animated) = (parsed.animated, parsed.frames > 1);
    drop(parsed);
    drop(bytes);
    // Decoded from what is stored, so what is stored is known to decode
    // (for an animation: its first frame, the thumbnail's).
    let (mut image, _) = decode(Cursor::new(&rewritten), ImageFormat::WebP, limits)?;
    let stored = if !animation && orientation != Orientation::NoTransforms {
        image.apply_orientation(orientation);
        encode_webp_lossless(&image)?
    } else {
        rewritten
    };
    finish(&image, "image/webp", stored, animated)
}

/// Decodes within `limits`: the size from the header is checked before any
/// pixel is allocated, and `image::Limits` bounds the decoder's own buffers.
pub(super) fn decode<R: BufRead + Seek>(
    reader: R,
    format: ImageFormat,
    limits: &MediaLimits,
) -> Result<(DynamicImage, Orientation), Invalid> {
    let mut reader = ImageReader::with_format(reader, format);
    reader.limits(decoder_limits(limits));
    // Reads the header only.
    let mut decoder = reader.into_decoder().map_err(|e| read_error(e, limits))?;
    let (width, height) = decoder.dimensions();
    check_size(width, height, limits)?;
    if decoder.total_bytes() > limits.max_decoded_bytes() {
        return Err(too_large(format!(
            "the image is {width}×{height} at {} bytes a pixel, too much to process; save it with 8 bits per channel or make it smaller",
            decoder.total_bytes() / (u64::from(width) * u64::from(height))
        )));
    }
    // A broken EXIF block costs the orientation, not the image.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| read_error(e, limits))?;
    Ok((image, orientation))
}

fn decoder_limits(limits: &MediaLimits) -> Limits {
    let mut decoder = Limits::default();
    decoder.max_image_width = Some(limits.max_side);
    decoder.max_image_height = Some(limits.max_side);
    decoder.max_alloc = Some(
        limits
            .max_decoded_bytes()
            .saturating_add(DECODER_SLACK_BYTES),
    );
    decoder
}

fn read_error(err: ImageError, limits: &MediaLimits) -> Invalid {
    match err {
        ImageError::Limits(_) => too_large(format!(
            "the image needs more memory to decode than is allowed (at most {} pixels on a side and {} pixels)",
            limits.max_side, limits.max_pixels
        )),
        e => invalid_image(format!("the image could not be read: {e}")),
    }
}

/// The image's `Processed`, with its thumbnails and placeholder made from
/// `image` (upright; an animation's first frame).
pub(super) fn finish(
    image: &DynamicImage,
    mime: &'static str,
    stored: Vec<u8>,
    animated: bool,
) -> Result<Processed, Invalid> {
    let (thumbnails, placeholder) = previews(image)?;
    Ok(Processed {
        kind: AttachmentKind::Image,
        mime,
        width: Some(image.width()),
        height: Some(image.height()),
        animated,
        duration_ms: None,
        waveform: None,
        placeholder: Some(placeholder),
        replacement: Some(stored),
        thumbnails: Some(thumbnails),
    })
}

/// The two thumbnails (the small one made from the large, which is much
/// cheaper than from the original and looks the same) and the placeholder.
fn previews(image: &DynamicImage) -> Result<(Thumbnails, String), Invalid> {
    let large = fit(image, THUMBNAIL_LARGE);
    let large: &DynamicImage = large.as_ref().unwrap_or(image);
    let small = fit(large, THUMBNAIL_SMALL);
    let small: &DynamicImage = small.as_ref().unwrap_or(large);
    let transparent = has_transparency(large);
    let encode = |image: &DynamicImage| {
        if transparent {
            encode_png(image, CompressionType::Default)
        } else {
            encode_jpeg(image, THUMBNAIL_QUALITY)
        }
    };
    let thumbnails = Thumbnails {
        mime: if transparent {
            "image/png"
        } else {
            "image/jpeg"
        },
        large: encode(large)?,
        small: encode(small)?,
    };
    Ok((thumbnails, placeholder(small, transparent)?))
}

/// `image` scaled down to `side` on its long side, aspect kept; `None` when
/// it is no larger already (never upscaled). A box filter: each source pixel
/// counts once, which is what downscaling a photo needs, and fast.
fn fit(image: &DynamicImage, side: u32) -> Option<DynamicImage> {
    let (width, height) = (image.width(), image.height());
    let long = width.max(height);
    if long <= side {
        return None;
    }
    let scale = |v: u32| {
        let scaled = (u64::from(v) * u64::from(side) + u64::from(long) / 2) / u64::from(long);
        u32::try_from(scaled).unwrap_or(side).clamp(1, side)
    };
    Some(image.thumbnail_exact(scale(width), scale(height)))
}

/// Whether any pixel is less than opaque (an RGBA PNG is often opaque: its
/// thumbnails are then JPEGs, far smaller).
fn has_transparency(image: &DynamicImage) -> bool {
    if !image.color().has_alpha() {
        return false;
    }
    match image {
        DynamicImage::ImageRgba8(i) => i.pixels().any(|p| p.0[3] != u8::MAX),
        DynamicImage::ImageLumaA8(i) => i.pixels().any(|p| p.0[1] != u8::MAX),
        other => other.to_rgba8().pixels().any(|p| p.0[3] != u8::MAX),
    }
}

/// A PNG of at most 16 px on the long side as a `data:` URL under 1 KB (a
/// smaller size when a busy image needs it).
fn placeholder(image: &DynamicImage, transparent: bool) -> Result<String, Invalid> {
    let mut url = String::new();
    for side in PLACEHOLDER_SIDES {
        let tiny = fit(image, side);
        let tiny = tiny.as_ref().unwrap_or(image);
        let tiny = if transparent {
            DynamicImage::ImageRgba8(tiny.to_rgba8())
        } else {
            DynamicImage::ImageRgb8(tiny.to_rgb8())
        };
        let png = encode_png(&tiny, CompressionType::Best)?;
        url = format!("data:image/png;base64,{}", STANDARD.encode(png));
        if url.len() < MAX_PLACEHOLDER_BYTES {
            break;
        }
    }
    Ok(url)
}

fn encode_png(image: &DynamicImage, compression: CompressionType) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut out, compression, FilterType::Adaptive);
    let written = match image {
        DynamicImage::ImageLuma8(_)
        | DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageRgb8(_)
        | DynamicImage::ImageRgba8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_)
        | DynamicImage::ImageRgb16(_)
        | DynamicImage::ImageRgba16(_) => image.write_with_encoder(encoder),
        // Floating point (no PNG decoder makes it): 8 bits are plenty.
        other => DynamicImage::ImageRgba8(other.to_rgba8()).write_with_encoder(encoder),
    };
    written.map_err(encode_error)?;
    Ok(out)
}

/// JPEG has no alpha: an opaque image's alpha channel (all 255) is dropped.
fn encode_jpeg(image: &DynamicImage, quality: u8) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::new();
    let encoder = JpegEncoder::new_with_quality(&mut out, quality);
    let written = match image {
        DynamicImage::ImageLuma8(_) | DynamicImage::ImageRgb8(_) => {
            image.write_with_encoder(encoder)
        }
        DynamicImage::ImageLumaA8(_)
        | DynamicImage::ImageLuma16(_)
        | DynamicImage::ImageLumaA16(_) => {
            DynamicImage::ImageLuma8(image.to_luma8()).write_with_encoder(encoder)
        }
        other => DynamicImage::ImageRgb8(other.to_rgb8()).write_with_encoder(encoder),
    };
    written.map_err(encode_error)?;
    Ok(out)
}

fn encode_webp_lossless(image: &DynamicImage) -> Result<Vec<u8>, Invalid> {
    let mut out = Vec::new();
    let encoder = WebPEncoder::new_lossless(&mut out);
    let written = match image {
        DynamicImage::ImageRgb8(_) | DynamicImage::ImageRgba8(_) => {
            image.write_with_encoder(encoder)
        }
        other => DynamicImage::ImageRgba8(other.to_rgba8()).write_with_encoder(encoder),
    };
    written.map_err(encode_error)?;
    Ok(out)
}

/// Encoding into memory fails only for an image `image` cannot write (it has
/// been decoded, so it is not the client's fault; said as invalid_image all the same).
fn encode_error(err: ImageError) -> Invalid {
    invalid_image(format!("the image could not be re-encoded: {err}"))
}
