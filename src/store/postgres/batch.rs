//! The message path's SQL: a batch stored in one transaction, its rooms
//! locked in a fixed order so seqs stay gapless and client ids idempotent
//! across nodes.

use super::*;
use crate::domain::attachment::Attachment;

impl PostgresStore {
    #[instrument(skip_all, fields(batch = batch.len()))]
    pub(super) async fn insert_batch(
        &self,
        batch: &[NewMessage],
    ) -> StoreResult<Vec<InsertOutcome>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        // Read committed, whatever the server's default: each statement below must
        // see what the previous holder of a room lock committed.
        let mut tx = self
            .pool
            .begin_with("begin isolation level read committed")
            .await
            .map_err(db_err)?;

        // (a) Lock the batch's rooms, in id order so that two nodes locking
        // overlapping sets cannot deadlock. `no key update` is the lock the
        // last_seq update below takes anyway: it queues writers to the room but
        // lets foreign-key checks (someone joining the room) through.
        let mut room_ids: Vec<&str> = batch.iter().map(|m| m.room_id.as_str()).collect();
        room_ids.sort_unstable();
        room_ids.dedup();
        let locked: Vec<(String, i64)> = sqlx::query_as(
            "select id, last_seq from rooms where id = any($1) order by id for no key update",
        )
        .bind(&room_ids)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if locked.len() != room_ids.len() {
            return Err(StoreError::NotFound);
        }
        // The seq last handed out per room, and the time of that room's newest message.
        let mut last_seq: HashMap<String, (i64, Option<i64>)> = locked
            .into_iter()
            .map(|(id, seq)| (id, (seq, None)))
            .collect();

        // (b) Only now, holding the locks, look for client_ids already stored: a
        // node that wrote the same message before us has committed by the time
        // we got its room's lock, and under read committed this statement sees it.
        let key_of = |msg: &NewMessage| -> Option<ClientKey> {
            match (&msg.sender, &msg.client_id) {
                (Some(sender), Some(client_id)) => Some((
                    msg.room_id.as_str().to_string(),
                    sender.id.to_string(),
                    client_id.clone(),
                )),
                _ => None,
            }
        };
        let keys: HashSet<ClientKey> = batch.iter().filter_map(key_of).collect();
        let mut stored: HashMap<ClientKey, Message> = HashMap::new();
        if !keys.is_empty() {
            let mut rooms = Vec::with_capacity(keys.len());
            let mut senders = Vec::with_capacity(keys.len());
            let mut client_ids = Vec::with_capacity(keys.len());
            for (room, sender, client_id) in &keys {
                rooms.push(room.as_str());
                senders.push(sender.as_str());
                client_ids.push(client_id.as_str());
            }
            let rows = sqlx::query_as::<_, MessageRow>(concat!(
                "select ",
                message_cols!(),
                " from unnest($1::text[], $2::text[], $3::text[]) as k(room_id, sender_id, client_id) \
                 join messages m on m.room_id = k.room_id and m.sender_id = k.sender_id \
                   and m.client_id = k.client_id \
                 left join users u on u.id = m.sender_id"
            ))
            .bind(&rooms)
            .bind(&senders)
            .bind(&client_ids)
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            for row in rows {
                let key = (
                    row.room_id.clone(),
                    row.sender_id.clone().unwrap_or_default(),
                    row.client_id.clone().unwrap_or_default(),
                );
                stored.insert(key, row.into_message()?);
            }
        }

        // (c) Seqs per room in batch order; repeats of a client_id, stored or
        // earlier in this batch, get the original back as SQLite does.
        let mut outcomes: Vec<InsertOutcome> = Vec::with_capacity(batch.len());
        let mut seen: HashMap<ClientKey, usize> = HashMap::new();
        let mut new = NewRows::default();
        let mut active: Vec<(String, i64)> = Vec::new();
        for msg in batch {
            let key = key_of(msg);
            if let Some(key) = &key {
                if let Some(original) = seen.get(key).and_then(|&i| outcomes[i].message()) {
                    outcomes.push(InsertOutcome::Duplicate(original.clone()));
                    continue;
                }
                if let Some(original) = stored.get(key) {
                    outcomes.push(InsertOutcome::Duplicate(original.clone()));
                    continue;
                }
            }
            if !msg.attachments.is_empty() && !claim_attachments(&mut tx, msg).await? {
                outcomes.push(InsertOutcome::AttachmentsTaken);
                continue;
            }
            let (seq, at) = last_seq
                .get_mut(msg.room_id.as_str())
                .ok_or(StoreError::NotFound)?;
            *seq += 1;
            *at = Some(msg.created_at);
            let seq = *seq;
            new.push(msg, seq)?;
            if let Some(sender) = msg
                .sender
                .as_ref()
                .filter(|_| msg.message_type.is_user_written())
            {
                active.push((sender.id.to_string(), day_of(msg.created_at)));
            }
            if let Some(key) = key {
                seen.insert(key, outcomes.len());
            }
            outcomes.push(InsertOutcome::Inserted(msg.clone().into_message(seq)));
        }

        if !new.ids.is_empty() {
            // One statement for the whole batch, whatever its size: arrays, not
            // one bind per value (PostgreSQL caps a statement at 65535 binds).
            sqlx::query(
                "insert into messages (id, room_id, seq, sender_id, message_type, content, client_id, event, attachments, created_at) \
                 select * from unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[], \
                                      $6::text[], $7::text[], $8::text[], $9::text[], $10::int8[])",
            )
            .bind(&new.ids)
            .bind(&new.rooms)
            .bind(&new.seqs)
            .bind(&new.senders)
            .bind(&new.types)
            .bind(&new.contents)
            .bind(&new.client_ids)
            .bind(&new.events)
            .bind(&new.attachments)
            .bind(&new.created_at)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;

            // (d) Rooms that got messages move on to their new last seq.
            let mut rooms = Vec::new();
            let mut seqs = Vec::new();
            let mut times = Vec::new();
            for (room, (seq, at)) in &last_seq {
                if let Some(at) = at {
                    rooms.push(room.as_str());
                    seqs.push(*seq);
                    times.push(*at);
                }
            }
            sqlx::query(
                "update rooms r set last_seq = v.last_seq, last_message_at = v.at \
                 from unnest($1::text[], $2::int8[], $3::int8[]) as v(id, last_seq, at) where r.id = v.id",
            )
            .bind(&rooms)
            .bind(&seqs)
            .bind(&times)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }

        // (e) Sorted, so that two nodes recording the same users' days wait on
        // each other in one order and never deadlock.
        active.sort_unstable();
        active.dedup();
        if !active.is_empty() {
            let (users, days): (Vec<String>, Vec<i64>) = active.into_iter().unzip();
            sqlx::query(
                "insert into user_activity_days (user_id, day) \
                 select * from unnest($1::text[], $2::int8[]) on conflict do nothing",
            )
            .bind(&users)
            .bind(&days)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }

        // (f)
        tx.commit().await.map_err(db_err)?;
        Ok(outcomes)
    }
}

/// The new messages of a batch, column by column, for one `unnest` insert.
#[derive(Default)]
pub(super) struct NewRows<'a> {
    ids: Vec<String>,
    rooms: Vec<&'a str>,
    seqs: Vec<i64>,
    senders: Vec<Option<String>>,
    types: Vec<&'static str>,
    contents: Vec<&'a str>,
    client_ids: Vec<Option<&'a str>>,
    events: Vec<Option<&'a str>>,
    attachments: Vec<Option<String>>,
    created_at: Vec<i64>,
}

impl<'a> NewRows<'a> {
    pub(super) fn push(&mut self, msg: &'a NewMessage, seq: i64) -> StoreResult<()> {
        self.ids.push(msg.id.to_string());
        self.rooms.push(msg.room_id.as_str());
        self.seqs.push(seq);
        self.senders
            .push(msg.sender.as_ref().map(|s| s.id.to_string()));
        self.types.push(msg.message_type.code());
        self.contents.push(&msg.content);
        self.client_ids.push(msg.client_id.as_deref());
        self.events.push(msg.event.as_deref());
        self.attachments.push(attachments_json(&msg.attachments)?);
        self.created_at.push(msg.created_at);
        Ok(())
    }
}

/// The JSON copy of a message's attachments (`None` for none).
pub(super) fn attachments_json(attachments: &[Attachment]) -> StoreResult<Option<String>> {
    if attachments.is_empty() {
        return Ok(None);
    }
    serde_json::to_string(attachments)
        .map(Some)
        .map_err(|e| StoreError::Unavailable(Box::new(e)))
}

/// Makes the message's attachments its own, if each is still an unposted
/// upload of its sender in its room; else claims none and says so. Row locks
/// make a second transaction claiming the same upload wait, then find it taken.
async fn claim_attachments(tx: &mut sqlx::PgConnection, msg: &NewMessage) -> StoreResult<bool> {
    let Some(sender) = &msg.sender else {
        return Ok(false);
    };
    let ids: Vec<String> = msg.attachments.iter().map(|a| a.id.to_string()).collect();
    let message_id = msg.id.to_string();
    let claimed = sqlx::query(
        "update attachments set message_id = $1 \
         where id = any($2) and room_id = $3 and uploader_id = $4 and message_id is null",
    )
    .bind(&message_id)
    .bind(&ids)
    .bind(msg.room_id.as_str())
    .bind(sender.id.to_string())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if claimed == ids.len() as u64 {
        return Ok(true);
    }
    if claimed > 0 {
        sqlx::query("update attachments set message_id = null where message_id = $1")
            .bind(&message_id)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    Ok(false)
}
