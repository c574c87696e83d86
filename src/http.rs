//! The HTTP router and its layers. Every path also answers without its
//! trailing slash (trailing slashes are trimmed before routing).

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::routing::{get, post};
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub mod api;
pub mod assets;
pub mod extract;
pub mod health;
pub mod pages;
pub mod ws;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub fn router(state: AppState) -> NormalizePath<Router> {
    use api::{auth, messages, rooms, users};

    let api = Router::new()
        .route("/auth/register", post(auth::register))
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/me", get(auth::me))
        .route("/auth/password", post(auth::change_password))
        .route("/auth/sessions", get(auth::list_sessions))
        .route(
            "/auth/sessions/logout-others",
            post(auth::logout_other_sessions),
        )
        .route(
            "/auth/tokens",
            get(auth::list_tokens).post(auth::create_token),
        )
        .route(
            "/auth/tokens/{id}",
            axum::routing::delete(auth::delete_token),
        )
        .route("/user/search", get(users::search_users))
        .route(
            "/user/me/profile",
            get(users::get_my_profile).patch(users::update_profile),
        )
        .route(
            "/user/me/avatar",
            post(users::upload_avatar)
                .layer(DefaultBodyLimit::max(crate::avatar::MAX_REQUEST_BYTES)),
        )
        .route("/user/{user_id}/profile", get(users::get_profile))
        .route(
            "/chat/rooms",
            get(rooms::list_rooms).post(rooms::create_room),
        )
        .route("/chat/rooms/public", get(rooms::list_public_rooms))
        .route("/chat/direct/{user_id}", post(rooms::direct_room))
        .route("/chat/invites/{code}/join", post(rooms::use_invite))
        .route(
            "/chat/{room_id}",
            get(rooms::get_room).patch(rooms::update_room),
        )
        .route("/chat/{room_id}/archive", post(rooms::archive_room))
        .route("/chat/{room_id}/unarchive", post(rooms::unarchive_room))
        .route("/chat/{room_id}/join", post(rooms::join_room))
        .route("/chat/{room_id}/leave", post(rooms::leave_room))
        .route("/chat/{room_id}/members", post(rooms::add_member))
        .route(
            "/chat/{room_id}/members/{user_id}",
            axum::routing::delete(rooms::remove_member),
        )
        .route(
            "/chat/{room_id}/members/{user_id}/mute",
            post(rooms::mute_member),
        )
        .route(
            "/chat/{room_id}/members/{user_id}/role",
            post(rooms::set_role),
        )
        .route("/chat/{room_id}/transfer", post(rooms::transfer_ownership))
        .route(
            "/chat/{room_id}/invites",
            get(rooms::list_invites).post(rooms::create_invite),
        )
        .route(
            "/chat/{room_id}/invites/{code}",
            axum::routing::delete(rooms::revoke_invite),
        )
        .route("/chat/{room_id}/participants", get(rooms::participants))
        .route("/chat/{room_id}/messages", get(messages::list_messages))
        .route("/chat/{room_id}/send", post(messages::send_message))
        .route("/chat/{room_id}/read", post(messages::mark_read))
        // Answers are one user's data, current only now: no browser or proxy
        // may keep them (JSON errors from elsewhere get it in `AppError`).
        .layer(SetResponseHeaderLayer::overriding(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));

    // Pages and assets are text worth compressing; the API's small JSON and
    // the WebSocket upgrade are left alone.
    let web = Router::new()
        .route("/", get(pages::app_page))
        .route("/login", get(pages::login_page).post(pages::login_submit))
        .route(
            "/register",
            get(pages::register_page).post(pages::register_submit),
        )
        .route(
            "/logout",
            get(pages::logout_page).post(pages::logout_submit),
        )
        .route("/settings", get(pages::settings_page))
        .route("/u/{username}", get(pages::profile_page))
        .route("/u/{username}/message", post(pages::direct_submit))
        .route(
            "/invite/{code}",
            get(pages::invite_page).post(pages::invite_submit),
        )
        .route(
            "/tools/chat/enhanced/{room_id}",
            get(pages::enhanced_chat_page),
        )
        .route("/assets/{version}/{*path}", get(assets::asset_file))
        .route("/static/{*path}", get(assets::static_file))
        .layer(CompressionLayer::new());

    // Only when users reach us over https (a TLS proxy in front counts): a
    // browser then refuses plain http to this host for a year. Without
    // includeSubDomains: the server knows nothing of the domain's other hosts.
    let hsts = state
        .config
        .secure_cookies()
        .then(|| HeaderValue::from_static("max-age=31536000"));

    let app = Router::new()
        .nest("/tools/api", api)
        .merge(web)
        .route("/ws", get(ws::user_socket))
        .route("/ws/chat/{room_id}", get(ws::room_socket))
        .route("/avatars/{user_id}", get(users::get_avatar))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(pages::not_found)
        .method_not_allowed_fallback(|| async { crate::error::AppError::MethodNotAllowed })
        .with_state(state)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        ))
        .layer(CatchPanicLayer::custom(crate::error::panic_response))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let request_id = request.headers().get(REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or_default();
            tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id)
        }))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(SetSensitiveHeadersLayer::new([header::AUTHORIZATION, header::COOKIE, header::SET_COOKIE]))
        // Outermost, so even a panic's answer carries it.
        .layer(SetResponseHeaderLayer::overriding(
            header::STRICT_TRANSPORT_SECURITY,
            move |_: &axum::response::Response| hsts.clone(),
        ));

    NormalizePathLayer::trim_trailing_slash().layer(app)
}
