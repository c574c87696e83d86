//! Rooms: creating them, finding them, changing them. Who may do what is in
//! `access`, the side effects of a change in `announce`, members in
//! `membership`, invite links in `invites`; callers use them all as
//! `rooms::…`. Like every service, knows no sockets or HTTP.

use std::sync::Arc;

use crate::config::Config;
use crate::domain::ids::{RoomId, UserId};
use crate::domain::message::{MessageType, NewMessage, Sender, SystemEvent};
use crate::domain::room::{self, Member, Role, Room, RoomKind};
use crate::domain::text;
use crate::domain::time::{now_ms, rfc3339};
use crate::domain::user::User;
use crate::error::{AppError, Result};
use crate::events::{Departure, ServerEvent};
use crate::services::Services;
use crate::services::accounts::random_token;
use crate::services::{presence, profiles};
use crate::store::room_cache::{MemberAccess, RoomAccess};
use crate::store::{
    Ban, DynStore, Invite, NewRoom, RoomChanges, RoomCursor, RoomPage, RoomQuota, StoreError,
};
use crate::views::{ParticipantView, RoomView};

mod access;
mod announce;
mod invites;
mod membership;

use crate::store::Conflict;
pub use access::*;
use announce::*;
pub use invites::*;
pub use membership::*;

/// Creates the default public room if it is configured and missing (at
/// startup, and from the command line before the first start).
pub async fn ensure_default_room(store: &DynStore, config: &Config) -> Result<()> {
    if config.default_room.is_empty() {
        return Ok(());
    }
    let id = RoomId::parse(&config.default_room)?;
    if store.get_room(&id).await?.is_some() {
        return Ok(());
    }
    let new = NewRoom {
        id,
        kind: RoomKind::Public,
        name: config.default_room.clone(),
        description: String::new(),
        owner_id: None,
        direct_key: None,
        created_at: now_ms(),
        members: Vec::new(),
        created_by: None,
    };
    match store.insert_room(&new, None).await {
        Ok(_) | Err(StoreError::Conflict(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// New accounts join the default room, as in most team chats.
pub async fn join_default_room(ctx: &Services, user: &User) -> Result<()> {
    let Ok(id) = RoomId::parse(&ctx.config.default_room) else {
        return Ok(());
    };
    match ctx.store.get_room(&id).await? {
        Some(room) if room.kind == RoomKind::Public && !room.is_archived => {
            join(ctx, user, &id).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The window `--max-rooms-per-hour` counts over.
const ROOM_QUOTA_WINDOW_MS: i64 = 3_600_000;

fn room_quota(ctx: &Services) -> RoomQuota {
    RoomQuota {
        max: ctx.config.max_rooms_per_hour,
        since: now_ms() - ROOM_QUOTA_WINDOW_MS,
    }
}

/// `429 too_many_rooms`, retried once the oldest room of the window ages out of it.
async fn too_many_rooms(ctx: &Services, user: UserId) -> AppError {
    let now = now_ms();
    let oldest = ctx
        .store
        .rooms_created_since(user, now - ROOM_QUOTA_WINDOW_MS)
        .await
        .ok()
        .and_then(|(_, oldest)| oldest);
    let wait_ms = oldest.map_or(ROOM_QUOTA_WINDOW_MS, |at| at + ROOM_QUOTA_WINDOW_MS - now);
    AppError::RateLimited {
        code: "too_many_rooms",
        message: format!(
            "you may create {} rooms per hour; try again later",
            ctx.config.max_rooms_per_hour
        ),
        retry_after: std::time::Duration::from_millis(
            u64::try_from(wait_ms.max(1000)).unwrap_or(1000),
        ),
    }
}

pub struct CreateRoom {
    pub name: String,
    pub kind: RoomKind,
    pub description: Option<String>,
    pub members: Vec<UserId>,
}

/// Creates a group or public room owned by `owner`. Its id is the slug of its
/// name when free (`general`), else the slug with a suffix, else random.
pub async fn create(ctx: &Services, owner: &User, input: CreateRoom) -> Result<Room> {
    if input.kind == RoomKind::Direct {
        return Err(AppError::bad_request(
            "invalid_room_type",
            "room_type is group or public; direct rooms come from /tools/api/chat/direct/<user_id>/",
        ));
    }
    let name = room::parse_room_name(&input.name)?;
    let description = room::parse_room_description(input.description.as_deref().unwrap_or(""))?;
    let mut member_ids: Vec<UserId> = input
        .members
        .into_iter()
        .filter(|id| *id != owner.id)
        .collect();
    member_ids.sort();
    member_ids.dedup();
    let max_members = ctx.config.max_members_per_request;
    if member_ids.len() > max_members {
        return Err(AppError::bad_request(
            "too_many_members",
            format!("add at most {max_members} members at once"),
        ));
    }
    let members = ctx.store.list_users(&member_ids).await?;
    if members.len() != member_ids.len() {
        return Err(AppError::bad_request(
            "unknown_user",
            "some of the members do not exist",
        ));
    }
    if !ctx
        .store
        .list_blockers(owner.id, &member_ids)
        .await?
        .is_empty()
    {
        return Err(blocked());
    }
    let mut roster = vec![(owner.id, Role::Owner)];
    roster.extend(member_ids.iter().map(|id| (*id, Role::Member)));

    let slug = RoomId::slug_of(&name).filter(|id| !room::RESERVED_ROOM_IDS.contains(&id.as_str()));
    let mut candidates: Vec<RoomId> = Vec::new();
    if let Some(slug) = &slug {
        candidates.push(slug.clone());
        for _ in 0..3 {
            let suffix: String = RoomId::random().as_str().chars().take(4).collect();
            if let Ok(id) = RoomId::parse(&format!("{slug}-{suffix}")) {
                candidates.push(id);
            }
        }
    }
    candidates.push(RoomId::random());

    let mut created = None;
    for id in candidates {
        let new = NewRoom {
            id,
            kind: input.kind,
            name: name.clone(),
            description: description.clone(),
            owner_id: Some(owner.id),
            direct_key: None,
            created_at: now_ms(),
            members: roster.clone(),
            created_by: Some(owner.id),
        };
        match ctx.store.insert_room(&new, Some(room_quota(ctx))).await {
            Ok(room) => {
                created = Some(room);
                break;
            }
            Err(StoreError::Conflict(Conflict::RoomExists)) => continue,
            Err(StoreError::Conflict(Conflict::TooManyRooms)) => {
                return Err(too_many_rooms(ctx, owner.id).await);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let room = created.ok_or_else(|| {
        AppError::conflict("room_exists", "could not find a free room id; try again")
    })?;

    on_joined(ctx, &room, owner).await?;
    for member in &members {
        on_joined(ctx, &room, member).await?;
    }
    announce(
        ctx,
        &room.id,
        Some(owner),
        SystemEvent::RoomCreated {
            user_id: owner.id,
            username: owner.username.clone(),
            name: room.name.clone(),
        },
    )
    .await?;
    load_room(ctx, &room.id).await
}

/// The direct room of `user` and `other`, created on first use.
pub async fn direct(ctx: &Services, user: &User, other: UserId) -> Result<(Room, bool)> {
    if other == user.id {
        return Err(AppError::bad_request(
            "invalid_user",
            "a direct room needs another user",
        ));
    }
    let peer = load_user(ctx, other).await?;
    if ctx.store.is_blocked_between(user.id, other).await? {
        return Err(blocked());
    }
    let key = room::direct_key(user.id, other);
    if let Some(room) = ctx.store.get_direct_room(&key).await? {
        return Ok((room, false));
    }
    let new = NewRoom {
        id: RoomId::random(),
        kind: RoomKind::Direct,
        name: String::new(),
        description: String::new(),
        owner_id: None,
        direct_key: Some(key.clone()),
        created_at: now_ms(),
        members: vec![(user.id, Role::Member), (other, Role::Member)],
        created_by: Some(user.id),
    };
    match ctx.store.insert_room(&new, Some(room_quota(ctx))).await {
        Ok(room) => {
            on_joined(ctx, &room, user).await?;
            on_joined(ctx, &room, &peer).await?;
            Ok((room, true))
        }
        Err(StoreError::Conflict(Conflict::TooManyRooms)) => {
            Err(too_many_rooms(ctx, user.id).await)
        }
        // Both users opened it at the same moment: the other request created it.
        Err(StoreError::Conflict(_)) => {
            let room = ctx
                .store
                .get_direct_room(&key)
                .await?
                .ok_or_else(AppError::room_not_found)?;
            Ok((room, false))
        }
        Err(e) => Err(e.into()),
    }
}

/// A room with the viewer's membership, if any.
pub async fn get(ctx: &Services, user: &User, id: &RoomId) -> Result<(Room, Option<Member>, i64)> {
    access(ctx, id, user.id).await?;
    let room = load_room(ctx, id).await?;
    let member = ctx.store.get_member(id, user.id).await?;
    let count = ctx
        .rooms
        .get(&ctx.store, id)
        .await?
        .map_or(0, |a| a.members.len() as i64);
    Ok((room, member, count))
}

/// Rooms per page of `GET /tools/api/chat/rooms/` when the client names no limit.
pub const ROOM_PAGE_DEFAULT: u32 = 100;
/// The most a client may ask for in one page.
pub const ROOM_PAGE_MAX: u32 = 200;

/// A page of the rooms `user` belongs to, most recently active first.
pub async fn list_mine(
    ctx: &Services,
    user: &User,
    after: Option<&RoomCursor>,
    limit: Option<u32>,
) -> Result<RoomPage> {
    let limit = limit.unwrap_or(ROOM_PAGE_DEFAULT);
    if !(1..=ROOM_PAGE_MAX).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_limit",
            format!("limit is between 1 and {ROOM_PAGE_MAX}"),
        ));
    }
    Ok(ctx
        .store
        .list_room_page_for_user(user.id, after, limit)
        .await?)
}

pub async fn list_public(ctx: &Services, query: &str) -> Result<Vec<(Room, i64)>> {
    Ok(ctx.store.list_public_rooms(query.trim(), 100).await?)
}

/// The owner renames the room or edits its description.
pub async fn update(
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    name: Option<String>,
    description: Option<String>,
) -> Result<Room> {
    let access = access(ctx, id, actor.id).await?;
    not_direct(&access)?;
    not_archived(&access)?;
    require_role(&access, actor, Role::Owner)?;
    let name = name.map(|n| room::parse_room_name(&n)).transpose()?;
    let description = description
        .map(|d| room::parse_room_description(&d))
        .transpose()?;
    let before = load_room(ctx, id).await?;
    let changes = RoomChanges {
        name: name.clone(),
        description: description.clone(),
        is_archived: None,
    };
    let room = ctx.store.update_room(id, &changes, now_ms()).await?;
    room_updated(ctx, &room);
    if name.is_some_and(|n| n != before.name) {
        announce(
            ctx,
            id,
            Some(actor),
            SystemEvent::RoomRenamed {
                name: room.name.clone(),
                by_id: actor.id,
                by: actor.username.clone(),
            },
        )
        .await?;
    }
    if description.is_some_and(|d| d != before.description) {
        announce(
            ctx,
            id,
            Some(actor),
            SystemEvent::DescriptionChanged {
                by_id: actor.id,
                by: actor.username.clone(),
            },
        )
        .await?;
    }
    Ok(room)
}

/// The owner archives (read-only) or unarchives the room.
pub async fn set_archived(
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    archived: bool,
) -> Result<Room> {
    let access = access(ctx, id, actor.id).await?;
    not_direct(&access)?;
    require_role(&access, actor, Role::Owner)?;
    if access.room.is_archived == archived {
        return load_room(ctx, id).await;
    }
    let event = if archived {
        SystemEvent::RoomArchived {
            by_id: actor.id,
            by: actor.username.clone(),
        }
    } else {
        SystemEvent::RoomUnarchived {
            by_id: actor.id,
            by: actor.username.clone(),
        }
    };
    // Announce while the room still accepts messages (archiving), or once it does again.
    if archived {
        announce(ctx, id, Some(actor), event.clone()).await?;
    }
    let room = ctx
        .store
        .update_room(
            id,
            &RoomChanges {
                is_archived: Some(archived),
                ..Default::default()
            },
            now_ms(),
        )
        .await?;
    room_updated(ctx, &room);
    if !archived {
        announce(ctx, id, Some(actor), event).await?;
    }
    Ok(room)
}

/// Who is in the room, online members first.
pub async fn participants(
    ctx: &Services,
    viewer: &User,
    id: &RoomId,
) -> Result<(Room, Vec<ParticipantView>)> {
    access(ctx, id, viewer.id).await?;
    let room = load_room(ctx, id).await?;
    let members = ctx.store.list_members(id).await?;
    let users: Vec<User> = members.iter().map(|(_, u)| u.clone()).collect();
    let profiles = profiles::views(ctx, &users, Some(viewer)).await?;
    let now = now_ms();
    let mut list: Vec<ParticipantView> = members
        .iter()
        .zip(profiles)
        .map(|((member, _), profile)| ParticipantView::new(profile, member, now))
        .collect();
    list.sort_by(|a, b| {
        b.profile
            .is_online
            .cmp(&a.profile.is_online)
            .then(b.role.cmp(&a.role))
            .then_with(|| {
                a.profile
                    .username
                    .to_lowercase()
                    .cmp(&b.profile.username.to_lowercase())
            })
    });
    Ok((room, list))
}

/// The rooms `user` belongs to.
pub async fn ids_of(ctx: &Services, user: UserId) -> Result<Vec<RoomId>> {
    Ok(ctx.store.list_room_ids_for_user(user).await?)
}

/// Each of the user's rooms with its last seq: where a connection opening
/// on `/ws/` starts.
pub async fn positions_of(ctx: &Services, user: UserId) -> Result<Vec<(RoomId, i64)>> {
    Ok(ctx
        .store
        .list_rooms_for_user(user)
        .await?
        .into_iter()
        .map(|s| (s.room.id, s.room.last_seq))
        .collect())
}

/// The room's last seq (0 for a room that is gone).
pub async fn last_seq(ctx: &Services, room: &RoomId) -> Result<i64> {
    Ok(ctx.store.get_room(room).await?.map_or(0, |r| r.last_seq))
}

/// The room as stored, if it still exists (callers have checked access).
pub async fn find(ctx: &Services, room: &RoomId) -> Result<Option<Room>> {
    Ok(ctx.store.get_room(room).await?)
}

/// Who belongs to the room, from the permission cache (none if it is gone).
pub async fn member_ids(ctx: &Services, room: &RoomId) -> Result<Vec<UserId>> {
    Ok(match ctx.rooms.get(&ctx.store, room).await? {
        Some(access) => access.members.keys().copied().collect(),
        None => Vec::new(),
    })
}
