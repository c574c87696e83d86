//! Measures what the avatar pipeline costs on hostile images (issue 14,
//! finding 1). Not a test: `bench/image-bombs.sh` runs it, one image per
//! process, under `/usr/bin/time -v`, and prints peak RSS and time per case.
//!
//!     image_bombs generate DIR    writes the cases into DIR
//!     image_bombs measure FILE    runs the avatar pipeline on FILE once

#![allow(clippy::unwrap_used)]

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use image::{ImageBuffer, ImageFormat, Rgb, Rgba};

// As the server binary, so the figures are the server's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => generate(Path::new(&args[2])),
        Some("measure") => measure(Path::new(&args[2])),
        _ => {
            eprintln!("usage: image_bombs generate DIR | measure FILE");
            std::process::exit(2);
        }
    }
}

fn measure(path: &Path) {
    let bytes = std::fs::read(path).unwrap();
    let started = Instant::now();
    let outcome = parley::avatar::normalize(&bytes);
    let elapsed = started.elapsed();
    let peak_kib = peak_rss_kib();
    let name = path.file_name().unwrap().to_string_lossy();
    match outcome {
        Ok(png) => {
            let out = image::load_from_memory(&png).unwrap();
            println!(
                "{name}\t{} bytes\taccepted {}x{}\t{:.3} s\t{} MiB peak",
                bytes.len(),
                out.width(),
                out.height(),
                elapsed.as_secs_f64(),
                peak_kib / 1024
            );
        }
        Err(err) => println!(
            "{name}\t{} bytes\trefused {}: {}\t{:.3} s\t{} MiB peak",
            bytes.len(),
            err.code,
            err.message,
            elapsed.as_secs_f64(),
            peak_kib / 1024
        ),
    }
}

/// The process's peak resident set (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("{name}: {} bytes", bytes.len());
}

fn encoded(img: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// A picture with detail everywhere (so no decoder can skip work) that still
/// compresses under the 5 MB upload limit.
fn busy_rgb(width: u32, height: u32) -> image::DynamicImage {
    let img = ImageBuffer::from_fn(width, height, |x, y| {
        let v = ((x / 7) ^ (y / 5)) as u8;
        Rgb([v, (x / 16) as u8, (y / 16) as u8])
    });
    image::DynamicImage::ImageRgb8(img)
}

fn busy_rgba(width: u32, height: u32) -> image::DynamicImage {
    let img = ImageBuffer::from_fn(width, height, |x, y| {
        let v = ((x / 7) ^ (y / 5)) as u8;
        Rgba([v, (x / 16) as u8, (y / 16) as u8, 255 - v])
    });
    image::DynamicImage::ImageRgba8(img)
}

/// A GIF whose logical screen is `width`×`height` with a single 1×1 frame.
fn gif_with_screen(width: u16, height: u16, frame: (u16, u16)) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&width.to_le_bytes());
    gif.extend_from_slice(&height.to_le_bytes());
    // A global colour table of two entries, background 0, no aspect.
    gif.extend_from_slice(&[0x80, 0, 0]);
    gif.extend_from_slice(&[0, 0, 0, 255, 255, 255]);
    gif.push(0x2C);
    gif.extend_from_slice(&[0, 0, 0, 0]);
    gif.extend_from_slice(&frame.0.to_le_bytes());
    gif.extend_from_slice(&frame.1.to_le_bytes());
    gif.push(0);
    // LZW minimum code size 2, one sub-block (clear, pixel 0, end), terminator.
    gif.extend_from_slice(&[2, 2, 0x44, 0x01, 0]);
    gif.push(0x3B);
    gif
}

fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let thin = image::DynamicImage::ImageLuma8(ImageBuffer::from_pixel(1, 8192, image::Luma([7])));
    write(dir, "png-1x8192.png", &encoded(&thin, ImageFormat::Png));
    let wide = image::DynamicImage::ImageLuma8(ImageBuffer::from_pixel(8192, 1, image::Luma([7])));
    write(dir, "png-8192x1.png", &encoded(&wide, ImageFormat::Png));
    write(
        dir,
        "gif-screen-8192x8192.gif",
        &gif_with_screen(8192, 8192, (1, 1)),
    );
    write(
        dir,
        "gif-frame-65535x65535.gif",
        &gif_with_screen(64, 64, (65535, 65535)),
    );
    // The classic bomb: every side within 8192, 67 M pixels of zeros.
    let zeros = image::DynamicImage::ImageLuma8(ImageBuffer::new(8192, 8192));
    write(
        dir,
        "png-8192x8192-zeros.png",
        &encoded(&zeros, ImageFormat::Png),
    );
    let aspect = image::DynamicImage::ImageRgb8(ImageBuffer::from_pixel(8192, 64, Rgb([1, 2, 3])));
    write(
        dir,
        "png-8192x64-aspect.png",
        &encoded(&aspect, ImageFormat::Png),
    );

    let (w, h) = MAX_CASE;
    write(
        dir,
        "jpeg-max.jpg",
        &encoded(&busy_rgb(w, h), ImageFormat::Jpeg),
    );
    write(
        dir,
        "png-max-rgba.png",
        &encoded(&busy_rgba(w, h), ImageFormat::Png),
    );
    write(
        dir,
        "webp-max-lossless.webp",
        &encoded(&busy_rgba(w, h), ImageFormat::WebP),
    );
    // Sources for bench/image-bombs.sh to turn into progressive JPEG and lossy WebP.
    write(dir, "source-max.ppm", &ppm(&busy_rgb(w, h)));
    // 16 bits per channel, RGBA: 8 bytes a pixel, the most a decoded image may take.
    let deep = image::DynamicImage::ImageRgba16(ImageBuffer::from_fn(w, h, |x, y| {
        Rgba([(x / 64 * 1000) as u16, (y / 64 * 1000) as u16, 0, 65535])
    }));
    write(dir, "png-max-rgba16.png", &encoded(&deep, ImageFormat::Png));
    write(
        dir,
        "png-over-max.png",
        &encoded(&busy_rgb(w + 1, h), ImageFormat::Png),
    );
    // The longest strip accepted (1:20) and the most pixels at that aspect.
    write(
        dir,
        "png-8192x410-strip.png",
        &encoded(&busy_rgb(8192, 410), ImageFormat::Png),
    );
}

fn ppm(img: &image::DynamicImage) -> Vec<u8> {
    let rgb = img.to_rgb8();
    let mut out = format!("P6\n{} {}\n255\n", rgb.width(), rgb.height()).into_bytes();
    out.extend_from_slice(rgb.as_raw());
    out
}

/// Dimensions of the "largest accepted" cases: `Bounds::UPLOAD.max_pixels`.
const MAX_CASE: (u32, u32) = (4096, 4096);
