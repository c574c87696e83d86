//! The side effects of a room change: the system message, the live events
//! and which connections follow the room.

use super::*;

/// Stores and delivers a system message about `event`.
pub(super) async fn announce(
    ctx: &Services,
    room: &RoomId,
    actor: Option<&User>,
    event: SystemEvent,
) -> Result<()> {
    let json = serde_json::to_string(&event).map_err(|e| AppError::Internal(e.into()))?;
    ctx.writer
        .write(NewMessage {
            id: crate::domain::ids::MessageId::new(),
            room_id: room.clone(),
            sender: actor.map(sender_of),
            message_type: MessageType::System,
            content: event.text(),
            client_id: None,
            event: Some(json),
            attachments: Vec::new(),
            created_at: now_ms(),
        })
        .await?;
    Ok(())
}

pub(super) async fn load_room(ctx: &Services, id: &RoomId) -> Result<Room> {
    ctx.store
        .get_room(id)
        .await?
        .ok_or_else(AppError::room_not_found)
}

pub(super) async fn load_user(ctx: &Services, id: UserId) -> Result<User> {
    ctx.store
        .get_user(id)
        .await?
        .ok_or_else(AppError::user_not_found)
}

/// Live side of someone now belonging to a room: their `/ws/` connections (on
/// every node) learn of it and follow it, and the room sees them arrive if online.
pub(super) async fn on_joined(ctx: &Services, room: &Room, user: &User) -> Result<()> {
    ctx.bus.room_changed(&room.id);
    let joined = ServerEvent::RoomJoined {
        room_id: &room.id,
        room: RoomView::new(room),
    }
    .encode();
    ctx.bus.to_user(user.id, joined, true);
    ctx.bus.follow(user.id, &room.id);
    if ctx.bus.is_online(user.id).await {
        announce_presence(ctx, room, user, true).await?;
    }
    Ok(())
}

/// Live side of someone no longer belonging to a room: they stop receiving it
/// at once, on every node.
pub(super) async fn on_left(
    ctx: &Services,
    room: &Room,
    user: &User,
    reason: Departure,
) -> Result<()> {
    // Asked before the unfollow below: that closes the user's room sockets,
    // and once another node has marked them offline they would not be
    // announced as leaving at all.
    let was_online = ctx.bus.is_online(user.id).await;
    ctx.bus.room_changed(&room.id);
    let lost_access = reason == Departure::Removed || room.kind != RoomKind::Public;
    ctx.bus.unfollow(user.id, &room.id, lost_access);
    let frame = ServerEvent::RoomLeft {
        room_id: &room.id,
        reason,
    }
    .encode();
    ctx.bus.to_user(user.id, frame, true);
    if was_online {
        announce_presence(ctx, room, user, false).await?;
    }
    Ok(())
}

/// Tells the room's members that `user`, who is online, arrived or went.
async fn announce_presence(ctx: &Services, room: &Room, user: &User, online: bool) -> Result<()> {
    let profile = profiles::view(ctx, user, None).await?;
    presence::announce(
        ctx,
        std::slice::from_ref(&room.id),
        user.id,
        &user.username,
        &profile,
        online,
    );
    Ok(())
}

pub(super) fn room_updated(ctx: &Services, room: &Room) {
    ctx.bus.room_changed(&room.id);
    let frame = ServerEvent::RoomUpdated {
        room_id: &room.id,
        room: RoomView::new(room),
    }
    .encode();
    ctx.bus.to_room(&room.id, frame, None);
}

pub(super) fn member_updated(ctx: &Services, member: &Member) {
    ctx.bus.room_changed(&member.room_id);
    let frame = ServerEvent::MemberUpdated {
        room_id: &member.room_id,
        user_id: member.user_id,
        role: member.role,
        muted_until: member.muted_until.filter(|&t| t > now_ms()).map(rfc3339),
    }
    .encode();
    ctx.bus.to_room(&member.room_id, frame, None);
}
