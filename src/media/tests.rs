//! `process` on files built here byte by byte: every kind, the hostile cases
//! of issue 17 (bombs, polyglots, spoofed types, metadata), and the voice
//! durations.

use std::borrow::Cow;
use std::io::{Cursor, Write};
use std::time::{Duration, Instant};

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb, Rgba};

use super::matroska::element;
use super::mp4::{mp4_box, mvhd, trak};
use super::ogg::page;
use super::*;

fn run(bytes: &[u8], declared: &Declared) -> Result<Processed, Invalid> {
    run_with(bytes, declared, &MediaLimits::default())
}

fn run_with(bytes: &[u8], declared: &Declared, limits: &MediaLimits) -> Result<Processed, Invalid> {
    run_named(bytes, ".bin", declared, limits)
}

/// The upload under a name ending in `suffix` (which must not matter).
fn run_named(
    bytes: &[u8],
    suffix: &str,
    declared: &Declared,
    limits: &MediaLimits,
) -> Result<Processed, Invalid> {
    let mut file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    process(file.path(), declared, limits)
}

fn auto(bytes: &[u8]) -> Processed {
    run(bytes, &Declared::Auto).unwrap()
}

fn refused(bytes: &[u8], declared: &Declared) -> &'static str {
    run(bytes, declared).unwrap_err().code
}

fn voice(duration_ms: Option<u32>) -> Declared {
    Declared::Voice {
        duration_ms,
        waveform: None,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// A photo-like image: smooth gradients, `w`×`h`.
fn gradient(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(ImageBuffer::from_fn(w, h, |x, y| {
        Rgb([(x * 255 / w.max(1)) as u8, (y * 255 / h.max(1)) as u8, 128])
    }))
}

fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn decoded(bytes: &[u8]) -> DynamicImage {
    image::load_from_memory(bytes).unwrap()
}

// ---- PNG chunks and CRCs -------------------------------------------------

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc_input = kind.to_vec();
    crc_input.extend_from_slice(data);
    out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    out
}

/// Only the header of a `w`×`h` RGB PNG, then a little (bogus) data.
fn png_header_only(w: u32, h: u32, idat_bytes: usize) -> Vec<u8> {
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(b"IDAT", &vec![0x78; idat_bytes]));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

// ---- Files that are not images -----------------------------------------

#[test]
fn an_empty_file_is_refused() {
    assert_eq!(refused(b"", &Declared::Auto), "empty_file");
    assert_eq!(refused(b"", &voice(Some(1000))), "empty_file");
}

#[test]
fn html_named_png_is_a_file() {
    let html = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>";
    let out = run_named(html, ".png", &Declared::Auto, &MediaLimits::default()).unwrap();
    assert_eq!(out.kind, AttachmentKind::File);
    assert_eq!(out.mime, "text/html");
    assert!(out.replacement.is_none() && out.thumbnails.is_none());
    assert!(!inline_safe(out.kind, out.mime));
}

#[test]
fn svg_with_script_is_a_file() {
    let svg = br#"<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let out = run_named(svg, ".svg", &Declared::Auto, &MediaLimits::default()).unwrap();
    assert_eq!(out.kind, AttachmentKind::File);
    assert!(!out.mime.starts_with("image/"), "{}", out.mime);
    assert!(!inline_safe(out.kind, out.mime));
    // Without the XML declaration `infer` knows nothing: octet-stream.
    let bare = auto(br#"<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>"#);
    assert_eq!((bare.kind, bare.mime), (AttachmentKind::File, OCTET_STREAM));
}

#[test]
fn text_that_starts_like_a_signature_is_a_file() {
    let out = auto(b"GIF is how we pronounce it, and this is a text file.");
    assert_eq!((out.kind, out.mime), (AttachmentKind::File, OCTET_STREAM));
    let zip = auto(b"PK\x03\x04\x14\0\0\0\0\0 rest of an archive");
    assert_eq!(
        (zip.kind, zip.mime),
        (AttachmentKind::File, "application/zip")
    );
}

#[test]
fn a_png_named_exe_is_an_image() {
    let png = encoded(&gradient(40, 30), ImageFormat::Png);
    let out = run_named(&png, ".exe", &Declared::Auto, &MediaLimits::default()).unwrap();
    assert_eq!((out.kind, out.mime), (AttachmentKind::Image, "image/png"));
    assert_eq!((out.width, out.height), (Some(40), Some(30)));
}

#[test]
fn inline_is_only_for_shown_media() {
    use AttachmentKind::*;
    assert!(inline_safe(Image, "image/png"));
    assert!(inline_safe(Image, "IMAGE/JPEG"));
    assert!(inline_safe(Voice, "audio/webm;codecs=opus"));
    assert!(inline_safe(Video, "video/mp4"));
    for mime in [
        "image/svg+xml",
        "text/html",
        "text/xml",
        "application/javascript",
        "text/javascript",
    ] {
        for kind in [Image, File, Voice, Video] {
            assert!(!inline_safe(kind, mime), "{kind:?} {mime}");
        }
    }
    assert!(!inline_safe(File, "image/png"));
    assert!(!inline_safe(Image, "video/mp4"));
    assert!(!inline_safe(Voice, "video/webm"));
}

// ---- Images --------------------------------------------------------------

/// A TIFF block (big-endian) with Orientation = `orientation` and a GPS IFD
/// holding a latitude.
fn exif_tiff(orientation: u16) -> Vec<u8> {
    let mut t = b"MM\0\x2A\0\0\0\x08".to_vec();
    // IFD0: Orientation, GPS IFD pointer; no next IFD.
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0x01, 0x12, 0, 3, 0, 0, 0, 1]);
    t.extend_from_slice(&orientation.to_be_bytes());
    t.extend_from_slice(&[0, 0]);
    t.extend_from_slice(&[0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 38]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(t.len(), 38);
    // GPS IFD: GPSLatitudeRef "N", GPSLatitude 48° 51' 30".
    t.extend_from_slice(&2u16.to_be_bytes());
    t.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    t.extend_from_slice(&[0, 2, 0, 5, 0, 0, 0, 3, 0, 0, 0, 68]);
    t.extend_from_slice(&[0, 0, 0, 0]);
    assert_eq!(t.len(), 68);
    for v in [48u32, 51, 30] {
        t.extend_from_slice(&v.to_be_bytes());
        t.extend_from_slice(&1u32.to_be_bytes());
    }
    t
}

fn jpeg_segment(marker: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0xFF, marker];
    out.extend_from_slice(&(payload.len() as u16 + 2).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A 64×32 JPEG, left half red and right half blue, with EXIF (Orientation
/// = `orientation`, GPS), XMP and a comment right after SOI.
fn jpeg_with_metadata(orientation: u16) -> Vec<u8> {
    let image = DynamicImage::ImageRgb8(ImageBuffer::from_fn(64, 32, |x, _| {
        if x < 32 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    }));
    let plain = encoded(&image, ImageFormat::Jpeg);
    let mut exif = b"Exif\0\0".to_vec();
    exif.extend(exif_tiff(orientation));
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend(jpeg_segment(0xE1, &exif));
    jpeg.extend(jpeg_segment(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>secret place</x:xmpmeta>",
    ));
    jpeg.extend(jpeg_segment(0xFE, b"secret comment"));
    jpeg.extend_from_slice(&plain[2..]);
    jpeg
}

#[test]
fn jpeg_loses_exif_gps_xmp_and_comments_and_is_turned_upright() {
    let jpeg = jpeg_with_metadata(6);
    assert!(contains(&jpeg, b"Exif") && contains(&jpeg, b"MM\0\x2A"));
    let out = auto(&jpeg);
    assert_eq!((out.kind, out.mime), (AttachmentKind::Image, "image/jpeg"));
    // Orientation 6: turned a quarter clockwise, so 64×32 is shown 32×64.
    assert_eq!((out.width, out.height), (Some(32), Some(64)));
    let stored = out.replacement.as_deref().unwrap();
    for secret in [
        &b"Exif"[..],
        b"MM\0\x2A",
        b"xmpmeta",
        b"http://ns.adobe.com",
        b"secret",
    ] {
        assert!(
            !contains(stored, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    // The left (red) half is now on top.
    let image = decoded(stored).to_rgb8();
    assert_eq!(image.dimensions(), (32, 64));
    let (top, bottom) = (image.get_pixel(16, 8).0, image.get_pixel(16, 56).0);
    assert!(top[0] > 200 && top[2] < 60, "{top:?}");
    assert!(bottom[2] > 200 && bottom[0] < 60, "{bottom:?}");
    // Thumbnails and placeholder are upright too, and keep no metadata.
    let thumbnails = out.thumbnails.unwrap();
    assert_eq!(thumbnails.mime, "image/jpeg");
    assert_eq!(decoded(&thumbnails.large).to_rgb8().dimensions(), (32, 64));
    assert!(!contains(&thumbnails.small, b"Exif"));
}

#[test]
fn a_jpeg_without_orientation_keeps_its_size() {
    let out = auto(&jpeg_with_metadata(1));
    assert_eq!((out.width, out.height), (Some(64), Some(32)));
    assert!(!contains(out.replacement.as_deref().unwrap(), b"Exif"));
}

#[test]
fn a_truncated_jpeg_is_invalid() {
    let jpeg = encoded(&gradient(200, 150), ImageFormat::Jpeg);
    for cut in [jpeg.len() / 2, jpeg.len() - 2, 40] {
        assert_eq!(
            refused(&jpeg[..cut], &Declared::Auto),
            "invalid_image",
            "cut at {cut}"
        );
    }
    // Just the signature.
    assert_eq!(
        refused(&[0xFF, 0xD8, 0xFF], &Declared::Auto),
        "invalid_image"
    );
}

#[test]
fn a_jpeg_of_many_scans_is_refused() {
    let mut jpeg = vec![0xFF, 0xD8];
    for _ in 0..40 {
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2, 1, 2, 3]);
    }
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    assert_eq!(refused(&jpeg, &Declared::Auto), "image_too_large");
}

#[test]
fn png_loses_text_chunks_and_trailing_bytes() {
    let plain = encoded(&gradient(48, 24), ImageFormat::Png);
    // After the signature and IHDR (8 + 25 bytes).
    let mut png = plain[..33].to_vec();
    png.extend(png_chunk(b"tEXt", b"Comment\0secret text"));
    png.extend(png_chunk(b"eXIf", &exif_tiff(1)));
    png.extend_from_slice(&plain[33..]);
    png.extend_from_slice(b"TRAILING leftover of a cropped screenshot");
    let out = auto(&png);
    assert_eq!(
        (out.kind, out.width, out.height),
        (AttachmentKind::Image, Some(48), Some(24))
    );
    let stored = out.replacement.as_deref().unwrap();
    for secret in [&b"tEXt"[..], b"secret", b"eXIf", b"TRAILING"] {
        assert!(
            !contains(stored, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    assert!(stored.ends_with(&png_chunk(b"IEND", &[])));
    assert_eq!(decoded(stored).to_rgb8(), gradient(48, 24).to_rgb8());
}

#[test]
fn a_truncated_png_is_invalid() {
    let png = encoded(&gradient(300, 200), ImageFormat::Png);
    assert_eq!(
        refused(&png[..png.len() / 2], &Declared::Auto),
        "invalid_image"
    );
    assert_eq!(refused(&png[..20], &Declared::Auto), "invalid_image");
}

#[test]
fn bombs_are_refused_from_the_header_quickly() {
    let started = Instant::now();
    // 20 000 × 20 000: over the side limit.
    assert_eq!(
        refused(&png_header_only(20_000, 20_000, 64), &Declared::Auto),
        "image_too_large"
    );
    // A 100 KB PNG declaring 50 000 × 50 000.
    let big = png_header_only(50_000, 50_000, 100 * 1024);
    assert!(big.len() > 100 * 1024);
    assert_eq!(refused(&big, &Declared::Auto), "image_too_large");
    // Within the side limit, over the pixel limit (8000 × 6000 = 48 MP).
    assert_eq!(
        refused(&png_header_only(8000, 6000, 64), &Declared::Auto),
        "image_too_large"
    );
    // A 20 000 × 20 000 GIF screen with a 1×1 frame.
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&20_000u16.to_le_bytes());
    gif.extend_from_slice(&20_000u16.to_le_bytes());
    gif.extend_from_slice(&[
        0x80, 0, 0, 0, 0, 0, 255, 255, 255, 0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0,
        0x3B,
    ]);
    assert_eq!(refused(&gif, &Declared::Auto), "image_too_large");
    // A 16-bit RGBA PNG of 30 MP: within the pixels, over the bytes.
    let mut ihdr = 6000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&5000u32.to_be_bytes());
    ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
    let mut deep = b"\x89PNG\r\n\x1a\n".to_vec();
    deep.extend(png_chunk(b"IHDR", &ihdr));
    deep.extend(png_chunk(b"IDAT", &[0x78; 16]));
    assert_eq!(refused(&deep, &Declared::Auto), "image_too_large");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn limits_are_the_callers() {
    let png = encoded(&gradient(300, 200), ImageFormat::Png);
    let small = MediaLimits {
        max_side: 256,
        ..MediaLimits::default()
    };
    assert_eq!(
        run_with(&png, &Declared::Auto, &small).unwrap_err().code,
        "image_too_large"
    );
    let few = MediaLimits {
        max_pixels: 50_000,
        ..MediaLimits::default()
    };
    assert_eq!(
        run_with(&png, &Declared::Auto, &few).unwrap_err().code,
        "image_too_large"
    );
}

#[test]
fn thumbnails_fit_the_long_side_and_are_never_upscaled() {
    let out = auto(&encoded(&gradient(4000, 1000), ImageFormat::Png));
    let thumbnails = out.thumbnails.unwrap();
    assert_eq!(thumbnails.mime, "image/jpeg");
    assert_eq!(
        decoded(&thumbnails.large).to_rgb8().dimensions(),
        (1280, 320)
    );
    assert_eq!(decoded(&thumbnails.small).to_rgb8().dimensions(), (320, 80));
    let placeholder = out.placeholder.unwrap();
    assert!(placeholder.len() < 1024, "{}", placeholder.len());
    let png = STANDARD_B64
        .decode(placeholder.strip_prefix("data:image/png;base64,").unwrap())
        .unwrap();
    assert_eq!(decoded(&png).to_rgb8().dimensions(), (16, 4));

    let out = auto(&encoded(&gradient(100, 50), ImageFormat::Png));
    let thumbnails = out.thumbnails.unwrap();
    assert_eq!(decoded(&thumbnails.large).to_rgb8().dimensions(), (100, 50));
    assert_eq!(decoded(&thumbnails.small).to_rgb8().dimensions(), (100, 50));

    // A tall one: the long side is the height.
    let out = auto(&encoded(&gradient(600, 2400), ImageFormat::Jpeg));
    let thumbnails = out.thumbnails.unwrap();
    assert_eq!(
        decoded(&thumbnails.large).to_rgb8().dimensions(),
        (320, 1280)
    );
    assert_eq!(decoded(&thumbnails.small).to_rgb8().dimensions(), (80, 320));
}

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as STANDARD_B64;

#[test]
fn transparent_images_get_png_thumbnails_opaque_rgba_gets_jpeg() {
    let clear = DynamicImage::ImageRgba8(ImageBuffer::from_fn(50, 40, |x, _| {
        Rgba([200, 10, 10, if x < 25 { 0 } else { 255 }])
    }));
    let out = auto(&encoded(&clear, ImageFormat::Png));
    let thumbnails = out.thumbnails.unwrap();
    assert_eq!(thumbnails.mime, "image/png");
    assert_eq!(
        decoded(&thumbnails.small).to_rgba8().get_pixel(0, 0).0[3],
        0
    );
    let opaque = DynamicImage::ImageRgba8(ImageBuffer::from_pixel(50, 40, Rgba([1, 2, 3, 255])));
    assert_eq!(
        auto(&encoded(&opaque, ImageFormat::Png))
            .thumbnails
            .unwrap()
            .mime,
        "image/jpeg"
    );
}

#[test]
fn a_busy_image_still_gets_a_small_placeholder() {
    // Noise compresses badly: the placeholder shrinks until it fits.
    let mut seed = 7u32;
    let noise = DynamicImage::ImageRgba8(ImageBuffer::from_fn(64, 64, |_, _| {
        seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        let [a, b, c, d] = seed.to_le_bytes();
        Rgba([a, b, c, d | 1])
    }));
    let out = auto(&encoded(&noise, ImageFormat::Png));
    assert!(out.placeholder.unwrap().len() < 1024);
}

// ---- GIF -------------------------------------------------------------------

const PALETTE: [u8; 12] = [255, 0, 0, 0, 0, 255, 0, 255, 0, 255, 255, 255];

/// A `w`×`h` GIF of `frames` frames (frame i filled with colour i % 4), with
/// a comment and an XMP application extension.
fn gif_with(w: u16, h: u16, frames: usize) -> Vec<u8> {
    let mut encoder = gif::Encoder::new(Vec::new(), w, h, &PALETTE).unwrap();
    encoder.set_repeat(gif::Repeat::Infinite).unwrap();
    encoder
        .write_raw_extension(gif::AnyExtension(0xFE), &[b"secret comment"])
        .unwrap();
    encoder
        .write_raw_extension(
            gif::AnyExtension(0xFF),
            &[b"XMP DataXMP", b"<x:xmpmeta>secret</x:xmpmeta>"],
        )
        .unwrap();
    for i in 0..frames {
        let frame = gif::Frame {
            width: w,
            height: h,
            delay: 10,
            buffer: Cow::Owned(vec![(i % 4) as u8; usize::from(w) * usize::from(h)]),
            ..gif::Frame::default()
        };
        encoder.write_frame(&frame).unwrap();
    }
    encoder.into_inner().unwrap()
}

/// The frames of a GIF, as indices, and its loop count.
fn gif_frames(bytes: &[u8]) -> (Vec<Vec<u8>>, gif::Repeat) {
    let mut decoder = gif::DecodeOptions::new().read_info(bytes).unwrap();
    let mut frames = Vec::new();
    while let Some(frame) = decoder.read_next_frame().unwrap() {
        frames.push(frame.buffer.to_vec());
    }
    (frames, decoder.repeat())
}

#[test]
fn an_animated_gif_stays_animated_without_its_comment() {
    let gif = gif_with(30, 20, 2);
    assert!(contains(&gif, b"secret comment"));
    let out = auto(&gif);
    assert_eq!(
        (out.kind, out.mime, out.animated),
        (AttachmentKind::Image, "image/gif", true)
    );
    assert_eq!((out.width, out.height), (Some(30), Some(20)));
    let stored = out.replacement.unwrap();
    assert!(!contains(&stored, b"secret"));
    assert!(!contains(&stored, b"XMP"));
    let (frames, repeat) = gif_frames(&stored);
    assert_eq!(frames, vec![vec![0u8; 600], vec![1u8; 600]]);
    assert_eq!(repeat, gif::Repeat::Infinite);
    // The thumbnails are a still of the first (red) frame.
    let thumbnails = out.thumbnails.unwrap();
    assert_eq!(thumbnails.mime, "image/jpeg");
    let first = decoded(&thumbnails.large).to_rgb8();
    assert_eq!(first.dimensions(), (30, 20));
    assert!(first.get_pixel(5, 5).0[0] > 200);
}

#[test]
fn a_still_gif_is_not_animated() {
    let out = auto(&gif_with(10, 10, 1));
    assert!(!out.animated);
    assert_eq!(gif_frames(&out.replacement.unwrap()).0.len(), 1);
}

#[test]
fn a_gif_js_polyglot_comes_out_clean_or_not_at_all() {
    // "GIF89a/*" opens a JS comment: its width is 0x2A2F = 10 799 px.
    let mut polyglot = b"GIF89a/*\x0A\x00".to_vec();
    polyglot.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    polyglot.extend_from_slice(b"\x21\xFE\x0E*/=alert(1);/*\x00");
    polyglot.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0, 2, 2, 0x44, 0x01, 0, 0x3B]);
    polyglot.extend_from_slice(b"*/=alert(document.domain);");
    // Too wide for the default limits.
    assert_eq!(refused(&polyglot, &Declared::Auto), "image_too_large");
    // Within wider ones: re-encoded, no script left.
    let wide = MediaLimits {
        max_side: 20_000,
        ..MediaLimits::default()
    };
    let out = run_with(&polyglot, &Declared::Auto, &wide).unwrap();
    assert_eq!(out.kind, AttachmentKind::Image);
    let stored = out.replacement.unwrap();
    assert_ne!(stored, polyglot);
    assert!(!contains(&stored, b"alert"));
    assert!(!contains(&stored, b"*/"));
    // A small GIF carrying script in its comment and after its trailer.
    let mut small = gif_with(8, 8, 1);
    small.extend_from_slice(b"<script>alert(1)</script>");
    let stored = auto(&small).replacement.unwrap();
    assert!(!contains(&stored, b"alert") && !contains(&stored, b"secret"));
}

#[test]
fn a_truncated_gif_is_invalid() {
    let gif = gif_with(40, 40, 3);
    assert_eq!(
        refused(&gif[..gif.len() - 30], &Declared::Auto),
        "invalid_image"
    );
    assert_eq!(refused(&gif[..12], &Declared::Auto), "invalid_image");
}

#[test]
fn animations_are_bounded_by_their_frames_together() {
    // 5 frames of 100×100 against 4 × 10 000 pixels.
    let limits = MediaLimits {
        max_pixels: 10_000,
        ..MediaLimits::default()
    };
    let gif = gif_with(100, 100, 5);
    assert_eq!(
        run_with(&gif, &Declared::Auto, &limits).unwrap_err().code,
        "image_too_large"
    );
    assert!(run_with(&gif_with(100, 100, 4), &Declared::Auto, &limits).is_ok());
}

// ---- WebP ------------------------------------------------------------------

fn riff(chunks: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = b"WEBP"
        .iter()
        .copied()
        .chain(chunks.iter().flatten().copied())
        .collect();
    let mut out = b"RIFF".to_vec();
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend(body);
    out
}

fn webp_chunk(fourcc: &[u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut out = fourcc.to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(payload);
    if payload.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// The VP8L chunk of a lossless WebP of `image`, as `image` writes it.
fn vp8l(image: &DynamicImage) -> Vec<u8> {
    let simple = encoded(image, ImageFormat::WebP);
    assert_eq!(&simple[12..16], b"VP8L");
    simple[12..].to_vec()
}

fn vp8x(flags: u8, w: u32, h: u32) -> Vec<u8> {
    let mut payload = vec![flags, 0, 0, 0];
    payload.extend_from_slice(&(w - 1).to_le_bytes()[..3]);
    payload.extend_from_slice(&(h - 1).to_le_bytes()[..3]);
    webp_chunk(b"VP8X", &payload)
}

#[test]
fn a_still_webp_loses_exif_xmp_and_trailing_bytes() {
    let image = gradient(40, 20);
    let mut tiff = exif_tiff(1);
    tiff.extend_from_slice(b"secret");
    let mut webp = riff(&[
        vp8x(0x08 | 0x04 | 0x20, 40, 20),
        webp_chunk(b"ICCP", b"secret icc"),
        vp8l(&image),
        webp_chunk(b"EXIF", &tiff),
        webp_chunk(b"XMP ", b"<x:xmpmeta>secret</x:xmpmeta>"),
    ]);
    webp.extend_from_slice(b"secret trailer");
    let out = auto(&webp);
    assert_eq!(
        (out.kind, out.mime, out.animated),
        (AttachmentKind::Image, "image/webp", false)
    );
    assert_eq!((out.width, out.height), (Some(40), Some(20)));
    let stored = out.replacement.unwrap();
    for secret in [&b"secret"[..], b"EXIF", b"XMP ", b"ICCP", b"MM\0\x2A"] {
        assert!(
            !contains(&stored, secret),
            "{}",
            String::from_utf8_lossy(secret)
        );
    }
    // VP8X kept with its metadata flags cleared; the pixels are the same.
    assert_eq!(stored[20], 0);
    assert_eq!(decoded(&stored).to_rgb8(), image.to_rgb8());
}

#[test]
fn a_turned_still_webp_is_re_encoded_upright() {
    let webp = riff(&[
        vp8x(0x08, 40, 20),
        vp8l(&gradient(40, 20)),
        webp_chunk(b"EXIF", &exif_tiff(6)),
    ]);
    let out = auto(&webp);
    assert_eq!((out.width, out.height), (Some(20), Some(40)));
    let stored = out.replacement.unwrap();
    assert!(!contains(&stored, b"EXIF"));
    assert_eq!(decoded(&stored).to_rgb8().dimensions(), (20, 40));
}

#[test]
fn an_animated_webp_stays_animated_without_metadata() {
    let frame = |colour: [u8; 4]| {
        let image = DynamicImage::ImageRgba8(ImageBuffer::from_pixel(16, 16, Rgba(colour)));
        let mut payload = vec![0u8; 6];
        payload.extend_from_slice(&[15, 0, 0, 15, 0, 0]);
        payload.extend_from_slice(&[100, 0, 0, 0]);
        payload.extend(vp8l(&image));
        payload.extend(webp_chunk(b"XYZW", b"unknown"));
        webp_chunk(b"ANMF", &payload)
    };
    let webp = riff(&[
        vp8x(0x02 | 0x10 | 0x08, 16, 16),
        webp_chunk(b"ANIM", &[0, 0, 0, 0, 0, 0]),
        frame([255, 0, 0, 255]),
        frame([0, 0, 255, 255]),
        webp_chunk(b"EXIF", &exif_tiff(6)),
    ]);
    let out = auto(&webp);
    assert_eq!((out.kind, out.animated), (AttachmentKind::Image, true));
    // An animation's EXIF orientation is ignored (as browsers do).
    assert_eq!((out.width, out.height), (Some(16), Some(16)));
    let stored = out.replacement.unwrap();
    assert!(!contains(&stored, b"EXIF") && !contains(&stored, b"XYZW"));
    assert_eq!(stored.windows(4).filter(|w| w == b"ANMF").count(), 2);
    let first = decoded(&out.thumbnails.unwrap().large).to_rgb8();
    assert!(first.get_pixel(8, 8).0[0] > 200);
    // The decoder sees both frames of what is stored.
    use image::AnimationDecoder;
    let frames = image::codecs::webp::WebPDecoder::new(Cursor::new(&stored))
        .unwrap()
        .into_frames()
        .collect_frames()
        .unwrap();
    assert_eq!(frames.len(), 2);
    // Blue (the decoder blends, so within a unit).
    let [r, _, b, _] = frames[1].buffer().get_pixel(8, 8).0;
    assert!(r < 5 && b > 250, "{r} {b}");
}

#[test]
fn a_truncated_webp_is_invalid() {
    let webp = riff(&[vp8l(&gradient(40, 20))]);
    assert_eq!(
        refused(&webp[..webp.len() - 10], &Declared::Auto),
        "invalid_image"
    );
    assert_eq!(
        refused(b"RIFF\x04\0\0\0WEBP", &Declared::Auto),
        "invalid_image"
    );
}

// ---- Voice: Ogg ------------------------------------------------------------

fn opus_head(pre_skip: u16) -> Vec<u8> {
    let mut head = b"OpusHead\x01\x01".to_vec();
    head.extend_from_slice(&pre_skip.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&[0, 0, 0]);
    head
}

/// An Ogg Opus stream whose last page ends at `ms` milliseconds.
fn ogg_opus(ms: u64) -> Vec<u8> {
    let pre_skip = 312;
    let mut ogg = page(0x02, 0, 0x1234, 0, &opus_head(pre_skip));
    ogg.extend(page(0, 0, 0x1234, 1, b"OpusTags\x05\0\0\0Parley\0\0\0\0"));
    let end = ms * 48 + u64::from(pre_skip);
    ogg.extend(page(0, end / 2, 0x1234, 2, &[0x7A; 600]));
    ogg.extend(page(0x04, end, 0x1234, 3, &[0x7B; 400]));
    ogg
}

#[test]
fn ogg_opus_duration_comes_from_the_last_granule() {
    let out = run(&ogg_opus(12_000), &voice(None)).unwrap();
    assert_eq!((out.kind, out.mime), (AttachmentKind::Voice, "audio/ogg"));
    assert_eq!(out.duration_ms, Some(12_000));
    // The container wins over the recorder's figure.
    assert_eq!(
        run(&ogg_opus(12_000), &voice(Some(3_000)))
            .unwrap()
            .duration_ms,
        Some(12_000)
    );
    // Undeclared Ogg audio is a recording too.
    let out = auto(&ogg_opus(4_500));
    assert_eq!(
        (out.kind, out.duration_ms),
        (AttachmentKind::Voice, Some(4_500))
    );
    assert!(out.replacement.is_none() && out.thumbnails.is_none());
}

#[test]
fn waveforms_are_passed_through() {
    let waveform: Vec<u8> = (0..64).collect();
    let declared = Declared::Voice {
        duration_ms: None,
        waveform: Some(waveform.clone()),
    };
    assert_eq!(
        run(&ogg_opus(2_000), &declared).unwrap().waveform,
        Some(waveform)
    );
    assert_eq!(run(&ogg_opus(2_000), &voice(None)).unwrap().waveform, None);
}

#[test]
fn voice_over_the_limit_is_refused_or_a_file() {
    assert_eq!(refused(&ogg_opus(301_000), &voice(None)), "voice_too_long");
    let limits = MediaLimits {
        max_voice_ms: 10_000,
        ..MediaLimits::default()
    };
    assert_eq!(
        run_with(&ogg_opus(12_000), &voice(None), &limits)
            .unwrap_err()
            .code,
        "voice_too_long"
    );
    // Nobody said it was a voice message: a long piece of audio is a file.
    let out = run_with(&ogg_opus(12_000), &Declared::Auto, &limits).unwrap();
    assert_eq!((out.kind, out.mime), (AttachmentKind::File, "audio/opus"));
}

#[test]
fn vorbis_counts_at_its_sample_rate() {
    let mut id = b"\x01vorbis\0\0\0\0\x02".to_vec();
    id.extend_from_slice(&44_100u32.to_le_bytes());
    id.extend_from_slice(&[0; 14]);
    let mut ogg = page(0x02, 0, 9, 0, &id);
    ogg.extend(page(0x04, 44_100 * 7, 9, 1, &[1; 100]));
    let out = run(&ogg, &voice(None)).unwrap();
    assert_eq!((out.mime, out.duration_ms), ("audio/ogg", Some(7_000)));
}

#[test]
fn what_is_not_audio_is_not_a_voice_message() {
    let png = encoded(&gradient(10, 10), ImageFormat::Png);
    assert_eq!(refused(&png, &voice(Some(1000))), "invalid_voice");
    assert_eq!(
        refused(b"just some text", &voice(Some(1000))),
        "invalid_voice"
    );
    let theora = page(0x02, 0, 1, 0, b"\x80theora.................");
    assert_eq!(refused(&theora, &voice(Some(1000))), "invalid_voice");
    assert_eq!(auto(&theora).kind, AttachmentKind::File);
    // Ogg with no page after the header: the recorder's figure, else refused.
    let header_only = page(0x02, 0, 1, 0, &opus_head(0));
    assert_eq!(
        run(&header_only, &voice(Some(5_000))).unwrap().duration_ms,
        Some(5_000)
    );
    assert_eq!(refused(&header_only, &voice(None)), "invalid_voice");
}

// ---- Voice and video: WebM -------------------------------------------------

const SEGMENT_UNKNOWN: [u8; 12] = [
    0x18, 0x53, 0x80, 0x67, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
];

/// A WebM as Chrome's MediaRecorder writes it: EBML header, Segment of
/// unknown size, Info (Duration when given), Tracks, then a cluster with
/// blocks up to `last_block_ms`.
fn webm(duration: Option<f64>, video: Option<(u32, u32)>, last_block_ms: Option<i16>) -> Vec<u8> {
    let mut header = element(0x4286, &[1]);
    header.extend(element(0x4282, b"webm"));
    let mut out = element(0x1A45_DFA3, &header);
    out.extend_from_slice(&SEGMENT_UNKNOWN);
    let mut info = element(0x2A_D7B1, &[0x0F, 0x42, 0x40]);
    info.extend(element(0x4D80, b"Chrome"));
    if let Some(d) = duration {
        info.extend(element(0x4489, &d.to_be_bytes()));
    }
    out.extend(element(0x1549_A966, &info));
    let mut audio = element(0xD7, &[1]);
    audio.extend(element(0x83, &[2]));
    audio.extend(element(0x86, b"A_OPUS"));
    let mut tracks = element(0xAE, &audio);
    if let Some((w, h)) = video {
        let mut dims = element(0xB0, &(w as u16).to_be_bytes());
        dims.extend(element(0xBA, &(h as u16).to_be_bytes()));
        let mut entry = element(0xD7, &[2]);
        entry.extend(element(0x83, &[1]));
        entry.extend(element(0x86, b"V_VP8"));
        entry.extend(element(0xE0, &dims));
        tracks.extend(element(0xAE, &entry));
    }
    out.extend(element(0x1654_AE6B, &tracks));
    out.extend(element(0xEC, &[0; 300]));
    if let Some(last) = last_block_ms {
        out.extend_from_slice(&[0x1F, 0x43, 0xB6, 0x75, 0xFF]);
        out.extend(element(0xE7, &[0]));
        for offset in [0, last / 2, last] {
            let mut block = vec![0x81];
            block.extend_from_slice(&offset.to_be_bytes());
            block.push(0x80);
            block.extend_from_slice(&[0x55; 40]);
            out.extend(element(0xA3, &block));
        }
    }
    out
}

#[test]
fn webm_without_duration_takes_the_recorders_figure() {
    let out = run(&webm(None, None, None), &voice(Some(12_000))).unwrap();
    assert_eq!(
        (out.kind, out.mime, out.duration_ms),
        (AttachmentKind::Voice, "audio/webm", Some(12_000))
    );
    assert!(out.replacement.is_none());
    // Blocks that end before it do not change it.
    assert_eq!(
        run(&webm(None, None, Some(11_500)), &voice(Some(12_000)))
            .unwrap()
            .duration_ms,
        Some(12_000)
    );
    // No figure at all: refused.
    assert_eq!(
        refused(&webm(None, None, None), &voice(None)),
        "invalid_voice"
    );
}

#[test]
fn webm_duration_is_the_containers_when_present() {
    let out = run(&webm(Some(4_321.0), None, None), &voice(Some(12_000))).unwrap();
    assert_eq!(out.duration_ms, Some(4_321));
    let out = auto(&webm(Some(4_321.0), None, None));
    assert_eq!(
        (out.kind, out.duration_ms),
        (AttachmentKind::Voice, Some(4_321))
    );
}

#[test]
fn a_recorders_figure_cannot_hide_a_long_recording() {
    // It says 1 s; its blocks run to 30 s.
    let out = run(&webm(None, None, Some(30_000)), &voice(Some(1_000))).unwrap();
    assert_eq!(out.duration_ms, Some(30_000));
    let limits = MediaLimits {
        max_voice_ms: 20_000,
        ..MediaLimits::default()
    };
    let err = run_with(
        &webm(None, None, Some(30_000)),
        &voice(Some(1_000)),
        &limits,
    )
    .unwrap_err();
    assert_eq!(err.code, "voice_too_long");
    assert_eq!(
        refused(&webm(None, None, None), &voice(Some(400_000))),
        "voice_too_long"
    );
}

#[test]
fn webm_with_video_is_a_video_not_a_voice_message() {
    let file = webm(Some(8_000.0), Some((640, 360)), Some(7_900));
    assert_eq!(refused(&file, &voice(Some(8_000))), "invalid_voice");
    let out = auto(&file);
    assert_eq!((out.kind, out.mime), (AttachmentKind::Video, "video/webm"));
    assert_eq!(
        (out.width, out.height, out.duration_ms),
        (Some(640), Some(360), Some(8_000))
    );
    assert!(out.replacement.is_none() && out.thumbnails.is_none() && out.placeholder.is_none());
    assert!(inline_safe(out.kind, out.mime));
}

// ---- Voice and video: MP4 --------------------------------------------------

fn mp4(brand: &[u8; 4], traks: &[Vec<u8>], moov_first: bool) -> Vec<u8> {
    let mut ftyp = brand.to_vec();
    ftyp.extend_from_slice(&[0, 0, 2, 0]);
    ftyp.extend_from_slice(b"isomiso2mp41");
    let mut moov = mvhd(1000, 65_400);
    for t in traks {
        moov.extend_from_slice(t);
    }
    let moov = mp4_box(b"moov", &moov);
    let mdat = mp4_box(b"mdat", &[0x42; 5000]);
    let mut out = mp4_box(b"ftyp", &ftyp);
    if moov_first {
        out.extend(moov);
        out.extend(mdat);
    } else {
        out.extend(mdat);
        out.extend(moov);
    }
    out
}

#[test]
fn mp4_video_reports_its_size_and_duration() {
    let file = mp4(
        b"isom",
        &[trak(b"vide", 1920, 1080, true), trak(b"soun", 0, 0, false)],
        false,
    );
    let out = auto(&file);
    assert_eq!((out.kind, out.mime), (AttachmentKind::Video, "video/mp4"));
    assert_eq!(
        (out.width, out.height, out.duration_ms),
        (Some(1080), Some(1920), Some(65_400))
    );
    assert!(out.replacement.is_none());
    assert_eq!(refused(&file, &voice(None)), "invalid_voice");
}

#[test]
fn mp4_audio_is_a_voice_message() {
    // Safari records into an ordinary brand: the handler says audio.
    let safari = mp4(b"iso5", &[trak(b"soun", 0, 0, false)], true);
    let out = run(&safari, &voice(Some(1_000))).unwrap();
    assert_eq!(
        (out.kind, out.mime, out.duration_ms),
        (AttachmentKind::Voice, "audio/mp4", Some(65_400))
    );
    let m4a = mp4(b"M4A ", &[trak(b"soun", 0, 0, false)], true);
    assert_eq!(run(&m4a, &voice(None)).unwrap().mime, "audio/mp4");
}

// ---- Never a panic -----------------------------------------------------------

#[test]
fn cut_and_corrupted_files_never_panic() {
    let samples = [
        encoded(&gradient(33, 17), ImageFormat::Png),
        encoded(&gradient(33, 17), ImageFormat::Jpeg),
        gif_with(9, 7, 3),
        riff(&[vp8l(&gradient(20, 10))]),
        ogg_opus(3_000),
        webm(None, Some((320, 240)), Some(1_000)),
        mp4(b"isom", &[trak(b"vide", 64, 48, false)], true),
    ];
    let mut seed = 1u32;
    for sample in &samples {
        for cut in (1..sample.len()).step_by((sample.len() / 40).max(1)) {
            let _ = run(&sample[..cut], &Declared::Auto);
            let _ = run(&sample[..cut], &voice(Some(1_000)));
        }
        for _ in 0..40 {
            let mut broken = sample.clone();
            for _ in 0..4 {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let at = (seed as usize >> 8) % broken.len();
                broken[at] = (seed >> 24) as u8;
            }
            let _ = run(&broken, &Declared::Auto);
            let _ = run(&broken, &voice(None));
        }
    }
}
