//! `/tools/api/chat/...`: rooms, membership, moderation, invites, participants.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{created, done, ok};
use crate::domain::ids::{RoomId, UserId};
use crate::domain::room::{Member, Role, RoomKind};
use crate::domain::time::{now_ms, rfc3339};
use crate::error::{AppError, Result};
use crate::http::extract::{ApiJson, ApiQuery, AuthUser};
use crate::http::state::AppState;
use crate::services::profiles;
use crate::services::rooms::{self, CreateInvite, CreateRoom};
use crate::store::{Invite, RoomCursor};
use crate::views::{RoomView, avatar_url};

/// A room id from the path; malformed ids name no room.
pub fn room_id(raw: &str) -> Result<RoomId> {
    RoomId::parse(raw).map_err(|_| AppError::room_not_found())
}

fn user_id(raw: &str) -> Result<UserId> {
    UserId::parse(raw).map_err(|_| AppError::user_not_found())
}

#[derive(Deserialize)]
pub struct CreateRoomRequest {
    name: String,
    room_type: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    members: Vec<UserId>,
}

/// `POST /tools/api/chat/rooms/` → 201 with the room.
pub async fn create_room(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateRoomRequest>,
) -> Result<Response> {
    let kind = match RoomKind::from_code(&body.room_type) {
        Some(kind @ (RoomKind::Group | RoomKind::Public)) => kind,
        _ => {
            return Err(AppError::bad_request(
                "invalid_room_type",
                "room_type is \"group\" or \"public\"",
            ));
        }
    };
    let input = CreateRoom {
        name: body.name,
        kind,
        description: body.description,
        members: body.members,
    };
    let room = rooms::create(&state, &auth.user, input).await?;
    let count = state.store.list_members(&room.id).await?.len() as i64;
    Ok(created(RoomView {
        member_count: Some(count),
        my_role: Some(Role::Owner),
        ..RoomView::new(&room)
    }))
}

#[derive(Deserialize)]
pub struct RoomListQuery {
    #[serde(default)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[serde(default)]
    cursor: Option<String>,
}

/// A page of the room list: `data` as before, and where the next page starts.
#[derive(Serialize)]
struct RoomListPage<'a> {
    success: bool,
    data: Vec<RoomView<'a>>,
    /// `null` on the last page.
    next_cursor: Option<String>,
}

/// The wire form of a room-list cursor, `<last activity ms>.<room id>`
/// (opaque to clients; `.` never occurs in a room id).
fn encode_cursor(cursor: &RoomCursor) -> String {
    format!("{}.{}", cursor.active_at, cursor.room_id)
}

fn decode_cursor(raw: &str) -> Result<RoomCursor> {
    let invalid = || {
        AppError::bad_request(
            "invalid_cursor",
            "cursor is the next_cursor of a previous page",
        )
    };
    let (at, id) = raw.split_once('.').ok_or_else(invalid)?;
    Ok(RoomCursor {
        active_at: at.parse().map_err(|_| invalid())?,
        room_id: RoomId::parse(id).map_err(|_| invalid())?,
    })
}

/// `GET /tools/api/chat/rooms/?limit=&cursor=`: a page of my rooms with unread
/// counts and last messages, most recently active first.
pub async fn list_rooms(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiQuery(query): ApiQuery<RoomListQuery>,
) -> Result<Response> {
    let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
    let page = rooms::list_mine(&state, &auth.user, after.as_ref(), query.limit).await?;
    let summaries = &page.rooms;
    let peers: Vec<_> = summaries.iter().filter_map(|s| s.peer.clone()).collect();
    let mut peer_views = profiles::views(&state, &peers, Some(&auth.user))
        .await?
        .into_iter();
    let views: Vec<RoomView> = summaries
        .iter()
        .map(|s| {
            let peer = s.peer.as_ref().and_then(|_| peer_views.next());
            RoomView::summary(s, auth.user.id, peer)
        })
        .collect();
    Ok(Json(RoomListPage {
        success: true,
        data: views,
        next_cursor: page.next.as_ref().map(encode_cursor),
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct PublicQuery {
    #[serde(default)]
    q: String,
}

/// `GET /tools/api/chat/rooms/public/?q=`.
pub async fn list_public_rooms(
    State(state): State<AppState>,
    _auth: AuthUser,
    ApiQuery(query): ApiQuery<PublicQuery>,
) -> Result<Response> {
    let found = rooms::list_public(&state, &query.q).await?;
    let views: Vec<RoomView> = found
        .iter()
        .map(|(room, count)| RoomView {
            member_count: Some(*count),
            ..RoomView::new(room)
        })
        .collect();
    Ok(ok(views))
}

/// `GET /tools/api/chat/<room_id>/`.
pub async fn get_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let (room, member, count) = rooms::get(&state, &auth.user, &room_id(&id)?).await?;
    Ok(ok(RoomView {
        member_count: Some(count),
        my_role: member.as_ref().map(|m| m.role),
        last_read_seq: member.as_ref().map(|m| m.last_read_seq),
        ..RoomView::new(&room)
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoomRequest {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

/// `PATCH /tools/api/chat/<room_id>/` `{"name"?, "description"?}` (owner).
pub async fn update_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRoomRequest>,
) -> Result<Response> {
    let room = rooms::update(
        &state,
        &auth.user,
        &room_id(&id)?,
        body.name,
        body.description,
    )
    .await?;
    Ok(ok(RoomView::new(&room)))
}

/// `POST /tools/api/chat/<room_id>/archive/` (owner).
pub async fn archive_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let room = rooms::set_archived(&state, &auth.user, &room_id(&id)?, true).await?;
    Ok(ok(RoomView::new(&room)))
}

/// `POST /tools/api/chat/<room_id>/unarchive/` (owner).
pub async fn unarchive_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let room = rooms::set_archived(&state, &auth.user, &room_id(&id)?, false).await?;
    Ok(ok(RoomView::new(&room)))
}

#[derive(Serialize)]
struct MemberView {
    room_id: RoomId,
    user_id: UserId,
    role: Role,
    muted_until: Option<String>,
    last_read_seq: i64,
    joined_at: String,
}

impl From<Member> for MemberView {
    fn from(m: Member) -> Self {
        Self {
            muted_until: m.muted_until.filter(|&t| t > now_ms()).map(rfc3339),
            room_id: m.room_id,
            user_id: m.user_id,
            role: m.role,
            last_read_seq: m.last_read_seq,
            joined_at: rfc3339(m.joined_at),
        }
    }
}

/// `POST /tools/api/chat/<room_id>/join/` (public rooms).
pub async fn join_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    Ok(ok(MemberView::from(
        rooms::join(&state, &auth.user, &room_id(&id)?).await?,
    )))
}

/// `POST /tools/api/chat/<room_id>/leave/`.
pub async fn leave_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    rooms::leave(&state, &auth.user, &room_id(&id)?).await?;
    Ok(done())
}

#[derive(Deserialize)]
pub struct AddMemberRequest {
    user_id: UserId,
}

/// `POST /tools/api/chat/<room_id>/members/` `{"user_id"}` (admins) → 201.
pub async fn add_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<AddMemberRequest>,
) -> Result<Response> {
    let member = rooms::add_member(&state, &auth.user, &room_id(&id)?, body.user_id).await?;
    Ok(created(MemberView::from(member)))
}

#[derive(Deserialize, Default)]
pub struct RemoveQuery {
    /// Ban as well: the same as `POST .../bans/<user_id>/` without a reason.
    #[serde(default)]
    ban: bool,
}

/// `DELETE /tools/api/chat/<room_id>/members/<user_id>/[?ban=true]` (admins; yourself = leave).
pub async fn remove_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(String, String)>,
    ApiQuery(query): ApiQuery<RemoveQuery>,
) -> Result<Response> {
    let (room, user) = (room_id(&id)?, user_id(&user)?);
    if query.ban {
        rooms::ban_member(&state, &auth.user, &room, user, None).await?;
    } else {
        rooms::remove_member(&state, &auth.user, &room, user).await?;
    }
    Ok(done())
}

#[derive(Serialize)]
struct BanView {
    room_id: RoomId,
    user_id: UserId,
    username: String,
    display_name: String,
    avatar_url: String,
    /// Who banned (`null` once that account is gone).
    banned_by_id: Option<UserId>,
    banned_by: Option<String>,
    banned_at: String,
    reason: String,
}

impl From<rooms::BanEntry> for BanView {
    fn from(entry: rooms::BanEntry) -> Self {
        let user = entry.user;
        Self {
            avatar_url: avatar_url(user.id, user.avatar_version, user.shown_name()),
            display_name: user.shown_name().to_string(),
            room_id: entry.ban.room_id,
            user_id: user.id,
            username: user.username,
            banned_by_id: entry.by.as_ref().map(|u| u.id),
            banned_by: entry.by.map(|u| u.username),
            banned_at: rfc3339(entry.ban.banned_at),
            reason: entry.ban.reason,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BanRequest {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /tools/api/chat/<room_id>/bans/<user_id>/` `{"reason"?}` (admins) → 201.
pub async fn ban_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(String, String)>,
    body: std::result::Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response> {
    let body: BanRequest = optional_json(body)?;
    let entry = rooms::ban_member(
        &state,
        &auth.user,
        &room_id(&id)?,
        user_id(&user)?,
        body.reason.as_deref(),
    )
    .await?;
    Ok(created(BanView::from(entry)))
}

/// `DELETE /tools/api/chat/<room_id>/bans/<user_id>/` (admins).
pub async fn unban_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(String, String)>,
) -> Result<Response> {
    rooms::unban_member(&state, &auth.user, &room_id(&id)?, user_id(&user)?).await?;
    Ok(done())
}

/// `GET /tools/api/chat/<room_id>/bans/` (admins).
pub async fn list_bans(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let bans = rooms::list_bans(&state, &auth.user, &room_id(&id)?).await?;
    Ok(ok(bans.into_iter().map(BanView::from).collect::<Vec<_>>()))
}

/// A JSON body that may be left out: empty means the defaults.
fn optional_json<T: Default + serde::de::DeserializeOwned>(
    body: std::result::Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<T> {
    let body = body.map_err(|_| AppError::PayloadTooLarge {
        code: "payload_too_large",
        message: "the request body is too large".into(),
    })?;
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&body).map_err(|e| AppError::bad_request("invalid_json", e.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MuteRequest {
    /// Mute for this many minutes; 0 or absent with `muted: false` unmutes.
    #[serde(default)]
    minutes: Option<i64>,
    #[serde(default)]
    muted: Option<bool>,
}

/// `POST /tools/api/chat/<room_id>/members/<user_id>/mute/` `{"minutes": 60}` or `{"muted": false}`.
pub async fn mute_member(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<MuteRequest>,
) -> Result<Response> {
    let until = match (body.muted, body.minutes) {
        (Some(false), _) => None,
        (_, Some(minutes)) if (1..=525_600).contains(&minutes) => Some(now_ms() + minutes * 60_000),
        (Some(true), None) => Some(crate::domain::room::MUTED_FOREVER),
        _ => {
            return Err(AppError::bad_request(
                "invalid_field",
                "give minutes (1-525600), muted: true for indefinitely, or muted: false",
            ));
        }
    };
    let member =
        rooms::mute_member(&state, &auth.user, &room_id(&id)?, user_id(&user)?, until).await?;
    Ok(ok(MemberView::from(member)))
}

#[derive(Deserialize)]
pub struct RoleRequest {
    role: String,
}

/// `POST /tools/api/chat/<room_id>/members/<user_id>/role/` `{"role":"admin"|"member"}` (owner).
pub async fn set_role(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleRequest>,
) -> Result<Response> {
    let role = match Role::from_code(&body.role) {
        Some(role @ (Role::Admin | Role::Member)) => role,
        _ => {
            return Err(AppError::bad_request(
                "invalid_role",
                "role is \"admin\" or \"member\"",
            ));
        }
    };
    let member = rooms::set_role(&state, &auth.user, &room_id(&id)?, user_id(&user)?, role).await?;
    Ok(ok(MemberView::from(member)))
}

#[derive(Deserialize)]
pub struct TransferRequest {
    user_id: UserId,
}

/// `POST /tools/api/chat/<room_id>/transfer/` `{"user_id"}` (owner).
pub async fn transfer_ownership(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response> {
    let room = rooms::transfer_ownership(&state, &auth.user, &room_id(&id)?, body.user_id).await?;
    Ok(ok(RoomView::new(&room)))
}

/// `POST /tools/api/chat/<room_id>/owner/` `{"user_id"}` (site admins): repairs ownership.
pub async fn set_owner(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<TransferRequest>,
) -> Result<Response> {
    let room = rooms::set_owner(&state, &auth.user, &room_id(&id)?, body.user_id).await?;
    Ok(ok(RoomView::new(&room)))
}

/// `POST /tools/api/chat/direct/<user_id>/`: the direct room with that user.
pub async fn direct_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(user): Path<String>,
) -> Result<Response> {
    let (room, is_new) = rooms::direct(&state, &auth.user, user_id(&user)?).await?;
    let view = RoomView {
        member_count: Some(2),
        my_role: Some(Role::Member),
        ..RoomView::new(&room)
    };
    Ok(if is_new { created(view) } else { ok(view) })
}

#[derive(Serialize)]
struct ParticipantsView<'a> {
    room_id: &'a RoomId,
    participants: Vec<crate::views::ParticipantView>,
    status: &'static str,
    created_at: String,
}

/// `GET /tools/api/chat/<room_id>/participants/`.
pub async fn participants(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let (room, participants) = rooms::participants(&state, &auth.user, &room_id(&id)?).await?;
    Ok(ok(ParticipantsView {
        room_id: &room.id,
        participants,
        status: if room.is_archived {
            "archived"
        } else {
            "active"
        },
        created_at: rfc3339(room.created_at),
    }))
}

#[derive(Serialize)]
struct InviteView {
    code: String,
    room_id: RoomId,
    url: String,
    created_at: String,
    expires_at: Option<String>,
    max_uses: Option<i64>,
    uses: i64,
    revoked: bool,
}

fn invite_view(state: &AppState, invite: Invite) -> InviteView {
    let url = state
        .config
        .public_url()
        .join(&format!("invite/{}", invite.code))
        .map(|u| u.to_string())
        .unwrap_or_default();
    InviteView {
        url,
        room_id: invite.room_id,
        created_at: rfc3339(invite.created_at),
        expires_at: invite.expires_at.map(rfc3339),
        max_uses: invite.max_uses,
        uses: invite.uses,
        revoked: invite.revoked,
        code: invite.code,
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    /// Seconds until the link stops working; absent = never.
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    max_uses: Option<i64>,
}

/// `POST /tools/api/chat/<room_id>/invites/` `{"expires_in"?, "max_uses"?}` (admins) → 201.
pub async fn create_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    body: std::result::Result<axum::body::Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response> {
    let body = body.map_err(|_| AppError::PayloadTooLarge {
        code: "payload_too_large",
        message: "the request body is too large".into(),
    })?;
    // The body is optional: an empty one means no expiry and unlimited uses.
    let body: InviteRequest = if body.iter().all(u8::is_ascii_whitespace) {
        InviteRequest::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| AppError::bad_request("invalid_json", e.to_string()))?
    };
    let input = CreateInvite {
        expires_in_ms: body.expires_in.map(|s| s.saturating_mul(1000)),
        max_uses: body.max_uses,
    };
    let invite = rooms::create_invite(&state, &auth.user, &room_id(&id)?, input).await?;
    Ok(created(invite_view(&state, invite)))
}

/// `GET /tools/api/chat/<room_id>/invites/` (admins).
pub async fn list_invites(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response> {
    let invites = rooms::list_invites(&state, &auth.user, &room_id(&id)?).await?;
    Ok(ok(invites
        .into_iter()
        .map(|i| invite_view(&state, i))
        .collect::<Vec<_>>()))
}

/// `DELETE /tools/api/chat/<room_id>/invites/<code>/` (admins).
pub async fn revoke_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((id, code)): Path<(String, String)>,
) -> Result<Response> {
    rooms::revoke_invite(&state, &auth.user, &room_id(&id)?, &code).await?;
    Ok(done())
}

/// `POST /tools/api/chat/invites/<code>/join/`: joins the room the link points to.
pub async fn use_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(code): Path<String>,
) -> Result<Response> {
    let room = rooms::redeem_invite(&state, &auth.user, &code).await?;
    Ok(ok(RoomView::new(&room)))
}
