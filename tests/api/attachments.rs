//! Attachments over real HTTP and WebSocket (issue 17): every kind, the
//! sniffing and re-encoding rules, the served headers and ranges, who may
//! fetch what, the original system's endpoints, resume, the clean-up of
//! uploads never posted, quotas, and the S3 back end against a real S3
//! server shared by two nodes.

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageBuffer, ImageFormat, Rgb};
use reqwest::multipart::{Form, Part};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Client, TestApp, spawn_app, spawn_app_with};

fn encoded(image: DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    image.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// A `width`×`height` picture with some structure (a gradient).
fn png(width: u32, height: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([
            (x * 255 / width.max(1)) as u8,
            (y * 255 / height.max(1)) as u8,
            90,
        ])
    });
    encoded(DynamicImage::ImageRgb8(img), ImageFormat::Png)
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let img = ImageBuffer::from_fn(width, height, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    encoded(DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
}

/// A JPEG whose EXIF says "rotate 90°" (Orientation 6) and holds a GPS
/// position, with a comment segment too.
fn jpeg_with_exif_gps(width: u32, height: u32) -> Vec<u8> {
    let plain = jpeg(width, height);
    // TIFF, little-endian: IFD0 with Orientation = 6 and a GPS IFD pointer;
    // the GPS IFD with GPSLatitudeRef "N" and GPSLatitude (3 rationals).
    let mut tiff: Vec<u8> = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&6u32.to_le_bytes());
    let gps_at = 8 + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&0x8825u16.to_le_bytes());
    tiff.extend_from_slice(&4u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&(gps_at as u32).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let rationals_at = gps_at + 2 + 2 * 12 + 4;
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&0x0001u16.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    tiff.extend_from_slice(&2u32.to_le_bytes());
    tiff.extend_from_slice(b"N\0\0\0");
    tiff.extend_from_slice(&0x0002u16.to_le_bytes());
    tiff.extend_from_slice(&5u16.to_le_bytes());
    tiff.extend_from_slice(&3u32.to_le_bytes());
    tiff.extend_from_slice(&(rationals_at as u32).to_le_bytes());
    tiff.extend_from_slice(&0u32.to_le_bytes());
    for value in [31u32, 14, 4242] {
        tiff.extend_from_slice(&value.to_le_bytes());
        tiff.extend_from_slice(&1u32.to_le_bytes());
    }
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    let comment = b"secret-comment-parley";
    out.extend_from_slice(&[0xFF, 0xFE]);
    out.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(comment);
    out.extend_from_slice(&plain[2..]);
    out
}

/// A PNG header declaring `width`×`height` over a few bytes of data.
fn png_bomb(width: u32, height: u32) -> Vec<u8> {
    let small = png(1, 1);
    // Rewrite the IHDR's width and height (bytes 16..24) and its CRC.
    let mut bytes = small.clone();
    bytes[16..20].copy_from_slice(&width.to_be_bytes());
    bytes[20..24].copy_from_slice(&height.to_be_bytes());
    let crc = crc32(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    bytes
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// The Ogg page checksum (CRC-32, polynomial 0x04C11DB7, not reflected).
fn ogg_crc(page: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &byte in page {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// One Ogg page, with its checksum.
fn ogg_page(header_type: u8, granule: u64, serial: u32, seq: u32, packet: &[u8]) -> Vec<u8> {
    let mut page = b"OggS\0".to_vec();
    page.push(header_type);
    page.extend_from_slice(&granule.to_le_bytes());
    page.extend_from_slice(&serial.to_le_bytes());
    page.extend_from_slice(&seq.to_le_bytes());
    page.extend_from_slice(&0u32.to_le_bytes());
    let mut lacing = vec![255u8; packet.len() / 255];
    lacing.push((packet.len() % 255) as u8);
    page.push(lacing.len() as u8);
    page.extend_from_slice(&lacing);
    page.extend_from_slice(packet);
    let crc = ogg_crc(&page);
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

/// An Ogg/Opus stream that says it lasts `seconds` (pre-skip 312).
fn ogg_opus(seconds: u64) -> Vec<u8> {
    let mut head = b"OpusHead".to_vec();
    head.push(1);
    head.push(1);
    head.extend_from_slice(&312u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0u16.to_le_bytes());
    head.push(0);
    let mut tags = b"OpusTags".to_vec();
    tags.extend_from_slice(&6u32.to_le_bytes());
    tags.extend_from_slice(b"parley");
    tags.extend_from_slice(&0u32.to_le_bytes());
    let mut out = ogg_page(2, 0, 7, 0, &head);
    out.extend(ogg_page(0, 0, 7, 1, &tags));
    out.extend(ogg_page(0, 48_000, 7, 2, &[0xFC; 40]));
    out.extend(ogg_page(4, 312 + seconds * 48_000, 7, 3, &[0xFC; 40]));
    out
}

fn waveform() -> String {
    (0..64)
        .map(|i| ((i * 4) % 256).to_string())
        .collect::<Vec<_>>()
        .join(",")
}

async fn upload_form(client: &Client, room: &str, form: Form) -> (StatusCode, Value) {
    client
        .send(
            client
                .request(Method::POST, &format!("/tools/api/chat/{room}/uploads/"))
                .multipart(form),
        )
        .await
}

async fn upload(client: &Client, room: &str, name: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let form = Form::new().part("file", Part::bytes(bytes).file_name(name.to_string()));
    upload_form(client, room, form).await
}

async fn uploaded(client: &Client, room: &str, name: &str, bytes: Vec<u8>) -> Value {
    let (status, body) = upload(client, room, name, bytes).await;
    assert_eq!(status, StatusCode::CREATED, "upload {name}: {body}");
    body["data"].clone()
}

async fn post_attachments(
    client: &Client,
    room: &str,
    ids: &[&Value],
    caption: &str,
) -> (StatusCode, Value) {
    let ids: Vec<&Value> = ids.iter().map(|a| &a["id"]).collect();
    client
        .post(
            &format!("/tools/api/chat/{room}/send/"),
            json!({ "content": caption, "attachments": ids }),
        )
        .await
}

async fn fetch(client: &Client, path: &str) -> reqwest::Response {
    client.request(Method::GET, path).send().await.unwrap()
}

async fn fetch_bytes(client: &Client, path: &str) -> (StatusCode, Vec<u8>) {
    let response = fetch(client, path).await;
    let status = response.status();
    (status, response.bytes().await.unwrap().to_vec())
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Every file under the data directory's attachment store and spool.
fn stored_files(app: &TestApp) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&app.data_dir.path().join("files"), &mut out);
    walk(&app.data_dir.path().join("tmp"), &mut out);
    out
}

async fn pair(app: &TestApp, room: &str) -> (Client, Client, String) {
    let alice = app.user(&format!("{room}_a")).await;
    let bob = app.user(&format!("{room}_b")).await;
    let room = alice.create_room(room, "group", &[&bob]).await;
    (alice, bob, room)
}

#[tokio::test]
async fn an_image_is_uploaded_posted_delivered_and_kept_in_history() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app, "photos").await;
    let mut bob_ws = bob.ws(&format!("/ws/chat/{room}/")).await;
    bob_ws.next_of("connection_established").await;

    let image = uploaded(&alice, &room, "照片.png", png(640, 480)).await;
    assert_eq!(image["kind"], "image");
    assert_eq!(image["mime"], "image/png");
    assert_eq!(image["name"], "照片.png");
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(640), Some(480))
    );
    assert!(
        image["placeholder"]
            .as_str()
            .unwrap()
            .starts_with("data:image/")
    );
    let url = image["url"].as_str().unwrap().to_string();
    let thumb = image["thumbnail_url"].as_str().unwrap().to_string();
    let preview = image["preview_url"].as_str().unwrap().to_string();

    let (status, sent) = post_attachments(&alice, &room, &[&image], "holiday").await;
    assert_eq!(status, StatusCode::CREATED, "{sent}");
    let message = &sent["data"];
    assert_eq!(message["message_type"], "image");
    assert_eq!(message["content"], "holiday");
    assert_eq!(message["attachments"][0]["id"], image["id"]);

    let live = bob_ws.next_of("chat_message").await;
    assert_eq!(
        live["message"]["attachments"][0]["thumbnail_url"],
        thumb.as_str()
    );
    assert_eq!(live["message"]["message_type"], "image");

    let (_, history) = bob.get(&format!("/tools/api/chat/{room}/messages/")).await;
    let last = history["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["attachments"][0]["url"], url.as_str());
    assert_eq!(last["attachments"][0]["width"], 640);

    // The thumbnails are smaller, the original is the picture.
    for (path, longest) in [(&thumb, 320), (&preview, 640)] {
        let (status, bytes) = fetch_bytes(&bob, path).await;
        assert_eq!(status, StatusCode::OK);
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(decoded.width().max(decoded.height()), longest, "{path}");
    }
    let (status, bytes) = fetch_bytes(&bob, &url).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(image::load_from_memory(&bytes).unwrap().width(), 640);

    // A text message's view carries no attachments field at all (the text
    // path pays nothing).
    let text = alice.say(&room, "plain").await;
    assert!(text.get("attachments").is_none(), "{text}");

    // The room list shows it as its last message with its type.
    let (_, rooms) = bob.get("/tools/api/chat/rooms/").await;
    assert!(rooms.to_string().contains("\"message_type\":\"text\""));
}

#[tokio::test]
async fn attachment_fields_survive_a_resume() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app, "resumed").await;
    let mut bob_ws = bob.ws(&format!("/ws/chat/{room}/")).await;
    let established = bob_ws.next_of("connection_established").await;
    let since = established["last_seq"].as_i64().unwrap();
    drop(bob_ws);

    let file = uploaded(&alice, &room, "notes.txt", b"some notes\n".to_vec()).await;
    let voice = {
        let form = Form::new()
            .part("file", Part::bytes(ogg_opus(3)).file_name("voice.ogg"))
            .text("kind", "voice")
            .text("waveform", waveform());
        let (status, body) = upload_form(&alice, &room, form).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["data"].clone()
    };
    assert_eq!(
        post_attachments(&alice, &room, &[&file], "").await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        post_attachments(&alice, &room, &[&voice], "").await.0,
        StatusCode::CREATED
    );

    let mut again = bob.ws(&format!("/ws/chat/{room}/?since_seq={since}")).await;
    let mut seen = Vec::new();
    loop {
        let frame = again.next_json().await;
        match frame["type"].as_str() {
            Some("chat_message") => seen.push(frame["message"].clone()),
            Some("resume_complete") => break,
            _ => {}
        }
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["message_type"], "file");
    assert_eq!(seen[0]["attachments"][0]["name"], "notes.txt");
    assert_eq!(seen[1]["message_type"], "voice");
    let voice = &seen[1]["attachments"][0];
    assert_eq!(voice["kind"], "voice");
    assert_eq!(voice["duration_ms"], 3000);
    assert_eq!(voice["waveform"].as_array().unwrap().len(), 64);
}

#[tokio::test]
async fn the_type_comes_from_the_bytes() {
    let app = spawn_app().await;
    let (alice, _bob, room) = pair(&app, "sniff").await;

    // A PNG named .exe is an image.
    let png_exe = uploaded(&alice, &room, "setup.exe", png(10, 10)).await;
    assert_eq!(
        (png_exe["kind"].as_str(), png_exe["mime"].as_str()),
        (Some("image"), Some("image/png"))
    );

    // HTML named .png is a file, and is served as bytes to download.
    let html = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>".to_vec();
    let fake = uploaded(&alice, &room, "cat.png", html).await;
    assert_eq!(fake["kind"], "file");
    assert!(fake.get("thumbnail_url").is_none());
    let response = fetch(&alice, fake["url"].as_str().unwrap()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(header(&response, "content-disposition").starts_with("attachment"));
    assert_ne!(header(&response, "content-type"), "text/html");
    assert!(!header(&response, "content-type").contains("image"));
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert!(header(&response, "content-security-policy").starts_with("sandbox"));

    // An SVG with a script is a file too, never an image.
    let svg =
        br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#.to_vec();
    let svg = uploaded(&alice, &room, "logo.svg", svg).await;
    assert_eq!(svg["kind"], "file");
    let response = fetch(&alice, svg["url"].as_str().unwrap()).await;
    assert!(header(&response, "content-disposition").starts_with("attachment"));
    assert!(!header(&response, "content-type").contains("svg"));

    // A GIF/JS polyglot: either refused, or an image re-written from its
    // blocks, never served with the script in it.
    let mut polyglot = b"GIF89a/*\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00".to_vec();
    polyglot.extend_from_slice(b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b");
    polyglot.extend_from_slice(b"*/=1;alert('polyglot')//");
    let (status, body) = upload(&alice, &room, "x.gif", polyglot).await;
    if status == StatusCode::CREATED {
        let (_, bytes) = fetch_bytes(&alice, body["data"]["url"].as_str().unwrap()).await;
        assert!(!contains(&bytes, b"alert"), "the script came back");
    } else {
        assert!(status.is_client_error(), "{status} {body}");
    }

    // A truncated JPEG does not decode.
    let mut truncated = jpeg(200, 200);
    truncated.truncate(truncated.len() / 3);
    let (status, body) = upload(&alice, &room, "cut.jpg", truncated).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_image")),
        "{body}"
    );

    // A 20 000 × 20 000 bomb is refused from its header.
    let (status, body) = upload(&alice, &room, "bomb.png", png_bomb(20_000, 20_000)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large");

    // An empty file.
    let (status, body) = upload(&alice, &room, "empty.txt", Vec::new()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("empty_file"))
    );
}

#[tokio::test]
async fn exif_and_gps_are_gone_and_the_picture_is_upright() {
    let app = spawn_app().await;
    let (alice, _bob, room) = pair(&app, "exif").await;
    let original = jpeg_with_exif_gps(80, 40);
    assert!(contains(&original, b"Exif") && contains(&original, b"secret-comment-parley"));
    let image = uploaded(&alice, &room, "IMG_0001.JPG", original).await;
    // Orientation 6: the 80×40 picture stands up as 40×80.
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(40), Some(80))
    );
    let (_, served) = fetch_bytes(&alice, image["url"].as_str().unwrap()).await;
    assert!(!contains(&served, b"Exif"), "EXIF is still there");
    assert!(
        !contains(&served, b"secret-comment-parley"),
        "the comment is still there"
    );
    assert!(
        !contains(&served, &4242u32.to_le_bytes()),
        "the GPS position is still there"
    );
    let decoded = image::load_from_memory(&served).unwrap();
    assert_eq!((decoded.width(), decoded.height()), (40, 80));
}

#[tokio::test]
async fn files_are_served_with_safe_headers_ranges_and_etags() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app, "headers").await;
    let image = uploaded(&alice, &room, "p.png", png(50, 50)).await;
    let doc = uploaded(
        &alice,
        &room,
        "报告 final.pdf",
        b"%PDF-1.4\n%fake but sniffable\n".to_vec(),
    )
    .await;
    let voice = {
        let form = Form::new()
            .part("file", Part::bytes(ogg_opus(2)).file_name("v.ogg"))
            .text("kind", "voice");
        upload_form(&alice, &room, form).await.1["data"].clone()
    };
    post_attachments(&alice, &room, &[&image], "").await;
    post_attachments(&alice, &room, &[&doc], "").await;
    post_attachments(&alice, &room, &[&voice], "").await;

    let response = fetch(&bob, image["url"].as_str().unwrap()).await;
    assert_eq!(header(&response, "content-type"), "image/png");
    assert!(header(&response, "content-disposition").starts_with("inline"));
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(
        header(&response, "content-security-policy"),
        "sandbox; default-src 'none'"
    );
    assert!(header(&response, "cache-control").starts_with("private"));
    let etag = header(&response, "etag").to_string();
    assert!(!etag.is_empty());
    let again = bob
        .request(Method::GET, image["url"].as_str().unwrap())
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);

    let download = fetch(
        &bob,
        &format!("{}?download=1", image["url"].as_str().unwrap()),
    )
    .await;
    assert!(header(&download, "content-disposition").starts_with("attachment"));

    let response = fetch(&bob, doc["url"].as_str().unwrap()).await;
    assert_eq!(doc["kind"], "file");
    let disposition = header(&response, "content-disposition");
    assert!(disposition.starts_with("attachment"), "{disposition}");
    assert!(
        disposition.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20final.pdf"),
        "{disposition}"
    );

    // Audio plays inline and seeks.
    let url = voice["url"].as_str().unwrap();
    let whole = fetch(&bob, url).await;
    assert!(header(&whole, "content-disposition").starts_with("inline"));
    assert_eq!(header(&whole, "accept-ranges"), "bytes");
    let size = whole.bytes().await.unwrap().len();
    let part = bob
        .request(Method::GET, url)
        .header("range", "bytes=0-1")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(header(&part, "content-range"), format!("bytes 0-1/{size}"));
    assert_eq!(part.bytes().await.unwrap().as_ref(), b"Og");
    let tail = bob
        .request(Method::GET, url)
        .header("range", "bytes=-4")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(tail.bytes().await.unwrap().len(), 4);
    let past = bob
        .request(Method::GET, url)
        .header("range", format!("bytes={}-", size + 10))
        .send()
        .await
        .unwrap();
    assert_eq!(past.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&past, "content-range"), format!("bytes */{size}"));
}

#[tokio::test]
async fn only_those_who_may_see_the_room_may_fetch() {
    let app = spawn_app().await;
    let alice = app.user("auth_a").await;
    let bob = app.user("auth_b").await;
    let carol = app.user("auth_c").await;
    let mallory = app.user("auth_m").await;
    let room = alice
        .create_room("private-files", "group", &[&bob, &carol])
        .await;
    let image = uploaded(&alice, &room, "p.png", png(30, 30)).await;
    let url = image["url"].as_str().unwrap().to_string();
    let thumb = image["thumbnail_url"].as_str().unwrap().to_string();

    // Before it is posted: only the uploader.
    assert_eq!(fetch(&alice, &url).await.status(), StatusCode::OK);
    assert_eq!(fetch(&bob, &url).await.status(), StatusCode::NOT_FOUND);
    // Nobody else may post it.
    let (status, body) = post_attachments(&bob, &room, &[&image], "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_attachment"))
    );

    post_attachments(&alice, &room, &[&image], "").await;
    for path in [&url, &thumb] {
        assert_eq!(fetch(&bob, path).await.status(), StatusCode::OK, "{path}");
        assert_eq!(fetch(&carol, path).await.status(), StatusCode::OK, "{path}");
        let outsider = fetch(&mallory, path).await;
        assert_eq!(outsider.status(), StatusCode::NOT_FOUND);
        let ranged = mallory
            .request(Method::GET, path)
            .header("range", "bytes=0-1")
            .send()
            .await
            .unwrap();
        assert_eq!(ranged.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            fetch(&app.anonymous(), path).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    // Removed: access ends at once.
    let (status, _) = alice
        .delete(&format!("/tools/api/chat/{room}/members/{}/", carol.id()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetch(&carol, &url).await.status(), StatusCode::NOT_FOUND);
    // A guessed id is the same 404, and so is nonsense.
    let guessed = format!("/tools/api/chat/attachments/{}/", uuid::Uuid::now_v7());
    let response = fetch(&alice, &guessed).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "attachment_not_found");
    assert_eq!(
        fetch(&alice, "/tools/api/chat/attachments/..%2F..%2Fparley.db/")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn posting_rules_hold() {
    let app = spawn_app_with(|c| c.max_attachments_per_message = 2).await;
    let (alice, bob, room) = pair(&app, "rules").await;
    let other_room = alice.create_room("elsewhere", "group", &[&bob]).await;
    let a = uploaded(&alice, &room, "a.png", png(8, 8)).await;
    let b = uploaded(&alice, &room, "b.png", png(8, 8)).await;
    let c = uploaded(&alice, &room, "c.png", png(8, 8)).await;

    let (status, body) = post_attachments(&alice, &room, &[&a, &b, &c], "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("too_many_attachments"))
    );
    let (status, body) = post_attachments(&alice, &other_room, &[&a], "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_attachment"))
    );

    // Posted once; a second message naming it is refused, a resend with
    // the same client_id gets the original.
    let ids = json!([a["id"], b["id"]]);
    let (status, first) = alice
        .post(
            &format!("/tools/api/chat/{room}/send/"),
            json!({"content": "", "attachments": ids, "client_id": "two-pics"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, again) = alice
        .post(
            &format!("/tools/api/chat/{room}/send/"),
            json!({"content": "", "attachments": ids, "client_id": "two-pics"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["data"]["id"], first["data"]["id"]);
    let (status, body) = post_attachments(&alice, &room, &[&a], "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_attachment"))
    );

    // The WebSocket path takes attachments too.
    let mut ws = alice.ws(&format!("/ws/chat/{room}/")).await;
    ws.next_of("connection_established").await;
    ws.send_json(json!({"type": "message", "content": "by socket", "attachments": [c["id"]], "client_id": "ws-1"})).await;
    let echoed = ws.next_of("chat_message").await;
    assert_eq!(echoed["message"]["attachments"][0]["id"], c["id"]);
    assert_eq!(echoed["message"]["content"], "by socket");
    ws.send_json(
        json!({"type": "message", "content": "", "attachments": [c["id"]], "client_id": "ws-2"}),
    )
    .await;
    let refused = ws.next_of("error").await;
    assert_eq!(refused["code"], "invalid_attachment");
    assert_eq!(refused["client_id"], "ws-2");

    // Muted members and archived rooms may not upload, nor may outsiders.
    let mallory = app.user("rules_m").await;
    assert_eq!(
        upload(&mallory, &room, "x.png", png(4, 4)).await.0,
        StatusCode::FORBIDDEN
    );
    let (status, _) = alice
        .post(
            &format!("/tools/api/chat/{room}/members/{}/mute/", bob.id()),
            json!({"minutes": 10}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = upload(&bob, &room, "x.png", png(4, 4)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("muted"))
    );
    let (status, _) = alice
        .post(&format!("/tools/api/chat/{room}/archive/"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = upload(&alice, &room, "x.png", png(4, 4)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("room_archived"))
    );
}

#[tokio::test]
async fn limits_refuse_and_store_nothing() {
    let app = spawn_app_with(|c| {
        c.max_upload_bytes = 100_000;
        c.max_upload_bytes_per_day = 150_000;
        c.max_voice_seconds = 60;
    })
    .await;
    let (alice, _bob, room) = pair(&app, "limits").await;
    let (status, body) = upload(&alice, &room, "big.bin", vec![7u8; 100_001]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("file_too_large")),
        "{body}"
    );
    assert!(stored_files(&app).is_empty(), "{:?}", stored_files(&app));

    uploaded(&alice, &room, "first.bin", vec![1u8; 90_000]).await;
    let before = stored_files(&app);
    let (status, body) = upload(&alice, &room, "second.bin", vec![2u8; 90_000]).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("upload_quota_exceeded")),
        "{body}"
    );
    assert_eq!(stored_files(&app), before);

    // Voice: too long, and a waveform out of range.
    let form = Form::new()
        .part("file", Part::bytes(ogg_opus(61)).file_name("v.ogg"))
        .text("kind", "voice");
    let (status, body) = upload_form(&alice, &room, form).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("voice_too_long")),
        "{body}"
    );
    let form = Form::new()
        .part("file", Part::bytes(ogg_opus(1)).file_name("v.ogg"))
        .text("kind", "voice")
        .text("waveform", "1,2,300");
    let (status, body) = upload_form(&alice, &room, form).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_waveform"))
    );
    // Something that is not audio is not a voice message.
    let form = Form::new()
        .part("file", Part::bytes(png(4, 4)).file_name("v.ogg"))
        .text("kind", "voice");
    let (status, body) = upload_form(&alice, &room, form).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_voice"))
    );
    assert_eq!(stored_files(&app), before);
}

#[tokio::test]
async fn the_original_endpoints_upload_post_and_broadcast() {
    let app = spawn_app().await;
    let (alice, bob, room) = pair(&app, "legacy").await;
    let mut bob_ws = bob.ws(&format!("/ws/chat/{room}/")).await;
    bob_ws.next_of("connection_established").await;

    let cases: [(&str, &str, Vec<u8>, &str, &str); 4] = [
        ("send-image", "image", png(20, 10), "a.png", "image"),
        ("send-file", "file", b"hello".to_vec(), "hello.txt", "file"),
        ("send-audio", "audio", ogg_opus(2), "memo.ogg", "voice"),
        ("send-video", "video", webm_video(), "clip.webm", "video"),
    ];
    for (path, field, bytes, name, kind) in cases {
        let form = Form::new()
            .part(field, Part::bytes(bytes).file_name(name))
            .text("content", format!("via {path}"));
        let (status, body) = alice
            .send(
                alice
                    .request(Method::POST, &format!("/tools/api/chat/{room}/{path}/"))
                    .multipart(form),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{path}: {body}");
        assert_eq!(body["data"]["message_type"], kind, "{path}");
        assert_eq!(body["data"]["content"], format!("via {path}"));
        let live = bob_ws.next_of("chat_message").await;
        assert_eq!(live["message"]["attachments"][0]["kind"], kind, "{path}");

        // The original download path: a member-only download with its name.
        let message_id = body["data"]["id"].as_str().unwrap();
        let response = fetch(
            &bob,
            &format!("/tools/api/chat/{room}/download/{message_id}/"),
        )
        .await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let disposition = header(&response, "content-disposition").to_string();
        assert!(disposition.starts_with("attachment"), "{disposition}");
        assert!(
            disposition.contains(&format!("filename*=UTF-8''{name}")),
            "{disposition}"
        );
        let outsider = app.user(&format!("legacy_{field}")).await;
        let refused = fetch(
            &outsider,
            &format!("/tools/api/chat/{room}/download/{message_id}/"),
        )
        .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    }
    // The video: its size from the container.
    let (_, history) = bob.get(&format!("/tools/api/chat/{room}/messages/")).await;
    let video = history["messages"].as_array().unwrap().last().unwrap()["attachments"][0].clone();
    assert_eq!(video["mime"], "video/webm");
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64()),
        (Some(320), Some(240))
    );
}

/// EBML for a WebM file with one 320×240 VP8 video track and no frames
/// (enough for the type and the size; a browser would need frames).
fn webm_video() -> Vec<u8> {
    fn element(id: &[u8], body: &[u8]) -> Vec<u8> {
        let mut out = id.to_vec();
        if body.len() < 0x7F {
            // A one-byte size, as recorders write small elements.
            out.push(0x80 | body.len() as u8);
        } else {
            // An eight-byte size: 0x01 then seven bytes.
            out.push(0x01);
            out.extend_from_slice(&(body.len() as u64).to_be_bytes()[1..]);
        }
        out.extend_from_slice(body);
        out
    }
    let ebml = element(
        &[0x1A, 0x45, 0xDF, 0xA3],
        &[
            element(&[0x42, 0x82], b"webm"),
            element(&[0x42, 0x87], &[4]),
            element(&[0x42, 0x85], &[2]),
        ]
        .concat(),
    );
    let info = element(
        &[0x15, 0x49, 0xA9, 0x66],
        &element(&[0x2A, 0xD7, 0xB1], &[0x0F, 0x42, 0x40]),
    );
    let video = element(
        &[0xE0],
        &[
            element(&[0xB0], &320u16.to_be_bytes()),
            element(&[0xBA], &240u16.to_be_bytes()),
        ]
        .concat(),
    );
    let entry = element(
        &[0xAE],
        &[
            element(&[0xD7], &[1]),
            element(&[0x83], &[1]),
            element(&[0x86], b"V_VP8"),
            video,
        ]
        .concat(),
    );
    let tracks = element(&[0x16, 0x54, 0xAE, 0x6B], &entry);
    // A Void element, as muxers leave room for cues (sniffers read 256 bytes).
    let void = element(&[0xEC], &[0; 300]);
    let segment = element(&[0x18, 0x53, 0x80, 0x67], &[info, tracks, void].concat());
    [ebml, segment].concat()
}

#[tokio::test]
async fn uploads_never_posted_are_deleted() {
    let app = spawn_app_with(|c| c.unposted_upload_ttl = std::time::Duration::ZERO).await;
    let (alice, _bob, room) = pair(&app, "orphans").await;
    let kept = uploaded(&alice, &room, "kept.png", png(8, 8)).await;
    post_attachments(&alice, &room, &[&kept], "").await;
    let orphan = uploaded(&alice, &room, "orphan.png", png(8, 8)).await;
    let files_before = stored_files(&app);
    assert!(
        files_before
            .iter()
            .any(|f| f.contains(orphan["id"].as_str().unwrap()))
    );

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let deleted = parley::services::attachments::delete_unposted(&app.state)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    assert_eq!(
        fetch(&alice, orphan["url"].as_str().unwrap())
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        fetch(&alice, kept["url"].as_str().unwrap()).await.status(),
        StatusCode::OK
    );
    let files = stored_files(&app);
    assert!(
        !files
            .iter()
            .any(|f| f.contains(orphan["id"].as_str().unwrap())),
        "{files:?}"
    );
    assert!(
        files
            .iter()
            .any(|f| f.contains(kept["id"].as_str().unwrap()))
    );
    let (status, body) = post_attachments(&alice, &room, &[&orphan], "").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_attachment"))
    );

    // `parley storage check`: a file no row refers to is a leftover.
    let stray = format!("attachments/{}/original", uuid::Uuid::now_v7());
    app.state
        .blobs
        .put_bytes(&stray, b"stray".to_vec())
        .await
        .unwrap();
    let report =
        parley::services::attachments::check_storage(&app.state.store, &app.state.blobs, true)
            .await
            .unwrap();
    assert_eq!(report.leftovers, vec![stray.clone()]);
    assert!(report.missing.is_empty());
}
