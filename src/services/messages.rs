//! Sending and reading messages, read receipts and typing: the per-message path.

use std::sync::Arc;
use std::time::Instant;

use crate::domain::ids::{MessageId, RoomId, UserId};
use crate::domain::message::{self, InsertOutcome, MessageType, NewMessage, Sender};
use crate::domain::text;
use crate::domain::time::now_ms;
use crate::error::{AppError, Result};
use crate::events::ServerEvent;
use crate::services::Services;
use crate::services::rooms;
use crate::services::tail_cache::Lookup;
use crate::store::{MessagePage, Page};

pub const PAGE_DEFAULT: u32 = 50;
pub const PAGE_MAX: u32 = 200;

/// Stores a message from `sender` and delivers it once committed: text, or
/// uploads of the sender in this room (`attachments`, their ids) with an
/// optional caption. A repeated `client_id` returns the original message
/// instead of storing a second one.
pub async fn post(
    ctx: &Services,
    sender: &Arc<Sender>,
    room: &RoomId,
    content: &str,
    client_id: Option<&str>,
    attachments: &[String],
) -> Result<InsertOutcome> {
    if let Err(wait) = ctx.limits.check_message(sender.id).await {
        return Err(AppError::RateLimited {
            code: "rate_limited",
            message: "you are sending messages too fast".into(),
            retry_after: wait,
        });
    }
    let content = if !attachments.is_empty() && text::is_blank(content) {
        // A caption is optional.
        String::new()
    } else {
        text::message_content(content, ctx.config.max_message_chars)?
    };
    let client_id = client_id.map(message::parse_client_id).transpose()?;
    let now = now_ms();
    rooms::access(ctx, room, sender.id)
        .await?
        .require_post(now)?;
    let attachments = if attachments.is_empty() {
        Vec::new()
    } else {
        crate::services::attachments::for_message(
            ctx,
            sender.id,
            room,
            attachments,
            client_id.is_some(),
        )
        .await?
    };
    if ctx.typing.stop(room, sender.id) {
        announce_typing(ctx, room, sender.id, &sender.username, false);
    }
    ctx.writer
        .write(NewMessage {
            id: MessageId::new(),
            room_id: room.clone(),
            sender: Some(sender.clone()),
            message_type: MessageType::of_attachments(&attachments),
            content,
            client_id,
            event: None,
            attachments,
            created_at: now,
        })
        .await
}

/// Where a resume of `room` by `user` starts: after `since_seq`, but never
/// past the room's end (a stale client must not skip future messages).
pub async fn resume_point(
    ctx: &Services,
    room: &RoomId,
    user: UserId,
    since_seq: i64,
) -> Result<i64> {
    rooms::access(ctx, room, user).await?;
    let last = rooms::last_seq(ctx, room).await?;
    Ok(since_seq.clamp(0, last))
}

/// Parses `before`/`after`/`limit` into a page request.
pub fn page(before: Option<i64>, after: Option<i64>, limit: Option<u32>) -> Result<Page> {
    let limit = limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=PAGE_MAX).contains(&limit) {
        return Err(AppError::bad_request(
            "invalid_limit",
            "limit is between 1 and 200",
        ));
    }
    match (before, after) {
        (Some(_), Some(_)) => Err(AppError::bad_request(
            "invalid_page",
            "give before or after, not both",
        )),
        (Some(seq), None) if seq < 1 => Err(AppError::bad_request(
            "invalid_page",
            "before is a seq of 1 or more",
        )),
        (None, Some(seq)) if seq < 0 => Err(AppError::bad_request(
            "invalid_page",
            "after is a seq of 0 or more",
        )),
        (Some(seq), None) => Ok(Page::Before { seq, limit }),
        (None, Some(seq)) => Ok(Page::After { seq, limit }),
        (None, None) => Ok(Page::Latest { limit }),
    }
}

/// A page of history as `viewer` may see it, with the read positions that
/// decide `is_read`: (my read seq, highest read seq of anyone else).
pub async fn history(
    ctx: &Services,
    viewer: UserId,
    room: &RoomId,
    page: Page,
) -> Result<(MessagePage, i64, i64)> {
    rooms::access(ctx, room, viewer).await?;
    let messages = read_page(ctx, room, page).await?;
    let (mine, others) = ctx.store.read_positions(room, viewer).await?;
    Ok((messages, mine, others))
}

/// A page from the room's recent tail in memory when it holds the whole page,
/// else from the store (and the answer may then seed the tail).
async fn read_page(ctx: &Services, room: &RoomId, page: Page) -> Result<MessagePage> {
    let ticket = match ctx.tail.lookup(room, page) {
        Lookup::Hit(found) => return Ok(found),
        Lookup::Senders { missing, ticket } => {
            let users = ctx.store.list_users(&missing).await?;
            ctx.tail
                .learn_senders(users.iter().map(rooms::sender_of), ticket);
            if let Lookup::Hit(found) = ctx.tail.lookup(room, page) {
                return Ok(found);
            }
            ctx.tail.ticket(room)
        }
        Lookup::Miss(ticket) => ticket,
    };
    let found = ctx.store.list_messages(room, page).await?;
    ctx.tail.offer(room, page, &found, ticket);
    Ok(found)
}

/// What a read receipt points at.
pub enum ReadUpTo {
    Seq(i64),
    Messages(Vec<String>),
}

/// Records that `user` read the room up to a seq and tells the room, if it moved.
pub async fn mark_read(
    ctx: &Services,
    user: UserId,
    room: &RoomId,
    target: ReadUpTo,
) -> Result<()> {
    rooms::access(ctx, room, user).await?.require_member()?;
    let (seq, ids) = match target {
        ReadUpTo::Seq(seq) if seq < 0 => {
            return Err(AppError::bad_request(
                "invalid_seq",
                "up_to_seq is 0 or more",
            ));
        }
        ReadUpTo::Seq(seq) => (seq, None),
        ReadUpTo::Messages(raw) => {
            if raw.is_empty() || raw.len() > 500 {
                return Err(AppError::bad_request(
                    "invalid_message_ids",
                    "give 1 to 500 message ids",
                ));
            }
            let ids: Vec<MessageId> = raw
                .iter()
                .map(|id| MessageId::parse(id))
                .collect::<Result<_, _>>()?;
            let Some(seq) = ctx.store.max_seq_of(room, &ids).await? else {
                return Err(AppError::not_found(
                    "message_not_found",
                    "none of these messages are in this room",
                ));
            };
            (seq, Some(raw))
        }
    };
    if let Some(up_to) = ctx.store.update_last_read(room, user, seq).await? {
        let frame = ServerEvent::ReadStatusUpdate {
            room_id: room,
            user_id: user,
            up_to_seq: up_to,
            message_ids: ids.as_deref(),
        }
        .encode();
        ctx.bus.to_room_ephemeral(room, frame, None);
    }
    Ok(())
}

/// Typing starts or stops; the others in the room are told of the change.
pub async fn typing(
    ctx: &Services,
    user: UserId,
    username: &str,
    room: &RoomId,
    is_typing: bool,
) -> Result<()> {
    rooms::access(ctx, room, user)
        .await?
        .require_post(now_ms())?;
    // At most one change per user per room per second reaches the room; the
    // rest is coalesced (see `services::typing`).
    if let Some(now_typing) = ctx
        .typing
        .set(room, user, username, is_typing, Instant::now())
    {
        announce_typing(ctx, room, user, username, now_typing);
    }
    Ok(())
}

pub fn announce_typing(
    ctx: &Services,
    room: &RoomId,
    user: UserId,
    username: &str,
    is_typing: bool,
) {
    let frame = ServerEvent::UserTyping {
        room_id: room,
        user_id: user,
        username,
        is_typing,
    }
    .encode();
    ctx.bus.to_room_ephemeral(room, frame, Some(user));
}

/// Ends typing states nobody refreshed within 6 s, and tells the changes
/// held back by the coalescing interval (run every second).
pub fn expire_typing(ctx: &Services) {
    for change in ctx.typing.due(Instant::now()) {
        announce_typing(
            ctx,
            &change.room,
            change.user,
            &change.username,
            change.is_typing,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_parsing() {
        assert_eq!(page(None, None, None).unwrap(), Page::Latest { limit: 50 });
        assert_eq!(
            page(Some(10), None, Some(5)).unwrap(),
            Page::Before { seq: 10, limit: 5 }
        );
        assert_eq!(
            page(None, Some(0), Some(200)).unwrap(),
            Page::After { seq: 0, limit: 200 }
        );
        assert_eq!(
            page(None, None, Some(0)).unwrap_err().code(),
            "invalid_limit"
        );
        assert_eq!(
            page(None, None, Some(201)).unwrap_err().code(),
            "invalid_limit"
        );
        assert_eq!(
            page(Some(1), Some(1), None).unwrap_err().code(),
            "invalid_page"
        );
        assert_eq!(
            page(Some(0), None, None).unwrap_err().code(),
            "invalid_page"
        );
    }
}
