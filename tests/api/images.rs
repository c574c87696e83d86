//! Hostile images over real HTTP (issue 14, finding 1): decompression bombs are
//! refused from their header, image work is bounded (a full pool answers
//! `503 busy` while everything else is served) and uploads are rate limited.

use std::io::Cursor;
use std::time::Duration;

use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb};
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::Value;

use crate::helpers::{Client, TIMEOUT, spawn_app_with};

fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

fn grey_png(width: u32, height: u32) -> Vec<u8> {
    encoded(
        DynamicImage::ImageLuma8(ImageBuffer::from_pixel(width, height, Luma([7]))),
        ImageFormat::Png,
    )
}

/// 35 bytes: an 8192×8192 logical screen around a single 1×1 frame.
fn gif_with_screen(width: u16, height: u16) -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&width.to_le_bytes());
    gif.extend_from_slice(&height.to_le_bytes());
    gif.extend_from_slice(&[0x80, 0, 0, 0, 0, 0, 255, 255, 255]);
    gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 1, 0, 1, 0, 0]);
    gif.extend_from_slice(&[2, 2, 0x44, 0x01, 0, 0x3B]);
    gif
}

async fn upload(client: &Client, bytes: Vec<u8>) -> (StatusCode, Value) {
    let form = Form::new().part("avatar", Part::bytes(bytes).file_name("a.img"));
    client
        .send(
            client
                .request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(form),
        )
        .await
}

async fn upload_response(client: &Client, bytes: Vec<u8>) -> reqwest::Response {
    let form = Form::new().part("avatar", Part::bytes(bytes).file_name("a.img"));
    client
        .request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
        .multipart(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn image_bombs_are_refused_with_a_clear_400() {
    let app = spawn_app_with(|c| c.image_uploads_per_minute = 100).await;
    let ann = app.user("ann").await;
    let zeros = DynamicImage::ImageLuma8(ImageBuffer::new(8192, 8192));
    let cases = [
        ("1×8192 PNG", grey_png(1, 8192), "image_aspect_ratio"),
        ("8192×1 PNG", grey_png(8192, 1), "image_aspect_ratio"),
        ("8192×64 PNG", grey_png(8192, 64), "image_aspect_ratio"),
        (
            "GIF with an 8192×8192 screen",
            gif_with_screen(8192, 8192),
            "image_too_large",
        ),
        (
            "8192×8192 PNG of zeros",
            encoded(zeros, ImageFormat::Png),
            "image_too_large",
        ),
    ];
    for (name, bytes, code) in cases {
        let size = bytes.len();
        let (status, body) = tokio::time::timeout(TIMEOUT, upload(&ann, bytes))
            .await
            .unwrap_or_else(|_| panic!("{name} ({size} bytes) took too long"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(body["error"]["code"], code, "{name}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("×"),
            "the message names the size: {body}"
        );
    }
    // Nothing was stored.
    let (_, me) = ann.get("/tools/api/user/me/profile/").await;
    assert!(
        me["data"]["avatar_url"].as_str().unwrap().contains("?v=g"),
        "still the generated avatar: {me}"
    );

    // A photo is cropped to its square and scaled down to the stored size; a
    // small image is cropped and keeps its size (never scaled up). The largest
    // accepted are measured in release builds by bench/image-bombs.sh.
    let big = DynamicImage::ImageRgb8(ImageBuffer::from_fn(2000, 1500, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, 9])
    }));
    for (bytes, side) in [
        (encoded(big, ImageFormat::Jpeg), 256),
        (grey_png(300, 120), 120),
    ] {
        let (status, body) = upload(&ann, bytes).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let url = body["data"]["avatar_url"].as_str().unwrap();
        let stored = reqwest::get(app.url(url))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let stored = image::load_from_memory(&stored).unwrap();
        assert_eq!((stored.width(), stored.height()), (side, side));
    }
}

/// The pool's one worker is held by a job that waits for the test: uploads
/// beyond the queue are refused at once, the queued ones when their wait runs
/// out, all with `503 busy` and Retry-After; meanwhile the server answers
/// everything else.
#[tokio::test]
async fn uploads_past_the_pool_and_its_queue_are_busy_while_the_rest_is_served() {
    let app = spawn_app_with(|c| {
        c.image_workers = 1;
        c.image_queue = 2;
        c.image_queue_timeout = Duration::from_millis(500);
        c.image_uploads_per_minute = 100;
    })
    .await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (started, running) = tokio::sync::oneshot::channel::<()>();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let images = app.state.images.clone();
    let holder = tokio::spawn(async move {
        images
            .run(move || {
                let _ = started.send(());
                let _ = held.recv_timeout(Duration::from_secs(30));
            })
            .await
            .unwrap();
    });
    running.await.unwrap();

    // Five at once: two wait in the queue until it times out, three find it full.
    let uploads: Vec<_> = (0..5)
        .map(|_| {
            let client = ann.on(app.addr);
            tokio::spawn(async move {
                let response = upload_response(&client, grey_png(64, 64)).await;
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                let status = response.status();
                let body: Value = response.json().await.unwrap();
                (status, retry_after, body)
            })
        })
        .collect();

    // While the uploads wait or are refused, the rest is served.
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    let sent = bob.say("general", "still here").await;
    assert_eq!(sent["content"], "still here", "{sent}");

    for upload in uploads {
        let (status, retry_after, body) = tokio::time::timeout(TIMEOUT, upload)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "busy");
        assert_eq!(retry_after.as_deref(), Some("1"));
    }
    release.send(()).unwrap();
    holder.await.unwrap();
    let (status, body) = upload(&ann, grey_png(64, 64)).await;
    assert_eq!(status, StatusCode::OK, "the pool is free again: {body}");
}

#[tokio::test]
async fn image_uploads_are_rate_limited_per_user() {
    let app = spawn_app_with(|c| c.image_uploads_per_minute = 3).await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    // Refused images count too: each cost work.
    let (status, _) = upload(&ann, grey_png(1, 8192)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for _ in 0..2 {
        let (status, body) = upload(&ann, grey_png(32, 32)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let response = upload_response(&ann, grey_png(32, 32)).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One upload comes back every 20 s.
    assert!((1..=20).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Per user: bob is not affected.
    let (status, body) = upload(&bob, grey_png(32, 32)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_removed_avatar_falls_back_to_initials_and_a_new_upload_gets_a_new_url() {
    let app = spawn_app_with(|c| c.image_uploads_per_minute = 100).await;
    let ann = app.user("ann").await;
    let (status, first) = upload(&ann, grey_png(64, 64)).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let uploaded = first["data"]["avatar_url"].as_str().unwrap().to_owned();
    assert!(uploaded.ends_with("?v=1"), "{uploaded}");

    let (status, removed) = ann.delete("/tools/api/user/me/avatar/").await;
    assert_eq!(status, StatusCode::OK, "{removed}");
    let generated = removed["data"]["avatar_url"].as_str().unwrap().to_owned();
    assert!(
        generated.contains("?v=g"),
        "the initials again: {generated}"
    );
    let response = reqwest::get(app.url(&generated)).await.unwrap();
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    // Other users see it through the profile too.
    let bob = app.user("bob").await;
    let id = removed["data"]["id"].as_str().unwrap();
    let (_, seen) = bob.get(&format!("/tools/api/user/{id}/profile/")).await;
    assert_eq!(seen["data"]["avatar_url"], generated.as_str());

    // Removing again is harmless; the next upload does not reuse the old URL
    // (browsers keep avatar URLs for ever).
    let (status, _) = ann.delete("/tools/api/user/me/avatar/").await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = upload(&ann, grey_png(48, 48)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    let next = again["data"]["avatar_url"].as_str().unwrap();
    assert!(next.ends_with("?v=2"), "{next}");
    assert_ne!(next, uploaded);
}
