//! The HTTP layer: the router and its middleware, the API handlers, the
//! pages, the assets, who is calling, and the WebSocket upgrade (which hands
//! the socket to `realtime`). Handlers extract, call one service, respond.
//! Every path also answers without its trailing slash (trailing slashes are
//! trimmed before routing). May reach every layer below; never `bench/`.

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::routing::{MethodFilter, MethodRouter};
use tower::Layer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveHeadersLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::http::state::AppState;

pub mod api;
pub mod assets;
pub mod extract;
pub mod health;
pub mod identity;
pub mod pages;
pub mod serve;
pub mod state;
pub mod ws;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// A route as registered: its method and its full path (`{param}`s unfilled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    pub method: Method,
    pub path: String,
}

/// Routes added one method at a time, so that the table of what the router
/// answers is made by the same calls that make the router: it cannot go stale
/// (the permission-matrix test walks it, and fails on a route it does not list).
struct Routes {
    prefix: &'static str,
    paths: Vec<(&'static str, MethodRouter<AppState>)>,
    table: Vec<RouteEntry>,
}

impl Routes {
    fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            paths: Vec::new(),
            table: Vec::new(),
        }
    }

    fn on<H, T>(mut self, method: Method, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone())
            .expect("routes use the standard methods (GET, POST, PATCH, DELETE)");
        match self.paths.iter_mut().find(|(p, _)| *p == path) {
            Some((_, methods)) => *methods = std::mem::take(methods).on(filter, handler),
            None => self
                .paths
                .push((path, MethodRouter::new().on(filter, handler))),
        }
        self.table.push(RouteEntry {
            method,
            path: format!("{}{}", self.prefix, path),
        });
        self
    }

    fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::GET, path, handler)
    }

    fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::POST, path, handler)
    }

    fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::PATCH, path, handler)
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.on(Method::DELETE, path, handler)
    }

    /// The router, and the routes it holds.
    fn build(self) -> (Router<AppState>, Vec<RouteEntry>) {
        let router = self
            .paths
            .into_iter()
            .fold(Router::new(), |router, (path, methods)| {
                router.route(path, methods)
            });
        (router, self.table)
    }
}

/// The JSON API, under `/tools/api`.
fn api_routes() -> Routes {
    use api::{attachments, auth, messages, rooms, users};

    Routes::new("/tools/api")
        .post("/auth/register", auth::register)
        .post("/auth/login", auth::login)
        .post("/auth/logout", auth::logout)
        .get("/auth/me", auth::me)
        .post("/auth/password", auth::change_password)
        .get("/auth/sessions", auth::list_sessions)
        .post("/auth/sessions/logout-others", auth::logout_other_sessions)
        .get("/auth/tokens", auth::list_tokens)
        .post("/auth/tokens", auth::create_token)
        .delete("/auth/tokens/{id}", auth::delete_token)
        .get("/user/search", users::search_users)
        .get("/user/me/profile", users::get_my_profile)
        .patch("/user/me/profile", users::update_profile)
        .post(
            "/user/me/avatar",
            users::upload_avatar.layer(DefaultBodyLimit::max(crate::avatar::MAX_REQUEST_BYTES)),
        )
        .delete("/user/me/avatar", users::delete_avatar)
        .get("/user/{user_id}/profile", users::get_profile)
        .post("/user/{user_id}/block", users::block_user)
        .delete("/user/{user_id}/block", users::unblock_user)
        .get("/user/me/blocks", users::list_blocks)
        .get("/chat/rooms", rooms::list_rooms)
        .post("/chat/rooms", rooms::create_room)
        .get("/chat/rooms/public", rooms::list_public_rooms)
        .post("/chat/direct/{user_id}", rooms::direct_room)
        .post("/chat/invites/{code}/join", rooms::use_invite)
        .get("/chat/{room_id}", rooms::get_room)
        .patch("/chat/{room_id}", rooms::update_room)
        .post("/chat/{room_id}/archive", rooms::archive_room)
        .post("/chat/{room_id}/unarchive", rooms::unarchive_room)
        .post("/chat/{room_id}/join", rooms::join_room)
        .post("/chat/{room_id}/leave", rooms::leave_room)
        .post("/chat/{room_id}/members", rooms::add_member)
        .delete("/chat/{room_id}/members/{user_id}", rooms::remove_member)
        .post("/chat/{room_id}/members/{user_id}/mute", rooms::mute_member)
        .post("/chat/{room_id}/members/{user_id}/role", rooms::set_role)
        .post("/chat/{room_id}/transfer", rooms::transfer_ownership)
        .post("/chat/{room_id}/owner", rooms::set_owner)
        .get("/chat/{room_id}/bans", rooms::list_bans)
        .post("/chat/{room_id}/bans/{user_id}", rooms::ban_member)
        .delete("/chat/{room_id}/bans/{user_id}", rooms::unban_member)
        .get("/chat/{room_id}/invites", rooms::list_invites)
        .post("/chat/{room_id}/invites", rooms::create_invite)
        .delete("/chat/{room_id}/invites/{code}", rooms::revoke_invite)
        .get("/chat/{room_id}/participants", rooms::participants)
        .get("/chat/{room_id}/messages", messages::list_messages)
        .post("/chat/{room_id}/send", messages::send_message)
        .post("/chat/{room_id}/read", messages::mark_read)
        // Uploads enforce their own limits as the file streams in.
        .post(
            "/chat/{room_id}/uploads",
            attachments::upload.layer(DefaultBodyLimit::disable()),
        )
        .post(
            "/chat/{room_id}/send-image",
            attachments::send_image.layer(DefaultBodyLimit::disable()),
        )
        .post(
            "/chat/{room_id}/send-file",
            attachments::send_file.layer(DefaultBodyLimit::disable()),
        )
        .post(
            "/chat/{room_id}/send-audio",
            attachments::send_audio.layer(DefaultBodyLimit::disable()),
        )
        .post(
            "/chat/{room_id}/send-video",
            attachments::send_video.layer(DefaultBodyLimit::disable()),
        )
}

/// Pages and assets: text worth compressing.
fn web_routes() -> Routes {
    Routes::new("")
        .get("/", pages::app_page)
        .get("/login", pages::login_page)
        .post("/login", pages::login_submit)
        .get("/register", pages::register_page)
        .post("/register", pages::register_submit)
        .get("/logout", pages::logout_page)
        .post("/logout", pages::logout_submit)
        .get("/settings", pages::settings_page)
        .get("/u/{username}", pages::profile_page)
        .post("/u/{username}/message", pages::direct_submit)
        .get("/invite/{code}", pages::invite_page)
        .post("/invite/{code}", pages::invite_submit)
        .get("/tools/chat/enhanced/{room_id}", pages::enhanced_chat_page)
        .get("/assets/{version}/{*path}", assets::asset_file)
        .get("/static/{*path}", assets::static_file)
}

/// WebSockets, avatars and health: neither JSON API nor compressible pages.
fn other_routes() -> Routes {
    Routes::new("")
        .get("/ws", ws::user_socket)
        .get("/ws/chat/{room_id}", ws::room_socket)
        .get("/avatars/{user_id}", api::users::get_avatar)
        // Under the API's paths, but cached (privately) unlike its JSON.
        .get(
            "/tools/api/chat/attachments/{attachment_id}",
            api::attachments::get_original,
        )
        .get(
            "/tools/api/chat/attachments/{attachment_id}/thumbnail",
            api::attachments::get_thumbnail,
        )
        .get(
            "/tools/api/chat/attachments/{attachment_id}/preview",
            api::attachments::get_preview,
        )
        .get(
            "/tools/api/chat/{room_id}/download/{message_id}",
            api::attachments::download_message,
        )
        .get("/healthz", health::healthz)
        .get("/readyz", health::readyz)
}

/// Every route the server answers, with its method.
pub fn route_table() -> Vec<RouteEntry> {
    let mut table = Vec::new();
    for routes in [api_routes(), web_routes(), other_routes()] {
        table.extend(routes.build().1);
    }
    table
}

pub fn router(state: AppState) -> NormalizePath<Router> {
    let (api, _) = api_routes().build();
    // Answers are one user's data, current only now: no browser or proxy may
    // keep them (JSON errors from elsewhere get it in `AppError`).
    let api = api.layer(SetResponseHeaderLayer::overriding(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    ));
    // Pages and assets are text worth compressing; the API's small JSON and
    // the WebSocket upgrade are left alone.
    let (web, _) = web_routes().build();
    let web = web.layer(CompressionLayer::new());
    let (other, _) = other_routes().build();

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
        .merge(other)
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
