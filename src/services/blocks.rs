//! Blocks between users: someone blocked cannot open a direct room with the
//! user who blocked them or add them to rooms, and while a block stands
//! neither posts in their direct room.

use crate::domain::ids::UserId;
use crate::domain::room;
use crate::domain::time::now_ms;
use crate::domain::user::User;
use crate::error::{AppError, Result};
use crate::services::Services;
use crate::store::Conflict;
use crate::store::StoreError;

/// `user` blocks `target` (idempotent); returns the blocked user.
pub async fn block(ctx: &Services, user: &User, target: UserId) -> Result<User> {
    if target == user.id {
        return Err(AppError::bad_request(
            "invalid_user",
            "you cannot block yourself",
        ));
    }
    let blocked = ctx
        .store
        .get_user(target)
        .await?
        .ok_or_else(AppError::user_not_found)?;
    ctx.store
        .insert_block(user.id, target, now_ms(), ctx.config.max_blocks_per_user)
        .await
        .map_err(|e| match e {
            StoreError::Conflict(Conflict::TooManyBlocks) => AppError::conflict(
                "too_many_blocks",
                format!(
                    "you already block {} users: unblock someone first",
                    ctx.config.max_blocks_per_user
                ),
            ),
            StoreError::NotFound => AppError::user_not_found(),
            other => other.into(),
        })?;
    direct_room_changed(ctx, user.id, target).await?;
    Ok(blocked)
}

pub async fn unblock(ctx: &Services, user: &User, target: UserId) -> Result<()> {
    ctx.store
        .delete_block(user.id, target)
        .await
        .map_err(|e| match e {
            StoreError::NotFound => {
                AppError::not_found("block_not_found", "you do not block that user")
            }
            other => other.into(),
        })?;
    direct_room_changed(ctx, user.id, target).await
}

/// The users `user` blocks, most recent first, with when.
pub async fn list(ctx: &Services, user: &User) -> Result<Vec<(User, i64)>> {
    Ok(ctx.store.list_blocks(user.id).await?)
}

/// Whether their direct room takes posts is cached with the room's access
/// rules (the per-message check makes no query): drop it on every node.
async fn direct_room_changed(ctx: &Services, a: UserId, b: UserId) -> Result<()> {
    if let Some(direct) = ctx.store.get_direct_room(&room::direct_key(a, b)).await? {
        ctx.bus.room_changed(&direct.id);
    }
    Ok(())
}
