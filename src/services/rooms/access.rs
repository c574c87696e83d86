//! Who may read, post and moderate in a room: the checks every room
//! operation starts with, on the cached permissions.

use super::*;

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
pub async fn access(ctx: &Services, room: &RoomId, user: UserId) -> Result<Access> {
    let info = ctx
        .rooms
        .get(&ctx.store, room)
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

pub(super) fn banned() -> AppError {
    AppError::forbidden("banned", "you are banned from this room")
}

pub(super) fn blocked() -> AppError {
    AppError::forbidden(
        "blocked",
        "that user does not accept this from you (one of you blocks the other)",
    )
}

/// The role `user` acts with: their member role, or owner for site admins in
/// rooms the server created (which have no owner).
pub(super) fn acting_role(access: &Access, user: &User) -> Option<Role> {
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

pub(super) fn require_role(access: &Access, user: &User, needed: Role) -> Result<Role> {
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

pub(super) fn not_archived(access: &Access) -> Result<()> {
    if access.room.is_archived {
        return Err(AppError::forbidden(
            "room_archived",
            "this room is archived and read-only",
        ));
    }
    Ok(())
}

pub(super) fn not_direct(access: &Access) -> Result<()> {
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
