//! Joining, leaving, adding, removing, muting, banning, roles and ownership.

use super::*;
use crate::store::Conflict;

/// Joins a public room (idempotent).
pub async fn join(ctx: &Services, user: &User, id: &RoomId) -> Result<Member> {
    let info = ctx
        .rooms
        .get(&ctx.store, id)
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
    let member = match ctx
        .store
        .insert_member(id, user.id, Role::Member, now)
        .await
    {
        Ok(member) => member,
        Err(StoreError::Conflict(Conflict::Banned)) => return Err(banned()),
        Err(StoreError::Conflict(_)) => {
            return ctx
                .store
                .get_member(id, user.id)
                .await?
                .ok_or_else(AppError::room_not_found);
        }
        Err(e) => return Err(e.into()),
    };
    let room = load_room(ctx, id).await?;
    on_joined(ctx, &room, user).await?;
    announce(
        ctx,
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

pub async fn leave(ctx: &Services, user: &User, id: &RoomId) -> Result<()> {
    let access = access(ctx, id, user.id).await?;
    let member = access.require_member()?;
    not_direct(&access)?;
    if member.role == Role::Owner && access.room.members.len() > 1 {
        return Err(AppError::conflict(
            "owner_must_transfer",
            "transfer ownership to another member before leaving",
        ));
    }
    ctx.store
        .delete_member(id, user.id)
        .await
        .map_err(owner_must_transfer)?;
    let room = load_room(ctx, id).await?;
    on_left(ctx, &room, user, Departure::Left).await?;
    announce(
        ctx,
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
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<Member> {
    let access = access(ctx, id, actor.id).await?;
    not_direct(&access)?;
    not_archived(&access)?;
    require_role(&access, actor, Role::Admin)?;
    let user = load_user(ctx, target).await?;
    if !ctx
        .store
        .list_blockers(actor.id, &[target])
        .await?
        .is_empty()
    {
        return Err(blocked());
    }
    let member = ctx
        .store
        .insert_member(id, target, Role::Member, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(Conflict::Banned) => AppError::forbidden(
                "banned",
                "that user is banned from this room: unban them first",
            ),
            StoreError::Conflict(_) => {
                AppError::conflict("already_member", "that user is already a member")
            }
            other => other.into(),
        })?;
    let room = load_room(ctx, id).await?;
    on_joined(ctx, &room, &user).await?;
    announce(
        ctx,
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

pub(super) fn member_not_found() -> AppError {
    AppError::not_found("member_not_found", "that user is not a member of this room")
}

pub(super) fn insufficient_role() -> AppError {
    AppError::forbidden(
        "insufficient_role",
        "you can only manage members with a lower role than yours",
    )
}

/// The store's refusal to remove an owner while others remain.
pub(super) fn owner_must_transfer(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict(Conflict::OwnerMustTransfer) => AppError::conflict(
            "owner_must_transfer",
            "transfer ownership to another member before leaving",
        ),
        StoreError::NotFound => member_not_found(),
        other => other.into(),
    }
}

/// Moderators may act on members below their own role; nobody acts on the owner.
pub(super) fn check_outranks(
    actor_role: Role,
    access: &Access,
    target: UserId,
) -> Result<MemberAccess> {
    let member = access
        .room
        .members
        .get(&target)
        .copied()
        .ok_or_else(member_not_found)?;
    if member.role >= actor_role {
        return Err(insufficient_role());
    }
    Ok(member)
}

/// The checks that open every action on another member: `actor` belongs to
/// the room, which is not a direct one, holds at least `needed` and outranks
/// `target`, who is a member.
async fn moderate(
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    target: UserId,
    needed: Role,
) -> Result<()> {
    let access = access(ctx, id, actor.id).await?;
    not_direct(&access)?;
    let role = require_role(&access, actor, needed)?;
    check_outranks(role, &access, target)?;
    Ok(())
}

pub async fn remove_member(
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<()> {
    if target == actor.id {
        return leave(ctx, actor, id).await;
    }
    moderate(ctx, actor, id, target, Role::Admin).await?;
    let user = load_user(ctx, target).await?;
    ctx.store
        .delete_member(id, target)
        .await
        .map_err(|e| match e {
            // Became the owner since the check above (a transfer won the race).
            StoreError::Conflict(Conflict::OwnerMustTransfer) => insufficient_role(),
            StoreError::NotFound => member_not_found(),
            other => other.into(),
        })?;
    removed(ctx, id, &user, actor).await
}

/// The live side and the system message of `user`'s removal (or ban) by `actor`.
async fn removed(ctx: &Services, id: &RoomId, user: &User, actor: &User) -> Result<()> {
    let room = load_room(ctx, id).await?;
    on_left(ctx, &room, user, Departure::Removed).await?;
    announce(
        ctx,
        id,
        Some(actor),
        SystemEvent::MemberRemoved {
            user_id: user.id,
            username: user.username.clone(),
            by_id: actor.id,
            by: actor.username.clone(),
        },
    )
    .await
}

/// Mutes a member until `until` (Unix ms), or unmutes with `None`.
pub async fn mute_member(
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    target: UserId,
    until: Option<i64>,
) -> Result<Member> {
    moderate(ctx, actor, id, target, Role::Admin).await?;
    let member = ctx.store.update_member_muted(id, target, until).await?;
    member_updated(ctx, &member);
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
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    target: UserId,
    reason: Option<&str>,
) -> Result<BanEntry> {
    let access = access(ctx, id, actor.id).await?;
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
    let user = load_user(ctx, target).await?;
    let ban = Ban {
        room_id: id.clone(),
        user_id: target,
        banned_by: Some(actor.id),
        banned_at: now_ms(),
        reason,
    };
    let was_member = ctx.store.insert_ban(&ban).await.map_err(|e| match e {
        // Became the owner since the check above (a transfer won the race).
        StoreError::Conflict(Conflict::MemberIsOwner) => insufficient_role(),
        other => other.into(),
    })?;
    ctx.bus.room_changed(id);
    if was_member {
        removed(ctx, id, &user, actor).await?;
    }
    Ok(BanEntry {
        ban,
        user,
        by: Some(actor.clone()),
    })
}

/// Lifts a ban: the user may join, use invites and be added again (a mute
/// they had still applies).
pub async fn unban_member(ctx: &Services, actor: &User, id: &RoomId, target: UserId) -> Result<()> {
    let access = access(ctx, id, actor.id).await?;
    not_direct(&access)?;
    require_role(&access, actor, Role::Admin)?;
    ctx.store
        .delete_ban(id, target)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                AppError::not_found("ban_not_found", "that user is not banned from this room")
            }
            other => other.into(),
        })?;
    ctx.bus.room_changed(id);
    Ok(())
}

/// The room's bans, most recent first (admins).
pub async fn list_bans(ctx: &Services, actor: &User, id: &RoomId) -> Result<Vec<BanEntry>> {
    let access = access(ctx, id, actor.id).await?;
    require_role(&access, actor, Role::Admin)?;
    let bans = ctx.store.list_bans(id).await?;
    let mut ids: Vec<UserId> = bans
        .iter()
        .flat_map(|b| [Some(b.user_id), b.banned_by])
        .flatten()
        .collect();
    ids.sort();
    ids.dedup();
    let users: std::collections::HashMap<UserId, User> = ctx
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
    ctx: &Services,
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
    moderate(ctx, actor, id, target, Role::Owner).await?;
    let member = ctx
        .store
        .update_member_role(id, target, role)
        .await
        .map_err(|e| match e {
            // Became the owner since the check above (a transfer won the race).
            StoreError::Conflict(Conflict::MemberIsOwner) => insufficient_role(),
            StoreError::NotFound => member_not_found(),
            other => other.into(),
        })?;
    member_updated(ctx, &member);
    Ok(member)
}

pub async fn transfer_ownership(
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    target: UserId,
) -> Result<Room> {
    let access = access(ctx, id, actor.id).await?;
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
    let user = load_user(ctx, target).await?;
    // The store decides: the checks above read the cache, which a concurrent
    // transfer or removal may not have reached yet.
    let room = ctx
        .store
        .transfer_ownership(id, actor.id, target, now_ms())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(Conflict::NotOwner) => {
                AppError::forbidden("owner_only", "only the room owner may do that")
            }
            StoreError::NotFound => member_not_found(),
            other => other.into(),
        })?;
    for uid in [actor.id, target] {
        if let Some(member) = ctx.store.get_member(id, uid).await? {
            member_updated(ctx, &member);
        }
    }
    room_updated(ctx, &room);
    announce_owner(ctx, id, &user, actor).await?;
    Ok(room)
}

/// The system message saying `user` owns the room now, `actor`'s doing.
async fn announce_owner(ctx: &Services, id: &RoomId, user: &User, actor: &User) -> Result<()> {
    announce(
        ctx,
        id,
        Some(actor),
        SystemEvent::OwnershipTransferred {
            user_id: user.id,
            username: user.username.clone(),
            by_id: actor.id,
            by: actor.username.clone(),
        },
    )
    .await
}

/// A site admin repairs a room's ownership: `target`, a member, becomes its
/// one owner (whoever held the role before becomes an admin).
pub async fn set_owner(ctx: &Services, actor: &User, id: &RoomId, target: UserId) -> Result<Room> {
    if !actor.is_admin {
        return Err(AppError::forbidden(
            "site_admin_only",
            "only site admins may do that",
        ));
    }
    let before = load_room(ctx, id).await?;
    if before.kind == RoomKind::Direct {
        return Err(AppError::forbidden(
            "direct_room",
            "direct rooms always have exactly two members",
        ));
    }
    let user = load_user(ctx, target).await?;
    let previous = ctx.store.list_members(id).await?;
    let room = ctx
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
            && let Some(now) = ctx.store.get_member(id, member.user_id).await?
        {
            member_updated(ctx, &now);
        }
    }
    room_updated(ctx, &room);
    if before.owner_id != Some(target) {
        announce_owner(ctx, id, &user, actor).await?;
    }
    Ok(room)
}
