//! Invite links: creating, listing, revoking and redeeming them.

use super::*;
use crate::store::Conflict;

pub struct CreateInvite {
    pub expires_in_ms: Option<i64>,
    pub max_uses: Option<i64>,
}

pub async fn create_invite(
    ctx: &Services,
    actor: &User,
    id: &RoomId,
    input: CreateInvite,
) -> Result<Invite> {
    let access = access(ctx, id, actor.id).await?;
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
    let max = ctx.config.max_invites_per_room;
    ctx.store
        .insert_invite(&invite, max)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(Conflict::TooManyInvites) => AppError::conflict(
                "too_many_invites",
                format!("this room already has {max} usable invite links: revoke one first"),
            ),
            other => other.into(),
        })?;
    Ok(invite)
}

pub async fn list_invites(ctx: &Services, actor: &User, id: &RoomId) -> Result<Vec<Invite>> {
    let access = access(ctx, id, actor.id).await?;
    require_role(&access, actor, Role::Admin)?;
    Ok(ctx.store.list_invites(id).await?)
}

pub async fn revoke_invite(ctx: &Services, actor: &User, id: &RoomId, code: &str) -> Result<()> {
    let access = access(ctx, id, actor.id).await?;
    require_role(&access, actor, Role::Admin)?;
    ctx.store
        .revoke_invite(id, code)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => AppError::not_found("invite_not_found", "no such invite"),
            other => other.into(),
        })
}

/// Joins the room an invite link points to (idempotent for members).
pub async fn redeem_invite(ctx: &Services, user: &User, code: &str) -> Result<Room> {
    let invalid = || {
        AppError::not_found(
            "invite_invalid",
            "this invite link is invalid, expired or revoked",
        )
    };
    let invite = ctx.store.get_invite(code).await?.ok_or_else(invalid)?;
    let room = load_room(ctx, &invite.room_id).await?;
    if ctx.store.get_member(&room.id, user.id).await?.is_some() {
        return Ok(room);
    }
    if room.is_archived {
        return Err(AppError::forbidden(
            "room_archived",
            "this room is archived and read-only",
        ));
    }
    match ctx.store.redeem_invite(code, user.id, now_ms()).await {
        Ok(_) => {}
        Err(StoreError::Conflict(Conflict::AlreadyMember)) => return Ok(room),
        Err(StoreError::Conflict(Conflict::Banned)) => return Err(banned()),
        Err(StoreError::Conflict(_)) | Err(StoreError::NotFound) => return Err(invalid()),
        Err(e) => return Err(e.into()),
    }
    on_joined(ctx, &room, user).await?;
    announce(
        ctx,
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
