//! Telling rooms who arrived and left. A user is online while any node has a
//! connection of theirs; several tabs (or nodes) are one presence.

use crate::bus::RedisLink;
use crate::domain::ids::{RoomId, UserId};
use crate::domain::time::now_ms;
use crate::events::ServerEvent;
use crate::services::Services;
use crate::services::profiles;
use crate::views::ProfileView;

/// Sends `user_joined` (or `user_left`) to each room, on every node.
pub fn announce(
    ctx: &Services,
    rooms: &[RoomId],
    user_id: UserId,
    username: &str,
    profile: &ProfileView,
    joined: bool,
) {
    for room in rooms {
        let (room_id, user_profile) = (room, profile);
        let frame = if joined {
            ServerEvent::UserJoined {
                room_id,
                user_id,
                username,
                user_profile,
            }
            .encode()
        } else {
            ServerEvent::UserLeft {
                room_id,
                user_id,
                username,
                user_profile,
            }
            .encode()
        };
        ctx.bus.to_room_ephemeral(room, frame, Some(user_id));
    }
}

/// A node that stopped beating took its users' connections with it: announce
/// those who are now offline everywhere as gone from their rooms.
pub async fn reap_dead_nodes(ctx: &Services, redis: &RedisLink) {
    while let Some((node, users)) = redis.claim_dead_node().await {
        tracing::warn!(%node, users = users.len(), "a node stopped without a word; its users are offline");
        let still_online = ctx.bus.online(&users).await;
        for user_id in users.into_iter().filter(|u| !still_online.contains(u)) {
            if let Err(err) = announce_gone(ctx, user_id, &[]).await {
                tracing::warn!(error = %err, %user_id, "could not announce a departure");
            }
        }
    }
}

/// The user's last connection on this node is gone (and their grace period
/// over): if they are now offline everywhere, record when they were last seen
/// and tell their rooms, and `followed`, the rooms that connection watched.
pub async fn depart(ctx: &Services, user_id: UserId, followed: &[RoomId]) {
    if !ctx.bus.went_offline(user_id).await {
        return;
    }
    if let Err(err) = announce_gone(ctx, user_id, followed).await {
        tracing::warn!(error = %err, %user_id, "could not announce a departure");
    }
}

async fn announce_gone(
    ctx: &Services,
    user_id: UserId,
    followed: &[RoomId],
) -> crate::error::Result<()> {
    if let Err(err) = ctx.store.update_last_seen(user_id, now_ms()).await {
        // Not worth keeping the rooms from hearing it.
        tracing::warn!(error = %err, %user_id, "could not record last_seen");
    }
    let Some(user) = ctx.store.get_user(user_id).await? else {
        return Ok(());
    };
    let profile = profiles::view(ctx, &user, None).await?;
    let rooms = rooms_to_tell(ctx, user_id, followed).await;
    announce(ctx, &rooms, user.id, &user.username, &profile, false);
    Ok(())
}

/// Where a user's arrival and departure are announced: every room they
/// belong to, plus any public room their connection was watching (`followed`),
/// so the same rooms hear both.
pub async fn rooms_to_tell(ctx: &Services, user_id: UserId, followed: &[RoomId]) -> Vec<RoomId> {
    let mut rooms = match ctx.store.list_room_ids_for_user(user_id).await {
        Ok(rooms) => rooms,
        Err(err) => {
            tracing::warn!(error = %err, "could not list rooms for presence");
            Vec::new()
        }
    };
    for room in followed {
        if !rooms.contains(room) {
            rooms.push(room.clone());
        }
    }
    rooms
}
