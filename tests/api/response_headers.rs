//! Caching and transport headers (issue 14, "smaller ones"): every JSON API
//! answer and JSON error is `Cache-Control: no-store`, pages and assets keep
//! their own; HSTS exactly when the public URL is https.

use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn json_api_answers_and_errors_are_never_cached() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let anon = app.anonymous();
    let png = {
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([1, 2, 3]));
        let mut out = Vec::new();
        img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    };
    let requests = [
        (
            "me",
            ann.request(reqwest::Method::GET, "/tools/api/auth/me/"),
        ),
        (
            "rooms",
            ann.request(reqwest::Method::GET, "/tools/api/chat/rooms/"),
        ),
        (
            "history",
            ann.request(reqwest::Method::GET, "/tools/api/chat/general/messages/"),
        ),
        (
            "send (201)",
            ann.request(reqwest::Method::POST, "/tools/api/chat/general/send/")
                .json(&json!({"content": "hi"})),
        ),
        (
            "avatar upload",
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(Form::new().part("avatar", Part::bytes(png).file_name("a.png"))),
        ),
        (
            "401",
            anon.request(reqwest::Method::GET, "/tools/api/auth/me/"),
        ),
        (
            "400",
            ann.request(reqwest::Method::POST, "/tools/api/chat/general/send/")
                .json(&json!({"nope": 1})),
        ),
        (
            "404 under the API",
            ann.request(reqwest::Method::GET, "/tools/api/no/such/thing/"),
        ),
        (
            "405",
            ann.request(reqwest::Method::DELETE, "/tools/api/auth/me/"),
        ),
        (
            "413",
            ann.request(reqwest::Method::POST, "/tools/api/chat/general/send/")
                .header("content-type", "application/json")
                .body(vec![b' '; 3 * 1024 * 1024]),
        ),
        // JSON errors outside the API too.
        (
            "avatar of nobody",
            anon.request(reqwest::Method::GET, "/avatars/nobody"),
        ),
        (
            "unknown path",
            anon.request(reqwest::Method::GET, "/no-such-page"),
        ),
    ];
    for (name, request) in requests {
        let response = request.send().await.unwrap();
        let status = response.status();
        assert_eq!(
            response
                .headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{name} ({status})"
        );
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{name} is JSON"
        );
    }

    // Pages and assets keep their own caching.
    let page = anon
        .request(reqwest::Method::GET, "/login")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let css = html
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".css"))
        .expect("the login page links a stylesheet")
        .to_string();
    let asset = reqwest::get(app.url(&css)).await.unwrap();
    assert_eq!(asset.status(), StatusCode::OK);
    // `immutable` in release builds; debug builds read assets from disk, `no-cache`.
    let asset_cache = asset.headers()["cache-control"].to_str().unwrap();
    assert!(
        ["public, max-age=31536000, immutable", "no-cache"].contains(&asset_cache),
        "{asset_cache}"
    );
    let avatar = reqwest::get(app.url(ann.profile["avatar_url"].as_str().unwrap()))
        .await
        .unwrap();
    assert_eq!(
        avatar.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
}

#[tokio::test]
async fn hsts_is_sent_exactly_when_the_public_url_is_https() {
    let paths = [
        "/login",
        "/healthz",
        "/tools/api/auth/me/",
        "/no-such-page",
        "/static/nope",
    ];
    let app =
        spawn_app_with(|c| c.public_url = Some("https://chat.example.com/".parse().unwrap())).await;
    for path in paths {
        let response = reqwest::get(app.url(path)).await.unwrap();
        assert_eq!(
            response
                .headers()
                .get("strict-transport-security")
                .map(|v| v.to_str().unwrap()),
            Some("max-age=31536000"),
            "{path}"
        );
    }
    let plain = spawn_app().await;
    for path in paths {
        let response = reqwest::get(plain.url(path)).await.unwrap();
        assert!(
            response
                .headers()
                .get("strict-transport-security")
                .is_none(),
            "no HSTS over plain http: {path}"
        );
    }
}
