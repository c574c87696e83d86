//! What an uploaded photo costs: `media::process` of a 12 MP (4000×3000)
//! JPEG, which decodes it, re-encodes it without metadata and makes both
//! thumbnails and the placeholder, on one core. `cargo bench --bench
//! thumbnails`; figures in docs/benchmarks.md, nothing asserted on time.

use std::io::{Cursor, Write};

use criterion::{Criterion, criterion_group, criterion_main};
use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use parley::media::{Declared, MediaLimits, process};

/// A photo-like 4000×3000 JPEG: smooth gradients under fine noise, so it
/// compresses (and decodes) like a camera's picture, about 3–5 MB, not like
/// a flat test card.
fn photo() -> Vec<u8> {
    let (w, h) = (4000u32, 3000u32);
    let mut seed = 0x2545_F491u32;
    let image = ImageBuffer::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let noise = (seed & 0x1F) as i32 - 16;
        let channel = |v: u32| (v as i32 + noise).clamp(0, 255) as u8;
        Rgb([
            channel(x * 255 / w),
            channel(y * 255 / h),
            channel((x + y) * 255 / (w + h)),
        ])
    });
    let mut jpeg = Vec::new();
    DynamicImage::ImageRgb8(image)
        .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
        .expect("encoding into memory");
    jpeg
}

fn thumbnails(c: &mut Criterion) {
    let jpeg = photo();
    let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
    file.write_all(&jpeg).expect("writing the photo");
    let limits = MediaLimits::default();
    let mut group = c.benchmark_group("media");
    group.sample_size(10);
    group.bench_function(
        "process 12 MP JPEG (re-encode, 2 thumbnails, placeholder)",
        |b| b.iter(|| process(file.path(), &Declared::Auto, &limits).expect("a valid photo")),
    );
    group.finish();
}

criterion_group!(benches, thumbnails);
criterion_main!(benches);
