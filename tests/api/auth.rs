use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, spawn_app, spawn_app_with};

#[tokio::test]
async fn register_logs_in_and_sets_cookies() {
    let app = spawn_app().await;
    let ann = app.anonymous();
    let (status, body) = ann
        .post(
            "/tools/api/auth/register/",
            json!({"username": "Ann.Lee", "password": PASSWORD, "display_name": "安"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["success"], true);
    assert_eq!(body["data"]["username"], "Ann.Lee");
    assert_eq!(body["data"]["display_name"], "安");
    assert!(ann.cookie("sessionid").is_some());
    let csrf = ann.cookie("csrftoken").expect("csrf cookie");
    assert_eq!(body["data"]["csrf_token"], csrf);

    let (status, me) = ann.get("/tools/api/auth/me/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["username"], "Ann.Lee");
    // Without the trailing slash too.
    let (status, _) = ann.get("/tools/api/auth/me").await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn registration_is_validated() {
    let app = spawn_app().await;
    let client = app.anonymous();
    for (body, code) in [
        (
            json!({"username": "ab", "password": PASSWORD}),
            "invalid_username",
        ),
        (
            json!({"username": "has space", "password": PASSWORD}),
            "invalid_username",
        ),
        (
            json!({"username": "x".repeat(33), "password": PASSWORD}),
            "invalid_username",
        ),
        (
            json!({"username": "shorty", "password": "1234567"}),
            "weak_password",
        ),
    ] {
        let (status, reply) = client.post("/tools/api/auth/register/", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
        assert_eq!(reply["success"], false);
        assert_eq!(reply["error"]["code"], code);
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let (status, reply) = client
        .post("/tools/api/auth/register/", json!({"username": "ann"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["code"], "invalid_json");
    let (status, reply) = client
        .send(
            client
                .request(Method::POST, "/tools/api/auth/register/")
                .body("username=ann"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(reply["error"]["code"], "invalid_content_type");
}

#[tokio::test]
async fn usernames_are_unique_regardless_of_case() {
    let app = spawn_app().await;
    app.user("Alice").await;
    let (status, body) = app
        .anonymous()
        .post(
            "/tools/api/auth/register/",
            json!({"username": "aLiCe", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "username_taken");
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = spawn_app_with(|c| c.registration_open = false).await;
    let (status, body) = app
        .anonymous()
        .post(
            "/tools/api/auth/register/",
            json!({"username": "ann", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "registration_closed");
}

#[tokio::test]
async fn login_logout_and_revocation() {
    let app = spawn_app().await;
    app.user("bob").await;
    let bob = app.anonymous();
    let (status, body) = bob
        .post(
            "/tools/api/auth/login/",
            json!({"username": "BOB", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["username"], "bob");
    let old_cookie = bob.cookie("sessionid").unwrap();

    let (status, _) = bob.post("/tools/api/auth/logout/", json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = bob.get("/tools/api/auth/me/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "not_authenticated");

    // The revoked cookie is useless even if replayed.
    let replay = app.anonymous();
    let (status, _) = replay
        .send(
            replay
                .request(Method::GET, "/tools/api/auth/me/")
                .header("cookie", format!("sessionid={old_cookie}")),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_throttled() {
    let app = spawn_app_with(|c| c.login_max_failures = 3).await;
    app.user("carol").await;
    let client = app.anonymous();
    for _ in 0..3 {
        let (status, body) = client
            .post(
                "/tools/api/auth/login/",
                json!({"username": "carol", "password": "wrong-password"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "invalid_credentials");
    }
    let response = client
        .request(Method::POST, "/tools/api/auth/login/")
        .json(&json!({"username": "carol", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 0 && retry <= 15 * 60);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_attempts");
    // Unknown users are refused the same way as wrong passwords.
    let (status, body) = client
        .post(
            "/tools/api/auth/login/",
            json!({"username": "nobody", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_credentials");
}

/// Login trims the username, so the throttle must count `" carol"` as `carol`.
#[tokio::test]
async fn padding_the_username_does_not_escape_the_throttle() {
    let app = spawn_app_with(|c| c.login_max_failures = 3).await;
    app.user("carol").await;
    let client = app.anonymous();
    for name in ["carol", " carol", "CAROL "] {
        let (status, body) = client
            .post(
                "/tools/api/auth/login/",
                json!({"username": name, "password": "wrong-password"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name:?}: {body}");
    }
    for name in [" carol", "carol", "\tcarol\n"] {
        let (status, body) = client
            .post(
                "/tools/api/auth/login/",
                json!({"username": name, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{name:?}: {body}");
    }
}

#[tokio::test]
async fn login_throttling_counts_per_ip_across_usernames() {
    let app = spawn_app_with(|c| c.login_max_failures_per_ip = 2).await;
    let client = app.anonymous();
    for name in ["u1x", "u2x"] {
        let (status, _) = client
            .post(
                "/tools/api/auth/login/",
                json!({"username": name, "password": "wrongwrong"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, _) = client
        .post(
            "/tools/api/auth/login/",
            json!({"username": "u3x", "password": "wrongwrong"}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn csrf_is_required_for_cookie_writes_only() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    // No header.
    let (status, body) = ann
        .send(
            ann.http
                .post(app.url("/tools/api/chat/general/send/"))
                .json(&json!({"content": "hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "csrf_failed");
    // A wrong header.
    let (status, body) = ann
        .send(
            ann.http
                .post(app.url("/tools/api/chat/general/send/"))
                .header("X-CSRFToken", "forged")
                .json(&json!({"content": "hi"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["code"], "csrf_failed");
    // Reads need no token.
    let (status, _) = ann
        .send(ann.http.get(app.url("/tools/api/chat/rooms/")))
        .await;
    assert_eq!(status, StatusCode::OK);
    // With the token it works; and bearer requests are exempt.
    let (status, _) = ann
        .post("/tools/api/chat/general/send/", json!({"content": "hi"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = ann.api_token().await;
    let (status, _) = ann
        .send(
            app.anonymous()
                .http
                .post(app.url("/tools/api/chat/general/send/"))
                .bearer_auth(&token)
                .json(&json!({"content": "bot"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn api_tokens_lifecycle() {
    let app = spawn_app().await;
    let ann = app.user("ann").await;
    let (status, body) = ann
        .post("/tools/api/auth/tokens/", json!({"name": "my bot"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let token = body["data"]["token"].as_str().unwrap().to_string();
    let id = body["data"]["id"].as_str().unwrap().to_string();
    assert_eq!(body["data"]["name"], "my bot");
    assert!(token.starts_with("prl_"));

    let (_, list) = ann.get("/tools/api/auth/tokens/").await;
    let tokens = list["data"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert!(
        tokens[0].get("token").is_none(),
        "the token is shown only once"
    );

    let mut bot = app.anonymous();
    bot.bearer = Some(token.clone());
    let (status, me) = bot.get("/tools/api/auth/me/").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["username"], "ann");

    let (status, _) = ann
        .post("/tools/api/auth/tokens/", json!({"name": "  "}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _) = ann.delete(&format!("/tools/api/auth/tokens/{id}/")).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = bot.get("/tools/api/auth/me/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "invalid_token");
    let (status, _) = ann.delete(&format!("/tools/api/auth/tokens/{id}/")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Another user's token cannot be deleted by id.
    let (_, body) = ann
        .post("/tools/api/auth/tokens/", json!({"name": "second"}))
        .await;
    let other_id = body["data"]["id"].as_str().unwrap().to_string();
    let eve = app.user("eve").await;
    let (status, _) = eve
        .delete(&format!("/tools/api/auth/tokens/{other_id}/"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn changing_the_password_revokes_other_sessions() {
    let app = spawn_app().await;
    let laptop = app.user("dan").await;
    let phone = app.anonymous();
    let (status, _) = phone
        .post(
            "/tools/api/auth/login/",
            json!({"username": "dan", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, sessions) = laptop.get("/tools/api/auth/sessions/").await;
    assert_eq!(sessions["data"].as_array().unwrap().len(), 2);

    let (status, body) = laptop
        .post(
            "/tools/api/auth/password/",
            json!({"current_password": "nope-nope", "new_password": "brand-new-pass"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let (status, body) = laptop
        .post(
            "/tools/api/auth/password/",
            json!({"current_password": PASSWORD, "new_password": "brand-new-pass"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["data"]["sessions_revoked"], 1);
    assert_eq!(laptop.get("/tools/api/auth/me/").await.0, StatusCode::OK);
    assert_eq!(
        phone.get("/tools/api/auth/me/").await.0,
        StatusCode::UNAUTHORIZED
    );
    let again = app.anonymous();
    let (status, _) = again
        .post(
            "/tools/api/auth/login/",
            json!({"username": "dan", "password": "brand-new-pass"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Someone with a stolen session cannot guess the password through the
/// password change faster than at the login form: the same throttle counts.
#[tokio::test]
async fn wrong_current_passwords_are_throttled_like_logins() {
    let app = spawn_app().await;
    let dan = app.user("dan").await;
    let mut refused = Vec::new();
    for i in 0..30 {
        let (status, body) = dan
            .post(
                "/tools/api/auth/password/",
                json!({"current_password": format!("guess-{i:04}"), "new_password": "brand-new-pass"}),
            )
            .await;
        refused.push((status, body["error"]["code"].as_str().unwrap().to_string()));
    }
    // --login-max-failures (5) wrong answers, then throttled.
    for (i, (status, code)) in refused.iter().enumerate() {
        if i < 5 {
            assert_eq!(
                (*status, code.as_str()),
                (StatusCode::FORBIDDEN, "invalid_credentials")
            );
        } else {
            assert_eq!(
                (*status, code.as_str()),
                (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
            );
        }
    }
    // The right password is refused too until the window ends.
    let response = dan
        .request(reqwest::Method::POST, "/tools/api/auth/password/")
        .json(&json!({"current_password": PASSWORD, "new_password": "brand-new-pass"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        wait > 800 && wait <= 900,
        "the rest of the 15-minute window: {wait}"
    );
    // Nothing changed, and it is the login throttle: logging in as dan waits too.
    let id = parley::domain::ids::UserId::parse(&dan.id()).unwrap();
    let hash = app
        .state
        .store
        .get_password_hash(id)
        .await
        .unwrap()
        .unwrap();
    assert!(
        parley::services::accounts::verify_password(PASSWORD.into(), hash)
            .await
            .unwrap()
    );
    let (status, body) = app
        .anonymous()
        .post(
            "/tools/api/auth/login/",
            json!({"username": "dan", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
}

#[tokio::test]
async fn everything_needs_a_login() {
    let app = spawn_app().await;
    let anon = app.anonymous();
    for path in [
        "/tools/api/auth/me/",
        "/tools/api/chat/rooms/",
        "/tools/api/chat/general/messages/",
        "/tools/api/chat/general/participants/",
        "/tools/api/user/me/profile/",
    ] {
        let (status, body) = anon.get(path).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["error"]["code"], "not_authenticated");
    }
    let (status, _) = anon
        .post("/tools/api/chat/general/send/", json!({"content": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

/// The `Set-Cookie` headers of a response, parsed, by cookie name.
fn set_cookies(
    response: &reqwest::Response,
) -> std::collections::HashMap<String, cookie::Cookie<'static>> {
    response
        .headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .map(|v| {
            let c = cookie::Cookie::parse(v.to_str().unwrap().to_string()).unwrap();
            (c.name().to_string(), c)
        })
        .collect()
}

async fn register_raw(app: &crate::helpers::TestApp, username: &str) -> reqwest::Response {
    let response = reqwest::Client::new()
        .post(app.url("/tools/api/auth/register/"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    response
}

#[tokio::test]
async fn session_cookies_are_http_only_lax_and_secure_over_https() {
    let app = spawn_app().await;
    let cookies = set_cookies(&register_raw(&app, "ann").await);
    let session = &cookies["sessionid"];
    assert_eq!(session.http_only(), Some(true), "{session}");
    assert_eq!(
        session.same_site(),
        Some(cookie::SameSite::Lax),
        "{session}"
    );
    assert_eq!(
        session.secure(),
        None,
        "no Secure over plain http: {session}"
    );
    assert_eq!(session.path(), Some("/"));
    let csrf = &cookies["csrftoken"];
    assert_ne!(
        csrf.http_only(),
        Some(true),
        "scripts read the CSRF token: {csrf}"
    );
    assert_eq!(csrf.same_site(), Some(cookie::SameSite::Lax), "{csrf}");
    assert_eq!(csrf.secure(), None, "{csrf}");
    // Login sets the same.
    let login = reqwest::Client::new()
        .post(app.url("/tools/api/auth/login/"))
        .json(&json!({"username": "ann", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let cookies = set_cookies(&login);
    assert_eq!(cookies["sessionid"].http_only(), Some(true));
    assert_eq!(cookies["sessionid"].secure(), None);

    let https = spawn_app_with(|c| {
        c.public_url = Some(reqwest::Url::parse("https://chat.example.com/").unwrap());
    })
    .await;
    let cookies = set_cookies(&register_raw(&https, "ann").await);
    for name in ["sessionid", "csrftoken"] {
        let cookie = &cookies[name];
        assert_eq!(cookie.secure(), Some(true), "{cookie}");
        assert_eq!(cookie.same_site(), Some(cookie::SameSite::Lax), "{cookie}");
    }
    assert_eq!(cookies["sessionid"].http_only(), Some(true));
    assert_ne!(cookies["csrftoken"].http_only(), Some(true));
}

#[tokio::test]
async fn an_expired_session_stops_working() {
    let app = spawn_app_with(|c| c.session_ttl = std::time::Duration::from_secs(1)).await;
    let ann = app.user("ann").await;
    assert_eq!(ann.get("/tools/api/auth/me/").await.0, StatusCode::OK);
    let mut ws = ann.ws("/ws/chat/general/").await;
    assert_eq!(ws.next_json().await["type"], "connection_established");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let (status, body) = ann.get("/tools/api/auth/me/").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["code"], "not_authenticated");
    let (status, _) = ann
        .post("/tools/api/chat/general/send/", json!({"content": "late"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let refused = ann.try_ws("/ws/chat/general/", Some(&ann.origin())).await;
    assert_eq!(crate::helpers::refused_status(refused), 401);
    let (_, sessions) = app
        .anonymous()
        .post(
            "/tools/api/auth/login/",
            json!({"username": "ann", "password": PASSWORD}),
        )
        .await;
    assert_eq!(
        sessions["data"]["username"], "ann",
        "logging in again works"
    );
}
