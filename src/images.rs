//! Untrusted images (avatars today; attachments and thumbnails later).
//!
//! A few bytes can describe an image far too large to decode: a 160-byte PNG
//! of 8192×1 pixels, a 35-byte GIF with an 8192×8192 logical screen, a highly
//! compressible 8192×8192 image. So what an image may be is checked from its
//! header, before any pixel is allocated; the output size is computed from the
//! header too (crop to the target's aspect first, then scale down, never up), so
//! a strip is never stretched across the target; and `image::Limits` bounds the
//! decoder's own allocations as a second line of defence. The CPU work runs on
//! blocking threads through `pool::ImagePool`, a few at once.
//!
//! `examples/image_bombs.rs` (run by `bench/image-bombs.sh`) measures what the
//! hostile cases cost; the figures are in docs/api.md.

use std::io::Cursor;

use image::imageops::{self, FilterType};
use image::{
    DynamicImage, ImageBuffer, ImageDecoder, ImageError, ImageFormat, ImageReader, Limits, Pixel,
};

use crate::domain::Invalid;

pub mod pool;

pub use pool::{ImagePool, PoolError};

/// What an image may be, checked from its header before it is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Longest side, in pixels.
    pub max_side: u32,
    /// Width × height.
    pub max_pixels: u64,
    /// Longer side over shorter side.
    pub max_aspect: u32,
    /// Size of the decoded image in memory (pixels × bytes per pixel of its
    /// colour type: 16-bit RGBA takes 8 bytes a pixel).
    pub max_decoded_bytes: u64,
    /// What the decoder may allocate besides the image (a GIF frame that does
    /// not fill the screen, PNG text chunks, ...): `image::Limits::max_alloc`.
    pub max_decoder_alloc: u64,
    /// Scans in a JPEG. Each is a pass over all the image's coefficients: at
    /// 16 M pixels a progressive file of 98 scans takes 1.7 s to decode, the
    /// usual 10 take 0.4 s.
    pub max_jpeg_scans: usize,
}

impl Bounds {
    /// Any uploaded image. 16 M pixels is a 4096×4096 picture or a 16 MP photo
    /// (phones take 12 MP by default); 1:20 leaves room for long screenshots.
    /// With these, the worst images measured (docs/api.md) stay under 256 MiB
    /// and 2 s.
    pub const UPLOAD: Bounds = Bounds {
        max_side: 8192,
        max_pixels: 16 * 1024 * 1024,
        max_aspect: 20,
        max_decoded_bytes: 128 * 1024 * 1024,
        max_decoder_alloc: 64 * 1024 * 1024,
        max_jpeg_scans: 32,
    };

    /// Refuses an image of `width`×`height` taking `decoded_bytes` once decoded.
    pub fn check(&self, width: u32, height: u32, decoded_bytes: u64) -> Result<(), Invalid> {
        if width == 0 || height == 0 {
            return Err(Invalid::new("invalid_image", "the image has no pixels"));
        }
        if width > self.max_side || height > self.max_side {
            return Err(too_large(format!(
                "the image is {width}×{height} pixels; at most {} on a side is accepted",
                self.max_side
            )));
        }
        let pixels = u64::from(width) * u64::from(height);
        if pixels > self.max_pixels {
            return Err(too_large(format!(
                "the image is {width}×{height}, {pixels} pixels; at most {} are accepted (4096×4096)",
                self.max_pixels
            )));
        }
        let (long, short) = (width.max(height), width.min(height));
        if u64::from(long) > u64::from(short) * u64::from(self.max_aspect) {
            return Err(Invalid::new(
                "image_aspect_ratio",
                format!(
                    "the image is {width}×{height}; its longer side may be at most {} times its shorter side",
                    self.max_aspect
                ),
            ));
        }
        if decoded_bytes > self.max_decoded_bytes {
            return Err(too_large(format!(
                "the image is {width}×{height} at {} bytes a pixel, too much to process; save it with 8 bits per channel or make it smaller",
                decoded_bytes / pixels
            )));
        }
        Ok(())
    }

    fn decoder_limits(&self) -> Limits {
        let mut limits = Limits::default();
        limits.max_image_width = Some(self.max_side);
        limits.max_image_height = Some(self.max_side);
        limits.max_alloc = Some(self.max_decoder_alloc);
        limits
    }
}

fn too_large(message: String) -> Invalid {
    Invalid::new("image_too_large", message)
}

/// The size an image is made to fit: the source is cropped to this aspect
/// (centred), then scaled down to it if larger. A smaller crop keeps its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    pub width: u32,
    pub height: u32,
}

impl Target {
    pub const fn square(side: u32) -> Self {
        Self {
            width: side,
            height: side,
        }
    }
}

/// What `plan` decides for a source: the region kept and the output size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    pub crop_x: u32,
    pub crop_y: u32,
    pub crop_width: u32,
    pub crop_height: u32,
    pub width: u32,
    pub height: u32,
}

/// The centred crop of `width`×`height` with `target`'s aspect, and the output
/// size: never larger than the target or than the crop. Computed from the
/// header, so nothing is allocated for a size that would be refused or
/// stretched. Sides of 0 give an empty plan (`Bounds::check` refuses them first).
pub fn plan(width: u32, height: u32, target: Target) -> Plan {
    let (w, h) = (u64::from(width), u64::from(height));
    let (tw, th) = (
        u64::from(target.width.max(1)),
        u64::from(target.height.max(1)),
    );
    // Wider than the target: keep the full height. Otherwise the full width.
    let (crop_w, crop_h) = if w * th > h * tw {
        ((h * tw / th).max(1).min(w), h)
    } else {
        (w, (w * th / tw).max(1).min(h))
    };
    let (out_w, out_h) = if crop_w > tw || crop_h > th {
        (tw, th)
    } else {
        (crop_w, crop_h)
    };
    // Every value is at most `width` or `height` or the target's side, all u32.
    let side = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
    Plan {
        crop_x: side((w - crop_w) / 2),
        crop_y: side((h - crop_h) / 2),
        crop_width: side(crop_w),
        crop_height: side(crop_h),
        width: side(out_w),
        height: side(out_h),
    }
}

/// The formats accepted, recognised from the bytes (never from a declared type).
pub const FORMATS: [ImageFormat; 4] = [
    ImageFormat::Png,
    ImageFormat::Jpeg,
    ImageFormat::Gif,
    ImageFormat::WebP,
];

/// Decodes a PNG, JPEG, GIF (first frame) or WebP within `bounds` and returns
/// it as a PNG fitted to `target` (see `plan`). Re-encoding means nothing of
/// the original bytes survives. CPU-heavy: run it through `ImagePool`.
pub fn to_png(bytes: &[u8], bounds: &Bounds, target: Target) -> Result<Vec<u8>, Invalid> {
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| FORMATS.contains(f))
        .ok_or_else(|| {
            Invalid::new(
                "unsupported_image",
                "the image must be a PNG, JPEG, GIF or WebP",
            )
        })?;
    if format == ImageFormat::Jpeg {
        let scans = jpeg_scans(bytes);
        if scans > bounds.max_jpeg_scans {
            return Err(Invalid::new(
                "image_too_complex",
                format!(
                    "the JPEG has {scans} scans; at most {} are accepted (save it as baseline or standard progressive)",
                    bounds.max_jpeg_scans
                ),
            ));
        }
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    reader.limits(bounds.decoder_limits());
    // Reads the header only (for a GIF, the logical screen is its size).
    let decoder = reader.into_decoder().map_err(|e| read_error(e, bounds))?;
    let (width, height) = decoder.dimensions();
    bounds.check(width, height, decoder.total_bytes())?;
    let plan = plan(width, height, target);
    let image = DynamicImage::from_decoder(decoder).map_err(|e| read_error(e, bounds))?;
    let fitted = fit(&image, plan);
    drop(image);
    let mut png = Vec::new();
    DynamicImage::ImageRgba8(fitted.to_rgba8())
        .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
        .map_err(|e| {
            Invalid::new(
                "invalid_image",
                format!("the image could not be encoded: {e}"),
            )
        })?;
    Ok(png)
}

/// Counts the start-of-scan markers of a JPEG by walking its segments (and
/// stepping over entropy-coded data byte by byte): linear in the file's size,
/// nothing decoded.
fn jpeg_scans(bytes: &[u8]) -> usize {
    const SOS: u8 = 0xDA;
    const EOI: u8 = 0xD9;
    let mut scans = 0;
    // After SOI.
    let mut i = 2;
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            // Fill byte before a marker.
            0xFF => i += 1,
            // A stuffed 0xFF in entropy-coded data, restart markers, TEM, SOI: no length.
            0x00 | 0x01 | 0xD0..=0xD8 => i += 2,
            EOI => break,
            marker => {
                let Some(length) = bytes.get(i + 2..i + 4) else {
                    break;
                };
                if marker == SOS {
                    scans += 1;
                }
                i += 2 + usize::from(u16::from_be_bytes([length[0], length[1]]));
            }
        }
    }
    scans
}

fn read_error(err: ImageError, bounds: &Bounds) -> Invalid {
    match err {
        ImageError::Limits(_) => too_large(format!(
            "the image needs more memory to decode than is allowed (at most {} pixels on a side and {} pixels)",
            bounds.max_side, bounds.max_pixels
        )),
        ImageError::Unsupported(e) => Invalid::new(
            "unsupported_image",
            format!("this kind of image is not supported: {e}"),
        ),
        e => Invalid::new("invalid_image", format!("the image could not be read: {e}")),
    }
}

/// Crops and scales without copying the source: the crop is a view, and the
/// only new buffers are the scaler's (crop width × output height) and the output.
fn fit(image: &DynamicImage, plan: Plan) -> DynamicImage {
    match image {
        DynamicImage::ImageLuma8(i) => DynamicImage::ImageLuma8(crop_and_scale(i, plan)),
        DynamicImage::ImageLumaA8(i) => DynamicImage::ImageLumaA8(crop_and_scale(i, plan)),
        DynamicImage::ImageRgb8(i) => DynamicImage::ImageRgb8(crop_and_scale(i, plan)),
        DynamicImage::ImageRgba8(i) => DynamicImage::ImageRgba8(crop_and_scale(i, plan)),
        DynamicImage::ImageLuma16(i) => DynamicImage::ImageLuma16(crop_and_scale(i, plan)),
        DynamicImage::ImageLumaA16(i) => DynamicImage::ImageLumaA16(crop_and_scale(i, plan)),
        DynamicImage::ImageRgb16(i) => DynamicImage::ImageRgb16(crop_and_scale(i, plan)),
        DynamicImage::ImageRgba16(i) => DynamicImage::ImageRgba16(crop_and_scale(i, plan)),
        DynamicImage::ImageRgb32F(i) => DynamicImage::ImageRgb32F(crop_and_scale(i, plan)),
        DynamicImage::ImageRgba32F(i) => DynamicImage::ImageRgba32F(crop_and_scale(i, plan)),
        // A colour type added to `image` later: one conversion, then the same.
        other => DynamicImage::ImageRgba8(crop_and_scale(&other.to_rgba8(), plan)),
    }
}

fn crop_and_scale<P: Pixel + 'static>(
    image: &ImageBuffer<P, Vec<P::Subpixel>>,
    plan: Plan,
) -> ImageBuffer<P, Vec<P::Subpixel>> {
    let view = imageops::crop_imm(
        image,
        plan.crop_x,
        plan.crop_y,
        plan.crop_width,
        plan.crop_height,
    );
    if (plan.width, plan.height) == (plan.crop_width, plan.crop_height) {
        view.to_image()
    } else {
        imageops::resize(&*view, plan.width, plan.height, FilterType::Triangle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, Rgba};
    use proptest::prelude::*;

    const SQUARE: Target = Target::square(256);

    fn encoded(format: ImageFormat, w: u32, h: u32) -> Vec<u8> {
        let img = ImageBuffer::from_pixel(w, h, Rgb([200u8, 10, 10]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    fn size_of(png: &[u8]) -> (u32, u32) {
        let img = image::load_from_memory_with_format(png, ImageFormat::Png).unwrap();
        (img.width(), img.height())
    }

    /// A GIF with a `screen` logical screen and one 1×1 frame: a few dozen bytes.
    fn gif_with_screen(screen: (u16, u16), frame: (u16, u16)) -> Vec<u8> {
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&screen.0.to_le_bytes());
        gif.extend_from_slice(&screen.1.to_le_bytes());
        gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255, 0x2C, 0, 0, 0, 0]);
        gif.extend_from_slice(&frame.0.to_le_bytes());
        gif.extend_from_slice(&frame.1.to_le_bytes());
        gif.extend_from_slice(&[0, 2, 2, 0x44, 0x01, 0, 0x3B]);
        gif
    }

    #[test]
    fn bounds_refuse_by_side_pixels_aspect_and_bytes() {
        let b = Bounds::UPLOAD;
        assert!(b.check(4096, 4096, 4096 * 4096 * 4).is_ok());
        assert!(b.check(8192, 2048, 8192 * 2048 * 3).is_ok());
        assert_eq!(b.check(8193, 1000, 0).unwrap_err().code, "image_too_large");
        // Within every side limit, over the pixel limit.
        assert_eq!(b.check(8192, 8192, 0).unwrap_err().code, "image_too_large");
        assert_eq!(b.check(4097, 4096, 0).unwrap_err().code, "image_too_large");
        // The strips of finding 1: few pixels, extreme aspect.
        for (w, h) in [(1, 8192), (8192, 1), (8192, 64), (21, 1)] {
            assert_eq!(
                b.check(w, h, 0).unwrap_err().code,
                "image_aspect_ratio",
                "{w}×{h}"
            );
        }
        assert!(b.check(20, 1, 80).is_ok());
        // 16-bit RGBA: fine at 16 MP... but not if a pixel took more.
        assert!(b.check(4096, 4096, 4096 * 4096 * 8).is_ok());
        let err = b.check(4096, 4096, 4096 * 4096 * 16).unwrap_err();
        assert_eq!(err.code, "image_too_large");
        assert!(err.message.contains("16 bytes a pixel"), "{}", err.message);
        assert_eq!(b.check(0, 10, 0).unwrap_err().code, "invalid_image");
    }

    #[test]
    fn plan_crops_first_then_scales_down_never_up() {
        let p = plan(400, 300, SQUARE);
        assert_eq!(
            (p.crop_x, p.crop_y, p.crop_width, p.crop_height),
            (50, 0, 300, 300)
        );
        assert_eq!((p.width, p.height), (256, 256));
        // A strip is cropped to its short side, not stretched across the target.
        let p = plan(1, 8192, SQUARE);
        assert_eq!(
            (p.crop_x, p.crop_y, p.crop_width, p.crop_height),
            (0, 4095, 1, 1)
        );
        assert_eq!((p.width, p.height), (1, 1));
        let p = plan(300, 120, SQUARE);
        assert_eq!(
            (p.crop_x, p.crop_width, p.width, p.height),
            (90, 120, 120, 120)
        );
        // A non-square target: its aspect is cut from the source.
        let p = plan(
            1000,
            1000,
            Target {
                width: 320,
                height: 180,
            },
        );
        assert_eq!(
            (p.crop_x, p.crop_y, p.crop_width, p.crop_height),
            (0, 219, 1000, 562)
        );
        assert_eq!((p.width, p.height), (320, 180));
        let p = plan(
            100,
            1000,
            Target {
                width: 320,
                height: 180,
            },
        );
        assert_eq!(
            (p.crop_width, p.crop_height, p.width, p.height),
            (100, 56, 100, 56)
        );
    }

    proptest! {
        #[test]
        fn plans_stay_inside_the_source_and_the_target(
            w in 1u32..=20_000, h in 1u32..=20_000, tw in 1u32..=2048, th in 1u32..=2048,
        ) {
            let p = plan(w, h, Target { width: tw, height: th });
            prop_assert!(p.crop_width >= 1 && p.crop_height >= 1);
            prop_assert!(p.crop_x + p.crop_width <= w);
            prop_assert!(p.crop_y + p.crop_height <= h);
            prop_assert!(p.width <= tw && p.height <= th);
            prop_assert!(p.width <= p.crop_width && p.height <= p.crop_height);
            prop_assert!(p.width >= 1 && p.height >= 1);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = to_png(&bytes, &Bounds::UPLOAD, SQUARE);
        }
    }

    #[test]
    fn every_format_is_re_encoded_to_the_planned_size() {
        for format in FORMATS {
            let png = to_png(&encoded(format, 400, 300), &Bounds::UPLOAD, SQUARE).unwrap();
            assert_eq!(size_of(&png), (256, 256), "{format:?}");
            let png = to_png(&encoded(format, 300, 120), &Bounds::UPLOAD, SQUARE).unwrap();
            assert_eq!(size_of(&png), (120, 120), "{format:?}");
        }
    }

    #[test]
    fn the_crop_is_the_centre() {
        // Left third red, middle green, right third blue: the square is green.
        let img = ImageBuffer::from_fn(300, 100, |x, _| match x / 100 {
            0 => Rgba([255u8, 0, 0, 255]),
            1 => Rgba([0, 255, 0, 255]),
            _ => Rgba([0, 0, 255, 255]),
        });
        let mut bytes = Vec::new();
        DynamicImage::ImageRgba8(img)
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        let png = to_png(&bytes, &Bounds::UPLOAD, SQUARE).unwrap();
        let out = image::load_from_memory(&png).unwrap().to_rgba8();
        assert_eq!(out.dimensions(), (100, 100));
        assert!(out.pixels().all(|p| p.0 == [0, 255, 0, 255]));
    }

    #[test]
    fn bombs_are_refused_from_the_header() {
        let refused = |bytes: &[u8]| to_png(bytes, &Bounds::UPLOAD, SQUARE).unwrap_err().code;
        assert_eq!(
            refused(&encoded(ImageFormat::Png, 1, 8192)),
            "image_aspect_ratio"
        );
        assert_eq!(
            refused(&encoded(ImageFormat::Png, 8192, 1)),
            "image_aspect_ratio"
        );
        assert_eq!(
            refused(&gif_with_screen((8192, 8192), (1, 1))),
            "image_too_large"
        );
        // A frame far larger than its screen: the decoder's allocation limit.
        assert_eq!(
            refused(&gif_with_screen((64, 64), (65535, 65535))),
            "image_too_large"
        );
        let zeros = DynamicImage::ImageLuma8(ImageBuffer::new(4097, 4096));
        let mut bytes = Vec::new();
        zeros
            .write_to(&mut Cursor::new(&mut bytes), ImageFormat::Png)
            .unwrap();
        assert_eq!(refused(&bytes), "image_too_large");
    }

    #[test]
    fn jpeg_scans_are_counted_from_the_markers() {
        let baseline = encoded(ImageFormat::Jpeg, 64, 64);
        assert_eq!(jpeg_scans(&baseline), 1);
        // SOI, then `n` bare scans whose entropy data holds a stuffed 0xFF and
        // a restart marker (neither is a scan), then EOI.
        let many = |n: usize| {
            let mut jpeg = vec![0xFF, 0xD8];
            for _ in 0..n {
                jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 2, 1, 0xFF, 0, 2, 0xFF, 0xD0, 3]);
            }
            jpeg.extend_from_slice(&[0xFF, 0xD9]);
            jpeg
        };
        assert_eq!(jpeg_scans(&many(33)), 33);
        let err = to_png(&many(33), &Bounds::UPLOAD, SQUARE).unwrap_err();
        assert_eq!(err.code, "image_too_complex");
        // A length running past the end stops the walk.
        assert_eq!(jpeg_scans(&[0xFF, 0xD8, 0xFF, 0xDA, 0xFF]), 0);
    }

    #[test]
    fn what_is_not_an_image_is_refused() {
        let refused = |bytes: &[u8]| to_png(bytes, &Bounds::UPLOAD, SQUARE).unwrap_err().code;
        assert_eq!(refused(b"<svg></svg>"), "unsupported_image");
        assert_eq!(refused(b"BM not a bitmap we take"), "unsupported_image");
        assert_eq!(refused(b"GIF89a garbage"), "invalid_image");
        let mut truncated = encoded(ImageFormat::Png, 10, 10);
        truncated.truncate(40);
        assert!(to_png(&truncated, &Bounds::UPLOAD, SQUARE).is_err());
    }

    #[test]
    fn appended_payload_does_not_survive() {
        let mut bytes = encoded(ImageFormat::Png, 32, 32);
        bytes.extend_from_slice(b"<script>alert(1)</script>");
        let png = to_png(&bytes, &Bounds::UPLOAD, SQUARE).unwrap();
        assert!(!png.windows(8).any(|w| w == b"<script>"));
    }
}
