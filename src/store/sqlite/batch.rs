//! The batch writer's SQL: a batch of messages stored in one transaction,
//! each with its room's next seq, as a few multi-row statements.

use super::*;
use crate::domain::attachment::Attachment;

impl SqliteStore {
    /// Stores a batch in one transaction: each message gets its room's next
    /// seq, and a message whose client id its sender already used is answered
    /// with the stored one. Set-based: a constant handful of statements per
    /// batch, whatever its size (each statement costs a round trip to the
    /// driver's worker thread); the rows go in as multi-row statements whose
    /// texts stay prepared (see `BatchSql`). Without `find_resends`, client ids
    /// are only compared within the batch. `None`: a unique index refused the
    /// insert (without `find_resends`, an earlier batch holds one of the client
    /// ids), and nothing was written.
    pub(super) async fn write_batch(
        &self,
        batch: &[NewMessage],
        find_resends: bool,
    ) -> StoreResult<Option<Vec<InsertOutcome>>> {
        // Not synced at its commit when batches are synced together (see
        // `wal_sync`); `insert_messages` puts FULL back for everything else.
        let begin = match self.wal {
            Some(_) => "pragma synchronous = normal; begin immediate",
            None => "begin immediate",
        };
        let mut tx = self.writer.begin_with(begin).await.map_err(db_err)?;

        let mut room_ids: Vec<&str> = batch.iter().map(|m| m.room_id.as_str()).collect();
        room_ids.sort_unstable();
        room_ids.dedup();
        let rooms: Vec<(String, i64)> = sqlx::query_as(
            "select id, last_seq from rooms where id in (select value from json_each(?))",
        )
        .bind(json_text(&room_ids)?)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        if rooms.len() != room_ids.len() {
            return Err(StoreError::NotFound);
        }
        // The seq last handed out per room, and the time of its newest message.
        let mut last_seq: HashMap<String, (i64, Option<i64>)> = rooms
            .into_iter()
            .map(|(id, seq)| (id, (seq, None)))
            .collect();

        let rows: Vec<NewRow> = batch
            .iter()
            .map(|message| {
                Ok(NewRow {
                    message,
                    id: message.id.to_string(),
                    sender_id: message.sender.as_ref().map(|s| s.id.to_string()),
                    attachments: attachments_json(&message.attachments)?,
                })
            })
            .collect::<StoreResult<_>>()?;

        // Client ids this batch repeats from earlier batches, looked up together.
        let keys: Vec<ClientKey> = if find_resends {
            rows.iter().filter_map(NewRow::client_key).collect()
        } else {
            Vec::new()
        };
        let mut stored: HashMap<ClientKey, Message> = HashMap::new();
        let mut first_key = 0;
        for chunk in statement_chunks(&keys) {
            let mut query =
                sqlx::query_as::<_, StoredRow>(BatchSql::pick(&self.batch.stored, chunk.len()));
            for (index, (room, sender, client_id)) in (first_key..).zip(chunk) {
                query = query
                    .bind(*room)
                    .bind(*sender)
                    .bind(*client_id)
                    .bind(index as i64);
            }
            first_key += chunk.len();
            for found in query.fetch_all(&mut *tx).await.map_err(db_err)? {
                let key = usize::try_from(found.key_index)
                    .ok()
                    .and_then(|i| keys.get(i))
                    .ok_or_else(|| {
                        StoreError::Unavailable("a client id lookup answered an unknown key".into())
                    })?;
                stored.insert(*key, found.message.into_message()?);
            }
        }

        let mut outcomes: Vec<InsertOutcome> = Vec::with_capacity(batch.len());
        let mut seen: HashMap<ClientKey, usize> = HashMap::new();
        let mut active: Vec<(&str, i64)> = Vec::new();
        // The messages to insert, with their seqs.
        let mut fresh: Vec<(&NewRow, i64)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let msg = row.message;
            let key = row.client_key();
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
            if !msg.attachments.is_empty() && !claim_attachments(&mut tx, row).await? {
                // Taken — perhaps by this very message, stored by an earlier
                // batch: only the lookup of resends can tell, so write the
                // batch again with it (dropping the transaction rolls back).
                if !find_resends && key.is_some() {
                    return Ok(None);
                }
                outcomes.push(InsertOutcome::AttachmentsTaken);
                continue;
            }
            if let Some(key) = key {
                seen.insert(key, outcomes.len());
            }
            let (seq, at) = last_seq
                .get_mut(msg.room_id.as_str())
                .ok_or(StoreError::NotFound)?;
            *seq += 1;
            *at = Some(msg.created_at);
            let seq = *seq;
            if let Some(sender) = row
                .sender_id
                .as_ref()
                .filter(|_| msg.message_type.is_user_written())
            {
                let day = day_of(msg.created_at);
                if !active.iter().any(|(user, d)| user == sender && *d == day) {
                    active.push((sender, day));
                }
            }
            fresh.push((row, seq));
            outcomes.push(InsertOutcome::Inserted(msg.clone().into_message(seq)));
        }
        if !fresh.is_empty() {
            for chunk in statement_chunks(&fresh) {
                let mut query = sqlx::query(BatchSql::pick(&self.batch.insert, chunk.len()));
                for (row, seq) in chunk {
                    let msg = row.message;
                    query = query
                        .bind(row.id.as_str())
                        .bind(msg.room_id.as_str())
                        .bind(*seq)
                        .bind(row.sender_id.as_deref())
                        .bind(msg.message_type.code())
                        .bind(msg.content.as_str())
                        .bind(msg.client_id.as_deref())
                        .bind(msg.event.as_deref())
                        .bind(row.attachments.as_deref())
                        .bind(msg.created_at);
                }
                match query.execute(&mut *tx).await {
                    Ok(_) => {}
                    // Dropping the transaction rolls it back.
                    Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Ok(None),
                    Err(e) => return Err(db_err(e)),
                }
            }
            let moved: Vec<(&str, i64, i64)> = last_seq
                .iter()
                .filter_map(|(room, (seq, at))| at.map(|at| (room.as_str(), *seq, at)))
                .collect();
            sqlx::query(
                "update rooms set last_seq = json_extract(k.value, '$[1]'), last_message_at = json_extract(k.value, '$[2]') \
                 from json_each(?) k where rooms.id = json_extract(k.value, '$[0]')",
            )
            .bind(json_text(&moved)?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if !active.is_empty() {
            // `where true` lets SQLite tell the upsert clause from a join constraint.
            sqlx::query(
                "insert into user_activity_days (user_id, day) \
                 select json_extract(value, '$[0]'), json_extract(value, '$[1]') from json_each(?) where true \
                 on conflict do nothing",
            )
            .bind(json_text(&active)?)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        if let Some(wal) = &self.wal {
            wal.committing();
        }
        tx.commit().await.map_err(db_err)?;
        self.restart_wal().await;
        Ok(Some(outcomes))
    }
}

/// Most rows in one multi-row statement of the batch insert (10 binds a row,
/// far below SQLite's limit of 32 766).
pub(super) const MAX_STATEMENT_ROWS: usize = 256;

/// The batch insert's multi-row statements for 1, 2, 4, … 256 rows. A batch of
/// n messages takes as many statements as n has binary ones (300 = 256 + 32 +
/// 8 + 4), and each text is prepared once per connection (sqlx caches them).
/// Plain binds instead of one JSON text: parsing JSON in SQL cost a third of
/// the writer's time.
pub(super) struct BatchSql {
    /// `insert into messages … values (…), (…)`.
    pub(super) insert: Vec<SqlStr>,
    /// Stored messages matching (room, sender, client_id, index) rows, each
    /// with the index of the key it matched.
    pub(super) stored: Vec<SqlStr>,
}

impl BatchSql {
    pub(super) fn new() -> Self {
        let sizes = (0..=MAX_STATEMENT_ROWS.trailing_zeros()).map(|power| 1usize << power);
        Self {
            insert: sizes
                .clone()
                .map(|rows| {
                    sql_text(format!(
                        "insert into messages (id, room_id, seq, sender_id, message_type, content, \
                         client_id, event, attachments, created_at) values {}",
                        placeholders(rows, 10)
                    ))
                })
                .collect(),
            stored: sizes
                .map(|rows| {
                    sql_text(format!(
                        "select k.column4 as key_index, {} from (values {}) k \
                         join messages m on m.room_id = k.column1 \
                         and m.sender_id = k.column2 and m.client_id = k.column3 \
                         left join users u on u.id = m.sender_id",
                        message_cols!(),
                        placeholders(rows, 4)
                    ))
                })
                .collect(),
        }
    }

    /// The statement for exactly `rows` rows (a power of two up to the maximum).
    pub(super) fn pick(texts: &[SqlStr], rows: usize) -> SqlStr {
        texts[rows.trailing_zeros() as usize].clone()
    }
}

/// SQL built here from constant parts only (no input goes into the text).
pub(super) fn sql_text(sql: String) -> SqlStr {
    AssertSqlSafe(Arc::<str>::from(sql)).into_sql_str()
}

/// `(?, ?, ?), (?, ?, ?)` for two rows of three.
pub(super) fn placeholders(rows: usize, columns: usize) -> String {
    let row = format!("({})", vec!["?"; columns].join(", "));
    vec![row; rows].join(", ")
}

/// Splits a slice into power-of-two chunks of at most [`MAX_STATEMENT_ROWS`].
pub(super) fn statement_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if items.is_empty() {
            return None;
        }
        let take = MAX_STATEMENT_ROWS.min(1 << items.len().ilog2());
        let (chunk, rest) = items.split_at(take);
        items = rest;
        Some(chunk)
    })
}

/// What makes a message unique besides its seq: (room, sender id, client_id).
pub(super) type ClientKey<'a> = (&'a str, &'a str, &'a str);

/// A stored message found by its client key, and which key it was.
#[derive(FromRow)]
pub(super) struct StoredRow {
    key_index: i64,
    #[sqlx(flatten)]
    message: MessageRow,
}

/// A message of the batch with its ids as the text they are stored as (each
/// formatted once per message).
pub(super) struct NewRow<'a> {
    message: &'a NewMessage,
    id: String,
    sender_id: Option<String>,
    /// The JSON copy of its attachments, `None` for none.
    attachments: Option<String>,
}

/// The JSON copy of a message's attachments (`None` for none).
fn attachments_json(attachments: &[Attachment]) -> StoreResult<Option<String>> {
    if attachments.is_empty() {
        return Ok(None);
    }
    json_text(attachments).map(Some)
}

/// Makes the message's attachments its own, if each is still an unposted
/// upload of its sender in its room; else claims none and says so (the
/// writer's transaction is the only one, so nothing races within it).
async fn claim_attachments(tx: &mut sqlx::SqliteConnection, row: &NewRow<'_>) -> StoreResult<bool> {
    let Some(sender) = &row.sender_id else {
        return Ok(false);
    };
    let msg = row.message;
    let ids: Vec<String> = msg.attachments.iter().map(|a| a.id.to_string()).collect();
    let claimed = sqlx::query(
        "update attachments set message_id = ? \
         where id in (select value from json_each(?)) and room_id = ? and uploader_id = ? \
         and message_id is null",
    )
    .bind(row.id.as_str())
    .bind(json_text(&ids)?)
    .bind(msg.room_id.as_str())
    .bind(sender.as_str())
    .execute(&mut *tx)
    .await
    .map_err(db_err)?
    .rows_affected();
    if claimed == ids.len() as u64 {
        return Ok(true);
    }
    if claimed > 0 {
        sqlx::query("update attachments set message_id = null where message_id = ?")
            .bind(row.id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    Ok(false)
}

impl NewRow<'_> {
    fn client_key(&self) -> Option<ClientKey<'_>> {
        match (&self.sender_id, &self.message.client_id) {
            (Some(sender), Some(client_id)) => {
                Some((self.message.room_id.as_str(), sender, client_id))
            }
            _ => None,
        }
    }
}

/// Batch data as one JSON text bind.
pub(super) fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Unavailable(Box::new(e)))
}
