//! Rooms and membership: who may read, post and moderate, and the side effects
//! of every change (system message, live events, following connections).

use std::sync::Arc;

use crate::config::Config;
use crate::domain::ids::{RoomId, UserId};
use crate::domain::message::{MessageType, NewMessage, Sender, SystemEvent};
use crate::domain::room::{self, Member, Role, Room, RoomKind};
use crate::domain::text;
use crate::domain::time::{now_ms, rfc3339};
use crate::domain::user::User;
use crate::error::{AppError, Result};
use crate::realtime::protocol::ServerEvent;
use crate::services::accounts::random_token;
use crate::services::room_cache::{MemberAccess, RoomAccess};
use crate::services::{presence, profiles};
use crate::state::AppState;
use crate::store::{
    Ban, DynStore, Invite, NewRoom, RoomChanges, RoomCursor, RoomPage, RoomQuota, StoreError,
};
use crate::views::{ParticipantView, RoomView};

/// What a user may do in a room.
pub struct Access {
    pub room: Arc<RoomAccess>,
    pub member: Option<MemberAccess>,
}

impl Access {
    pub fn can_read(&self) -> bool {
        self.member.is_some() || self.room.kind == RoomKind::Public
    }

    pub fn require_member(&self) -> Result<MemberAccess> {
        self.member
            .ok_or_else(|| AppError::forbidden("not_a_member", "you are not a member of this room"))
    }

    /// Members post, unless muted or the room is archived.
    pub fn require_post(&self, now: i64) -> Result<()> {
        let member = self.require_member()?;
        if self.room.is_archived {
            return Err(AppError::forbidden(
                "room_archived",
                "this room is archived and read-only",
            ));
        }
        if self.room.blocked {
            return Err(AppError::forbidden(
                "blocked",
                "one of you blocks the other: nothing can be sent here",
            ));
        }
        if member.muted_until.is_some_and(|until| now < until) {
            return Err(AppError::forbidden("muted", "you are muted in this room"));
        }
        Ok(())
    }
}

/// The room's rules for `user`: 404 if there is no such room, 403 if they may not read it.
pub async fn access(state: &AppState, room: &RoomId, user: UserId) -> Result<Access> {
    let info = state
        .rooms
        .get(&state.store, room)
        .await?
        .ok_or_else(AppError::room_not_found)?;
    let access = Access {
        member: info.members.get(&user).copied(),
        room: info,
    };
    if access.member.is_none() && access.room.banned.contains(&user) {
        return Err(banned());
    }
    if !access.can_read() {
        return Err(AppError::forbidden(
            "not_a_member",
            "you are not a member of this room",
        ));
    }
    Ok(access)
}

fn banned() -> AppError {
    AppError::forbidden("banned", "you are banned from this room")
}

fn blocked() -> AppError {
    AppError::forbidden(
        "blocked",
        "that user does not accept this from you (one of you blocks the other)",
    )
}

/// The role `user` acts with: their member role, or owner for site admins in
/// rooms the server created (which have no owner).
fn acting_role(access: &Access, user: &User) -> Option<Role> {
    match access.member.map(|m| m.role) {
        Some(role) if role > Role::Member => Some(role),
        _ if user.is_admin
            && access.room.owner_id.is_none()
            && access.room.kind != RoomKind::Direct =>
        {
            Some(Role::Owner)
        }
        other => other,
    }
}

fn require_role(access: &Access, user: &User, needed: Role) -> Result<Role> {
    match acting_role(access, user) {
        Some(role) if role >= needed => Ok(role),
        _ if needed == Role::Owner => Err(AppError::forbidden(
            "owner_only",
            "only the room owner may do that",
        )),
        _ => Err(AppError::forbidden(
            "moderator_only",
            "only room admins may do that",
        )),
    }
}

fn not_archived(access: &Access) -> Result<()> {
    if access.room.is_archived {
        return Err(AppError::forbidden(
            "room_archived",
            "this room is archived and read-only",
        ));
    }
    Ok(())
}

fn not_direct(access: &Access) -> Result<()> {
    if access.room.kind == RoomKind::Direct {
        return Err(AppError::forbidden(
            "direct_room",
            "direct rooms always have exactly two members",
        ));
    }
    Ok(())
}

pub fn sender_of(user: &User) -> Arc<Sender> {
    Arc::new(Sender {
        id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        avatar_version: user.avatar_version,
    })
}

/// Stores and delivers a system message about `event`.
async fn announce(
    state: &AppState,
    room: &RoomId,
    actor: Option<&User>,
    event: SystemEvent,
) -> Result<()> {
    let json = serde_json::to_string(&event).map_err(|e| AppError::Internal(e.into()))?;
    state
        .writer
        .write(NewMessage {
            id: crate::domain::ids::MessageId::new(),
            room_id: room.clone(),
            sender: actor.map(sender_of),
            message_type: MessageType::System,
            content: event.text(),
            client_id: None,
            event: Some(json),
            created_at: now_ms(),
        })
        .await?;
    Ok(())
}

async fn load_room(state: &AppState, id: &RoomId) -> Result<Room> {
    state
        .store
        .get_room(id)
        .await?
        .ok_or_else(AppError::room_not_found)
}

async fn load_user(state: &AppState, id: UserId) -> Result<User> {
    state
        .store
        .get_user(id)
        .await?
        .ok_or_else(AppError::user_not_found)
}

/// Live side of someone now belonging to a room: their `/ws/` connections (on
/// every node) learn of it and follow it, and the room sees them arrive if online.
async fn on_joined(state: &AppState, room: &Room, user: &User) -> Result<()> {
    state.cluster.room_changed(&room.id);
    let joined = ServerEvent::RoomJoined {
        room_id: &room.id,
        room: RoomView::new(room),
    }
    .encode();
    state.cluster.to_user(user.id, joined, true);
    state.cluster.follow(user.id, &room.id);
    if state.cluster.is_online(user.id).await {
        let profile = profiles::view(state, user, None).await?;
        presence::announce(
            state,
            std::slice::from_ref(&room.id),
            user.id,
            &user.username,
            &profile,
            true,
        );
    }
    Ok(())
}

/// Live side of someone no longer belonging to a room: they stop receiving it
/// at once, on every node.
async fn on_left(state: &AppState, room: &Room, user: &User, reason: &'static str) -> Result<()> {
    // Asked before the unfollow below: that closes the user's room sockets,
    // and once another node has marked them offline they would not be
    // announced as leaving at all.
    let was_online = state.cluster.is_online(user.id).await;
    state.cluster.room_changed(&room.id);
    let lost_access = reason == "removed" || room.kind != RoomKind::Public;
    state.cluster.unfollow(user.id, &room.id, lost_access);
    let frame = ServerEvent::RoomLeft {
        room_id: &room.id,
        reason,
    }
    .encode();
    state.cluster.to_user(user.id, frame, true);
    if was_online {
        let profile = profiles::view(state, user, None).await?;
        presence::announce(
            state,
            std::slice::from_ref(&room.id),
            user.id,
            &user.username,
            &profile,
            false,
        );
    }
    Ok(())
}

fn room_updated(state: &AppState, room: &Room) {
    state.cluster.room_changed(&room.id);
    let frame = ServerEvent::RoomUpdated {
        room_id: &room.id,
        room: RoomView::new(room),
    }
    .encode();
    state.cluster.to_room(&room.id, frame, None);
}

fn member_updated(state: &AppState, member: &Member) {
    state.cluster.room_changed(&member.room_id);
    let frame = ServerEvent::MemberUpdated {
        room_id: &member.room_id,
        user_id: member.user_id,
        role: member.role,
        muted_until: member.muted_until.filter(|&t| t > now_ms()).map(rfc3339),
    }
    .encode();
    state.cluster.to_room(&member.room_id, frame, None);
}

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
pub async fn join_default_room(state: &AppState, user: &User) -> Result<()> {
    let Ok(id) = RoomId::parse(&state.config.default_room) else {
        return Ok(());
    };
    match state.store.get_room(&id).await? {
        Some(room) if room.kind == RoomKind::Public && !room.is_archived => {
            join(state, user, &id).await?;
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The window `--max-rooms-per-hour` counts over.
const ROOM_QUOTA_WINDOW_MS: i64 = 3_600_000;

fn room_quota(state: &AppState) -> RoomQuota {
    RoomQuota {
        max: state.config.max_rooms_per_hour,
        since: now_ms() - ROOM_QUOTA_WINDOW_MS,
    }
}

/// `429 too_many_rooms`, retried once the oldest room of the window ages out of it.
async fn too_many_rooms(state: &AppState, user: UserId) -> AppError {
    let now = now_ms();
    let oldest = state
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
            state.config.max_rooms_per_hour
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
pub async fn create(state: &AppState, owner: &User, input: CreateRoom) -> Result<Room> {
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
    let max_members = state.config.max_members_per_request;
    if member_ids.len() > max_members {
        return Err(AppError::bad_request(
            "too_many_members",
            format!("add at most {max_members} members at once"),
        ));
    }
    let members = state.store.list_users(&member_ids).await?;
    if members.len() != member_ids.len() {
        return Err(AppError::bad_request(
            "unknown_user",
            "some of the members do not exist",
        ));
    }
    if !state
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
        match state.store.insert_room(&new, Some(room_quota(state))).await {
            Ok(room) => {
                created = Some(room);
                break;
            }
            Err(StoreError::Conflict("room_exists")) => continue,
            Err(StoreError::Conflict("too_many_rooms")) => {
                return Err(too_many_rooms(state, owner.id).await);
            }
            Err(e) => return Err(e.into()),
        }
    }
    let room = created.ok_or_else(|| {
        AppError::conflict("room_exists", "could not find a free room id; try again")
    })?;

    on_joined(state, &room, owner).await?;
    for member in &members {
        on_joined(state, &room, member).await?;
    }
    announce(
        state,
        &room.id,
        Some(owner),
        SystemEvent::RoomCreated {
            user_id: owner.id,
            username: owner.username.clone(),
            name: room.name.clone(),
        },
    )
    .await?;
    load_room(state, &room.id).await
}

/// The direct room of `user` and `other`, created on first use.
pub async fn direct(state: &AppState, user: &User, other: UserId) -> Result<(Room, bool)> {
    if other == user.id {
        return Err(AppError::bad_request(
            "invalid_user",
            "a direct room needs another user",
        ));
    }
    let peer = load_user(state, other).await?;
    if state.store.is_blocked_between(user.id, other).await? {
        return Err(blocked());
    }
    let key = room::direct_key(user.id, other);
    if let Some(room) = state.store.get_direct_room(&key).await? {
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
    match state.store.insert_room(&new, Some(room_quota(state))).await {
        Ok(room) => {
            on_joined(state, &room, user).await?;
            on_joined(state, &room, &peer).await?;
            Ok((room, true))
        }
        Err(StoreError::Conflict("too_many_rooms")) => Err(too_many_rooms(state, user.id).await),
        // Both users opened it at the same moment: the other request created it.
        Err(StoreError::Conflict(_)) => {
            let room = state
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
pub async fn get(
    state: &AppState,
    user: &User,
    id: &RoomId,
) -> Result<(Room, Option<Member>, i64)> {
    access(state, id, user.id).await?;
    let room = load_room(state, id).await?;
    let member = state.store.get_member(id, user.id).await?;
    let count = state
        .rooms
        .get(&state.store, id)
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
    state: &AppState,
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
    Ok(state
        .store
        .list_room_page_for_user(user.id, after, limit)
        .await?)
}

pub async fn list_public(state: &AppState, query: &str) -> Result<Vec<(Room, i64)>> {
    Ok(state.store.list_public_rooms(query.trim(), 100).await?)
}

/// Joins a public room (idempotent).
pub async fn join(state: &AppState, user: &User, id: &RoomId) -> Result<Member> {
    let info = state
        .rooms
        .get(&state.store, id)
        .await?
        .ok_or_else(AppError::room_not_found)?;
    if info.banned.contains(&user.id) {
        return Err(banned());
    }
    if info.kind != RoomKind::Public {
        return Err(AppError::forbidden(
            "invite_required",
            "this room is private: ask an admin to add you or use an invite link",
        ));
    }
    if info.is_archived {
        return Err(AppError::forbidden(
            "room_archived",
            "this room is archived and read-only",
        ));
    }
    let now = now_ms();
    let member = match state
        .store
        .insert_member(id, user.id, Role::Member, now)
        .await
    {
        Ok(member) => member,
        Err(StoreError::Conflict("banned")) => return Err(banned()),
        Err(StoreError::Conflict(_)) => {
            return state
                .store
                .get_member(id, user.id)
                .await?
                .ok_or_else(AppError::room_not_found);
        }
        Err(e) => return Err(e.into()),
    };
    let room = load_room(state, id).await?;
    on_joined(state, &room, user).await?;
    announce(
        state,
        id,
        Some(user),
        SystemEvent::MemberJoined {
            user_id: user.id,
            username: user.username.clone(),
        },
    )
    .await?;
    Ok(member)
}

pub async fn leave(state: &AppState, user: &User, id: &RoomId) -> Result<()> {
    let access = access(state, id, user.id).await?;
    let member = access.require_member()?;
    not_direct(&access)?;
    if member.role == Role::Owner && access.room.members.len() > 1 {
        return Err(AppError::conflict(
            "owner_must_transfer",
            "transfer ownership to another member before leaving",
        ));
    }
    state
        .store
        .delete_member(id, user.id)
        .await
        .map_err(owner_must_transfer)?;
    let room = load_room(state, id).await?;
    on_left(state, &room, user, "left").await?;
    announce(
        state,
        id,
        Some(user),
        SystemEvent::MemberLeft {
            user_id: user.id,
            username: user.username.clone(),
        },
    )
    .await?;
    Ok(())
}

pub async fn add_member(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<Member> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    not_archived(&access)?;
    require_role(&access, actor, Role::Admin)?;
    let user = load_user(state, target).await?;
    if !state
        .store
        .list_blockers(actor.id, &[target])
        .await?
        .is_empty()
    {
        return Err(blocked());
    }
    let member = state
        .store
        .insert_member(id, target, Role::Member, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Conflict("banned") => AppError::forbidden(
                "banned",
                "that user is banned from this room: unban them first",
            ),
            StoreError::Conflict(_) => {
                AppError::conflict("already_member", "that user is already a member")
            }
            other => other.into(),
        })?;
    let room = load_room(state, id).await?;
    on_joined(state, &room, &user).await?;
    announce(
        state,
        id,
        Some(actor),
        SystemEvent::MemberAdded {
            user_id: user.id,
            username: user.username.clone(),
            by_id: actor.id,
            by: actor.username.clone(),
        },
    )
    .await?;
    Ok(member)
}

fn member_not_found() -> AppError {
    AppError::not_found("member_not_found", "that user is not a member of this room")
}

fn insufficient_role() -> AppError {
    AppError::forbidden(
        "insufficient_role",
        "you can only manage members with a lower role than yours",
    )
}

/// The store's refusal to remove an owner while others remain.
fn owner_must_transfer(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict("owner_must_transfer") => AppError::conflict(
            "owner_must_transfer",
            "transfer ownership to another member before leaving",
        ),
        StoreError::NotFound => member_not_found(),
        other => other.into(),
    }
}

/// Moderators may act on members below their own role; nobody acts on the owner.
fn check_outranks(actor_role: Role, access: &Access, target: UserId) -> Result<MemberAccess> {
    let member = access.room.members.get(&target).copied().ok_or_else(|| {
        AppError::not_found("member_not_found", "that user is not a member of this room")
    })?;
    if member.role >= actor_role {
        return Err(AppError::forbidden(
            "insufficient_role",
            "you can only manage members with a lower role than yours",
        ));
    }
    Ok(member)
}

pub async fn remove_member(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<()> {
    if target == actor.id {
        return leave(state, actor, id).await;
    }
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    let role = require_role(&access, actor, Role::Admin)?;
    check_outranks(role, &access, target)?;
    let user = load_user(state, target).await?;
    state
        .store
        .delete_member(id, target)
        .await
        .map_err(|e| match e {
            // Became the owner since the check above (a transfer won the race).
            StoreError::Conflict("owner_must_transfer") => insufficient_role(),
            StoreError::NotFound => member_not_found(),
            other => other.into(),
        })?;
    let room = load_room(state, id).await?;
    on_left(state, &room, &user, "removed").await?;
    announce(
        state,
        id,
        Some(actor),
        SystemEvent::MemberRemoved {
            user_id: user.id,
            username: user.username.clone(),
            by_id: actor.id,
            by: actor.username.clone(),
        },
    )
    .await?;
    Ok(())
}

/// Mutes a member until `until` (Unix ms), or unmutes with `None`.
pub async fn mute_member(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
    until: Option<i64>,
) -> Result<Member> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    let role = require_role(&access, actor, Role::Admin)?;
    check_outranks(role, &access, target)?;
    let member = state.store.update_member_muted(id, target, until).await?;
    member_updated(state, &member);
    Ok(member)
}

/// Longest ban reason, in characters.
pub const BAN_REASON_MAX: usize = 500;

/// A ban with the users it names, for the admins' list.
pub struct BanEntry {
    pub ban: Ban,
    pub user: User,
    /// `None` once the user who banned is gone.
    pub by: Option<User>,
}

/// Bans `target` from the room: they cannot rejoin (by joining, an invite or
/// being added) until unbanned. A member is removed, with the same live
/// effects and system message as a removal. Same rank rule as removing: only
/// someone of a lower role (anyone who is not a member ranks as a member).
pub async fn ban_member(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
    reason: Option<&str>,
) -> Result<BanEntry> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    let role = require_role(&access, actor, Role::Admin)?;
    if target == actor.id {
        return Err(AppError::bad_request(
            "invalid_user",
            "you cannot ban yourself",
        ));
    }
    if access.room.members.contains_key(&target) {
        check_outranks(role, &access, target)?;
    }
    let reason = text::single_line(reason.unwrap_or(""), "reason", BAN_REASON_MAX)?;
    let user = load_user(state, target).await?;
    let ban = Ban {
        room_id: id.clone(),
        user_id: target,
        banned_by: Some(actor.id),
        banned_at: now_ms(),
        reason,
    };
    let was_member = state.store.insert_ban(&ban).await.map_err(|e| match e {
        // Became the owner since the check above (a transfer won the race).
        StoreError::Conflict("member_is_owner") => insufficient_role(),
        other => other.into(),
    })?;
    state.cluster.room_changed(id);
    if was_member {
        let room = load_room(state, id).await?;
        on_left(state, &room, &user, "removed").await?;
        announce(
            state,
            id,
            Some(actor),
            SystemEvent::MemberRemoved {
                user_id: user.id,
                username: user.username.clone(),
                by_id: actor.id,
                by: actor.username.clone(),
            },
        )
        .await?;
    }
    Ok(BanEntry {
        ban,
        user,
        by: Some(actor.clone()),
    })
}

/// Lifts a ban: the user may join, use invites and be added again (a mute
/// they had still applies).
pub async fn unban_member(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<()> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    require_role(&access, actor, Role::Admin)?;
    state
        .store
        .delete_ban(id, target)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                AppError::not_found("ban_not_found", "that user is not banned from this room")
            }
            other => other.into(),
        })?;
    state.cluster.room_changed(id);
    Ok(())
}

/// The room's bans, most recent first (admins).
pub async fn list_bans(state: &AppState, actor: &User, id: &RoomId) -> Result<Vec<BanEntry>> {
    let access = access(state, id, actor.id).await?;
    require_role(&access, actor, Role::Admin)?;
    let bans = state.store.list_bans(id).await?;
    let mut ids: Vec<UserId> = bans
        .iter()
        .flat_map(|b| [Some(b.user_id), b.banned_by])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let users: std::collections::HashMap<UserId, User> = state
        .store
        .list_users(&ids)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    Ok(bans
        .into_iter()
        .filter_map(|ban| {
            let user = users.get(&ban.user_id)?.clone();
            let by = ban.banned_by.and_then(|b| users.get(&b).cloned());
            Some(BanEntry { ban, user, by })
        })
        .collect())
}

/// The owner makes a member an admin or an admin a member.
pub async fn set_role(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
    role: Role,
) -> Result<Member> {
    if role == Role::Owner {
        return Err(AppError::bad_request(
            "invalid_role",
            "use the transfer endpoint to change the owner",
        ));
    }
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    let acting = require_role(&access, actor, Role::Owner)?;
    check_outranks(acting, &access, target)?;
    let member = state
        .store
        .update_member_role(id, target, role)
        .await
        .map_err(|e| match e {
            // Became the owner since the check above (a transfer won the race).
            StoreError::Conflict("member_is_owner") => insufficient_role(),
            StoreError::NotFound => member_not_found(),
            other => other.into(),
        })?;
    member_updated(state, &member);
    Ok(member)
}

pub async fn transfer_ownership(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<Room> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    if access.member.map(|m| m.role) != Some(Role::Owner) {
        return Err(AppError::forbidden(
            "owner_only",
            "only the room owner may do that",
        ));
    }
    if !access.room.members.contains_key(&target) {
        return Err(AppError::not_found(
            "member_not_found",
            "that user is not a member of this room",
        ));
    }
    if target == actor.id {
        return Err(AppError::bad_request(
            "invalid_user",
            "you already own this room",
        ));
    }
    let user = load_user(state, target).await?;
    // The store decides: the checks above read the cache, which a concurrent
    // transfer or removal may not have reached yet.
    let room = state
        .store
        .transfer_ownership(id, actor.id, target, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Conflict("not_owner") => {
                AppError::forbidden("owner_only", "only the room owner may do that")
            }
            StoreError::NotFound => member_not_found(),
            other => other.into(),
        })?;
    for uid in [actor.id, target] {
        if let Some(member) = state.store.get_member(id, uid).await? {
            member_updated(state, &member);
        }
    }
    room_updated(state, &room);
    announce(
        state,
        id,
        Some(actor),
        SystemEvent::OwnershipTransferred {
            user_id: user.id,
            username: user.username.clone(),
            by_id: actor.id,
            by: actor.username.clone(),
        },
    )
    .await?;
    Ok(room)
}

/// A site admin repairs a room's ownership: `target`, a member, becomes its
/// one owner (whoever held the role before becomes an admin).
pub async fn set_owner(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<Room> {
    if !actor.is_admin {
        return Err(AppError::forbidden(
            "site_admin_only",
            "only site admins may do that",
        ));
    }
    let before = load_room(state, id).await?;
    if before.kind == RoomKind::Direct {
        return Err(AppError::forbidden(
            "direct_room",
            "direct rooms always have exactly two members",
        ));
    }
    let user = load_user(state, target).await?;
    let previous = state.store.list_members(id).await?;
    let room = state
        .store
        .set_owner(id, target, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::NotFound => member_not_found(),
            other => other.into(),
        })?;
    // Everyone whose role the repair changed, and the new owner.
    for (member, _) in previous {
        if (member.role == Role::Owner || member.user_id == target)
            && let Some(now) = state.store.get_member(id, member.user_id).await?
        {
            member_updated(state, &now);
        }
    }
    room_updated(state, &room);
    if before.owner_id != Some(target) {
        announce(
            state,
            id,
            Some(actor),
            SystemEvent::OwnershipTransferred {
                user_id: user.id,
                username: user.username.clone(),
                by_id: actor.id,
                by: actor.username.clone(),
            },
        )
        .await?;
    }
    Ok(room)
}

/// The owner renames the room or edits its description.
pub async fn update(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    name: Option<String>,
    description: Option<String>,
) -> Result<Room> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    not_archived(&access)?;
    require_role(&access, actor, Role::Owner)?;
    let name = name.map(|n| room::parse_room_name(&n)).transpose()?;
    let description = description
        .map(|d| room::parse_room_description(&d))
        .transpose()?;
    let before = load_room(state, id).await?;
    let changes = RoomChanges {
        name: name.clone(),
        description: description.clone(),
        is_archived: None,
    };
    let room = state.store.update_room(id, &changes, now_ms()).await?;
    room_updated(state, &room);
    if name.is_some_and(|n| n != before.name) {
        announce(
            state,
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
            state,
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
    state: &AppState,
    actor: &User,
    id: &RoomId,
    archived: bool,
) -> Result<Room> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    require_role(&access, actor, Role::Owner)?;
    if access.room.is_archived == archived {
        return load_room(state, id).await;
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
        announce(state, id, Some(actor), event.clone()).await?;
    }
    let room = state
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
    room_updated(state, &room);
    if !archived {
        announce(state, id, Some(actor), event).await?;
    }
    Ok(room)
}

/// Who is in the room, online members first.
pub async fn participants(
    state: &AppState,
    viewer: &User,
    id: &RoomId,
) -> Result<(Room, Vec<ParticipantView>)> {
    access(state, id, viewer.id).await?;
    let room = load_room(state, id).await?;
    let members = state.store.list_members(id).await?;
    let users: Vec<User> = members.iter().map(|(_, u)| u.clone()).collect();
    let profiles = profiles::views(state, &users, Some(viewer)).await?;
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

pub struct CreateInvite {
    pub expires_in_ms: Option<i64>,
    pub max_uses: Option<i64>,
}

pub async fn create_invite(
    state: &AppState,
    actor: &User,
    id: &RoomId,
    input: CreateInvite,
) -> Result<Invite> {
    let access = access(state, id, actor.id).await?;
    not_direct(&access)?;
    not_archived(&access)?;
    require_role(&access, actor, Role::Admin)?;
    if input.max_uses.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err(AppError::bad_request(
            "invalid_field",
            "max_uses is between 1 and 100000",
        ));
    }
    if input.expires_in_ms.is_some_and(|ms| ms <= 0) {
        return Err(AppError::bad_request(
            "invalid_field",
            "expires_in must be positive",
        ));
    }
    let now = now_ms();
    let invite = Invite {
        code: random_token()[..22].to_string(),
        room_id: id.clone(),
        created_by: actor.id,
        created_at: now,
        expires_at: input.expires_in_ms.map(|ms| now.saturating_add(ms)),
        max_uses: input.max_uses,
        uses: 0,
        revoked: false,
    };
    let max = state.config.max_invites_per_room;
    state
        .store
        .insert_invite(&invite, max)
        .await
        .map_err(|e| match e {
            StoreError::Conflict("too_many_invites") => AppError::conflict(
                "too_many_invites",
                format!("this room already has {max} usable invite links: revoke one first"),
            ),
            other => other.into(),
        })?;
    Ok(invite)
}

pub async fn list_invites(state: &AppState, actor: &User, id: &RoomId) -> Result<Vec<Invite>> {
    let access = access(state, id, actor.id).await?;
    require_role(&access, actor, Role::Admin)?;
    Ok(state.store.list_invites(id).await?)
}

pub async fn revoke_invite(state: &AppState, actor: &User, id: &RoomId, code: &str) -> Result<()> {
    let access = access(state, id, actor.id).await?;
    require_role(&access, actor, Role::Admin)?;
    state
        .store
        .revoke_invite(id, code)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::not_found("invite_not_found", "no such invite"),
            other => other.into(),
        })
}

/// Joins the room an invite link points to (idempotent for members).
pub async fn redeem_invite(state: &AppState, user: &User, code: &str) -> Result<Room> {
    let invalid = || {
        AppError::not_found(
            "invite_invalid",
            "this invite link is invalid, expired or revoked",
        )
    };
    let invite = state.store.get_invite(code).await?.ok_or_else(invalid)?;
    let room = load_room(state, &invite.room_id).await?;
    if state.store.get_member(&room.id, user.id).await?.is_some() {
        return Ok(room);
    }
    if room.is_archived {
        return Err(AppError::forbidden(
            "room_archived",
            "this room is archived and read-only",
        ));
    }
    match state.store.redeem_invite(code, user.id, now_ms()).await {
        Ok(_) => {}
        Err(StoreError::Conflict("already_member")) => return Ok(room),
        Err(StoreError::Conflict("banned")) => return Err(banned()),
        Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => return Err(invalid()),
        Err(e) => return Err(e.into()),
    }
    on_joined(state, &room, user).await?;
    announce(
        state,
        &room.id,
        Some(user),
        SystemEvent::MemberJoined {
            user_id: user.id,
            username: user.username.clone(),
        },
    )
    .await?;
    Ok(room)
}
