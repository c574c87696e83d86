use std::io::Cursor;
use std::sync::Arc;

use parley::domain::ids::{MessageId, RoomId, UserId};
use parley::domain::message::{MessageType, NewMessage, Sender};
use parley::domain::time::{DAY_MS, now_ms};
use parley::domain::user::Membership;
use reqwest::StatusCode;
use reqwest::multipart::{Form, Part};
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn profile_has_the_original_fields_and_tags() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (status, body) = bob
        .get(&format!("/tools/api/user/{}/profile/", ann.id()))
        .await;
    assert_eq!(status, StatusCode::OK);
    let p = &body["data"];
    for field in [
        "id",
        "username",
        "display_name",
        "first_name",
        "last_name",
        "avatar_url",
        "bio",
        "membership_type",
        "membership",
        "theme_mode",
        "theme",
        "tags",
        "tag_details",
        "is_online",
        "last_seen",
        "date_joined",
        "is_staff",
    ] {
        assert!(p.get(field).is_some(), "missing {field}");
    }
    assert_eq!(p["membership_type"], "免费用户");
    assert_eq!(p["theme_mode"], "极客模式");
    assert_eq!(p["tags"], json!(["💻 极客模式", "🆕 新用户"]));
    assert_eq!(
        p["tag_details"][1],
        json!({"kind": "activity", "code": "new", "label": "新用户", "emoji": "🆕"})
    );
    assert_eq!(p["is_staff"], false);
    assert!(p.get("email").is_none(), "email is private");
    let (_, own) = ann.get("/tools/api/user/me/profile/").await;
    assert!(own["data"].get("email").is_some());

    let (status, body) = bob
        .get(&format!("/tools/api/user/{}/profile/", UserId::new()))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["code"], "user_not_found");
    let (status, _) = bob.get("/tools/api/user/not-an-id/profile/").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn membership_admin_and_activity_tags() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let store = &app.state.store;
    let id = UserId::parse(&ann.id()).unwrap();
    store
        .update_membership(id, Membership::Vip, Some(now_ms() + DAY_MS))
        .await
        .unwrap();
    store.update_admin(id, true).await.unwrap();
    let (_, body) = ann.get("/tools/api/user/me/profile/").await;
    assert_eq!(
        body["data"]["tags"],
        json!(["💎 VIP会员", "💻 极客模式", "👑 管理员", "🆕 新用户"])
    );
    assert_eq!(body["data"]["membership_type"], "VIP会员");
    assert_eq!(body["data"]["is_staff"], true);

    // Expired membership reads as free.
    store
        .update_membership(id, Membership::Premium, Some(now_ms() - 1))
        .await
        .unwrap();
    let (_, body) = ann.get("/tools/api/user/me/profile/").await;
    assert_eq!(body["data"]["membership"], "free");
    assert_eq!(body["data"]["tags"][0], "💻 极客模式");

    // Messages on three of the last seven days make a new user active.
    let sender = Arc::new(Sender {
        id,
        username: "ann".into(),
        display_name: String::new(),
        avatar_version: 0,
    });
    let general = RoomId::parse("general").unwrap();
    let message = |days_ago: i64| NewMessage {
        id: MessageId::new(),
        room_id: general.clone(),
        sender: Some(sender.clone()),
        message_type: MessageType::Text,
        content: "hi".into(),
        client_id: None,
        event: None,
        attachments: Vec::new(),
        created_at: now_ms() - days_ago * DAY_MS,
    };
    store
        .insert_messages(&[message(1), message(2)])
        .await
        .unwrap();
    let (_, body) = ann.get("/tools/api/user/me/profile/").await;
    assert_eq!(
        body["data"]["tags"].as_array().unwrap().last().unwrap(),
        "🆕 新用户"
    );
    store.insert_messages(&[message(3)]).await.unwrap();
    let (_, body) = ann.get("/tools/api/user/me/profile/").await;
    assert_eq!(
        body["data"]["tags"].as_array().unwrap().last().unwrap(),
        "🌟 活跃用户"
    );
}

#[tokio::test]
async fn profile_edits_are_validated_and_plain_text() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let (status, body) = ann
        .patch(
            "/tools/api/user/me/profile/",
            json!({"display_name": "<script>x</script>", "first_name": "安", "last_name": "李", "bio": "line1\nline2",
                   "email": "ann@example.com", "theme_mode": "emo", "theme": "dark", "language": "en"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let p = &body["data"];
    assert_eq!(p["display_name"], "<script>x</script>");
    assert_eq!(p["first_name"], "安");
    assert_eq!(p["bio"], "line1\nline2");
    assert_eq!(p["theme_mode"], "Emo模式");
    assert_eq!(p["theme"], json!({"mode": "emo", "style": "dark"}));
    assert_eq!(p["language"], "en");
    assert_eq!(p["tags"][0], "🎭 Emo模式");

    for (patch, code) in [
        (json!({"bio": "x".repeat(501)}), "invalid_field"),
        (json!({"theme_mode": "disco"}), "invalid_theme_mode"),
        (json!({"theme": "neon"}), "invalid_theme"),
        (json!({"language": "fr"}), "invalid_language"),
        (json!({"email": "not-an-email"}), "invalid_email"),
    ] {
        let (status, body) = ann.patch("/tools/api/user/me/profile/", patch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"]["code"], code);
    }
    let (status, body) = ann
        .patch("/tools/api/user/me/profile/", json!({"is_admin": true}))
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "unknown fields are refused: {body}"
    );
}

fn png_bytes(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(w, h, image::Rgb([10, 120, 200]));
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

#[tokio::test]
async fn avatars_are_re_encoded_and_cached() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let generated = ann.profile["avatar_url"].as_str().unwrap().to_string();
    let response = reqwest::get(app.url(&generated)).await.unwrap();
    assert_eq!(response.headers()["content-type"], "image/svg+xml");
    assert!(
        response.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("immutable")
    );
    assert!(response.text().await.unwrap().contains(">A<"));

    // Declared as text, recognised from the bytes.
    let mut bytes = png_bytes(400, 300);
    bytes.extend_from_slice(b"<?php evil(); ?>");
    let form = Form::new().part(
        "avatar",
        Part::bytes(bytes)
            .file_name("x.txt")
            .mime_str("text/plain")
            .unwrap(),
    );
    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(form),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let url = body["data"]["avatar_url"].as_str().unwrap().to_string();
    assert_ne!(url, generated);
    let response = reqwest::get(app.url(&url)).await.unwrap();
    assert_eq!(response.headers()["content-type"], "image/png");
    assert_eq!(
        response.headers()["cache-control"],
        "public, max-age=31536000, immutable",
        "the URL changes with the image, so it is cached for good"
    );
    let stored = response.bytes().await.unwrap();
    let image = image::load_from_memory(&stored).unwrap();
    assert_eq!((image.width(), image.height()), (256, 256));
    assert!(!stored.windows(5).any(|w| w == b"<?php"));

    let form = Form::new().part(
        "avatar",
        Part::bytes(b"<svg onload=alert(1)>".to_vec()).file_name("a.png"),
    );
    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(form),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "unsupported_image");

    // Over 5 MB: a clear 400; over the 8 MB body limit: 413.
    let big = vec![0u8; 5 * 1024 * 1024 + 10];
    let form = Form::new().part("avatar", Part::bytes(big).file_name("big.png"));
    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(form),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "image_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("5 MB"));
    let huge = vec![0u8; 9 * 1024 * 1024];
    let form = Form::new().part("avatar", Part::bytes(huge).file_name("huge.png"));
    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(form),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large");

    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(Form::new().text("x", "y")),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "missing_file");
}

/// A plain HTML form cannot set headers: the avatar upload also takes the CSRF
/// token from a `csrfmiddlewaretoken` field.
#[tokio::test]
async fn avatar_uploads_take_the_csrf_token_from_the_header_or_the_form() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let csrf = ann.cookie("csrftoken").unwrap();
    let url = app.url("/tools/api/user/me/avatar/");
    let image = || Part::bytes(png_bytes(40, 40)).file_name("me.png");

    // The header (what `request` adds).
    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .multipart(Form::new().part("avatar", image())),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The form field, before or after the file.
    for form in [
        Form::new()
            .text("csrfmiddlewaretoken", csrf.clone())
            .part("avatar", image()),
        Form::new()
            .part("avatar", image())
            .text("csrfmiddlewaretoken", csrf.clone()),
    ] {
        let (status, body) = ann.send(ann.http.post(&url).multipart(form)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["data"]["avatar_url"].as_str().unwrap().contains("?v="));
    }

    // Neither, or a wrong value in either place: refused before the image is looked at.
    let refused = [
        ann.http
            .post(&url)
            .multipart(Form::new().part("avatar", image())),
        ann.http.post(&url).multipart(
            Form::new()
                .text("csrfmiddlewaretoken", "forged")
                .part("avatar", image()),
        ),
        ann.http
            .post(&url)
            .header("X-CSRFToken", "forged")
            .multipart(Form::new().part("avatar", image())),
        // A right field does not rescue a wrong header.
        ann.http
            .post(&url)
            .header("X-CSRFToken", "forged")
            .multipart(
                Form::new()
                    .text("csrfmiddlewaretoken", csrf.clone())
                    .part("avatar", image()),
            ),
        ann.http
            .post(&url)
            .multipart(Form::new().text("csrfmiddlewaretoken", "forged")),
        ann.http.post(&url).body("not a form"),
    ];
    for request in refused {
        let (status, body) = ann.send(request).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "csrf_failed");
    }

    // The field is only for this form: JSON endpoints still want the header.
    let (status, body) = ann
        .send(
            ann.http
                .patch(app.url("/tools/api/user/me/profile/"))
                .json(&json!({"bio": "hi", "csrfmiddlewaretoken": csrf})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["code"], "csrf_failed");

    // With the header, a body that is not a form is a plain 400.
    let (status, body) = ann
        .send(
            ann.request(reqwest::Method::POST, "/tools/api/user/me/avatar/")
                .body("not a form"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_upload");
}

#[tokio::test]
async fn user_search_finds_by_name() {
    let app = spawn_app().await;
    let ann = app.user("annabel").await;
    let zed = app.user("zed").await;
    zed.patch(
        "/tools/api/user/me/profile/",
        json!({"display_name": "Zed Anna"}),
    )
    .await;
    let (status, body) = ann.get("/tools/api/user/search/?q=ANNA").await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["annabel", "zed"]);
    let (_, body) = ann.get("/tools/api/user/search/?q=%25").await;
    assert!(
        body["data"].as_array().unwrap().is_empty(),
        "LIKE wildcards are literal"
    );
}

/// E-mail is private: shown to the user themself and to site admins only,
/// wherever profiles appear.
#[tokio::test]
async fn admins_see_other_users_email() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let root = app.user("root").await;
    app.state
        .store
        .update_admin(UserId::parse(&root.id()).unwrap(), true)
        .await
        .unwrap();
    let (status, body) = ann
        .patch(
            "/tools/api/user/me/profile/",
            json!({"email": "ann@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let room = ann.create_room("Mail", "group", &[&bob, &root]).await;
    let profile = format!("/tools/api/user/{}/profile/", ann.id());
    let participants = format!("/tools/api/chat/{room}/participants/");
    let ann_in = |body: &serde_json::Value| {
        body["data"]["participants"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["username"] == "ann")
            .cloned()
            .unwrap()
    };

    for viewer in [&ann, &root] {
        let (_, body) = viewer.get(&profile).await;
        assert_eq!(body["data"]["email"], "ann@example.com", "{body}");
        let (_, body) = viewer.get(&participants).await;
        assert_eq!(ann_in(&body)["email"], "ann@example.com");
        let (_, body) = viewer.get("/tools/api/user/search/?q=ann").await;
        assert_eq!(body["data"][0]["email"], "ann@example.com", "{body}");
    }
    let (_, body) = bob.get(&profile).await;
    assert!(body["data"].get("email").is_none(), "{body}");
    let (_, body) = bob.get(&participants).await;
    assert!(ann_in(&body).get("email").is_none());
    let (_, body) = bob.get("/tools/api/user/search/?q=ann").await;
    assert!(body["data"][0].get("email").is_none(), "{body}");
    // And the admin's own address stays theirs.
    let (_, body) = ann
        .get(&format!("/tools/api/user/{}/profile/", root.id()))
        .await;
    assert!(body["data"].get("email").is_none(), "{body}");
}

#[tokio::test]
async fn time_zone_is_set_read_back_and_checked() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let bob = app.user("bob").await;
    let (_, body) = ann.get("/tools/api/user/me/profile/").await;
    assert_eq!(body["data"]["time_zone"], "", "unknown until set");

    let (status, body) = ann
        .patch(
            "/tools/api/user/me/profile/",
            json!({"time_zone": "America/Argentina/Buenos_Aires"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["time_zone"], "America/Argentina/Buenos_Aires");
    let (_, body) = bob
        .get(&format!("/tools/api/user/{}/profile/", ann.id()))
        .await;
    assert_eq!(
        body["data"]["time_zone"], "America/Argentina/Buenos_Aires",
        "others see it"
    );

    for bad in [
        json!("Asia/Shang hai"),
        json!("../../etc/passwd"),
        json!("<script>"),
        json!(format!("Asia/{}", "A".repeat(60))),
    ] {
        let (status, body) = ann
            .patch("/tools/api/user/me/profile/", json!({ "time_zone": bad }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(body["success"], false);
        assert_eq!(body["error"]["code"], "invalid_time_zone");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("IANA")),
            "{body}"
        );
    }
    let (status, body) = ann
        .patch("/tools/api/user/me/profile/", json!({"time_zone": 8}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_json");
    let (_, body) = ann.get("/tools/api/user/me/profile/").await;
    assert_eq!(
        body["data"]["time_zone"], "America/Argentina/Buenos_Aires",
        "refused values change nothing"
    );

    let (status, body) = ann
        .patch("/tools/api/user/me/profile/", json!({"time_zone": ""}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["time_zone"], "", "an empty zone forgets it");
}
