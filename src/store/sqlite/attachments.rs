//! Uploads: their rows, the daily quota, the clean-up of those never posted.

use super::*;
use crate::domain::attachment::Attachment;
use crate::domain::ids::AttachmentId;
use crate::store::{AttachmentRecord, AttachmentStore, UploadQuota};

#[derive(FromRow)]
struct AttachmentRow {
    room_id: String,
    uploader_id: String,
    message_id: Option<String>,
    meta: String,
    created_at: i64,
}

impl AttachmentRow {
    fn into_record(self) -> StoreResult<AttachmentRecord> {
        let attachment: Attachment =
            serde_json::from_str(&self.meta).map_err(|_| corrupt("attachment"))?;
        Ok(AttachmentRecord {
            attachment,
            room_id: room_id(&self.room_id)?,
            uploader_id: user_id(&self.uploader_id)?,
            message_id: self
                .message_id
                .map(|id| MessageId::parse(&id).map_err(|_| corrupt("message id")))
                .transpose()?,
            created_at: self.created_at,
        })
    }
}

fn attachment_ids(rows: Vec<(String,)>) -> StoreResult<Vec<AttachmentId>> {
    rows.into_iter()
        .map(|(id,)| AttachmentId::parse(&id).map_err(|_| corrupt("attachment id")))
        .collect()
}

fn id_texts(ids: &[AttachmentId]) -> StoreResult<String> {
    let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
    json_text(&texts)
}

#[async_trait]
impl AttachmentStore for SqliteStore {
    async fn insert_attachment(
        &self,
        record: &AttachmentRecord,
        quota: UploadQuota,
    ) -> StoreResult<()> {
        let meta = json_text(&record.attachment)?;
        // One statement on the one writer: the sum and the insert cannot be
        // split by another upload.
        let done = sqlx::query(
            "insert into attachments (id, room_id, uploader_id, message_id, size, meta, created_at) \
             select ?1, ?2, ?3, ?4, ?5, ?6, ?7 where (select coalesce(sum(size), 0) from attachments \
               where uploader_id = ?3 and created_at >= ?8) + ?5 <= ?9",
        )
        .bind(record.attachment.id.to_string())
        .bind(record.room_id.as_str())
        .bind(record.uploader_id.to_string())
        .bind(record.message_id.map(|id| id.to_string()))
        .bind(record.attachment.size)
        .bind(meta)
        .bind(record.created_at)
        .bind(quota.since)
        .bind(quota.max_bytes)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(Conflict::UploadQuotaExceeded));
        }
        Ok(())
    }

    async fn get_attachment(&self, id: AttachmentId) -> StoreResult<Option<AttachmentRecord>> {
        sqlx::query_as::<_, AttachmentRow>(
            "select room_id, uploader_id, message_id, meta, created_at from attachments where id = ?",
        )
        .bind(id.to_string())
        .fetch_optional(self.read().await?)
        .await
        .map_err(db_err)?
        .map(AttachmentRow::into_record)
        .transpose()
    }

    async fn uploaded_since(&self, user: UserId, since: i64) -> StoreResult<(i64, Option<i64>)> {
        let (bytes, oldest): (i64, Option<i64>) = sqlx::query_as(
            "select coalesce(sum(size), 0), min(created_at) from attachments \
             where uploader_id = ? and created_at >= ?",
        )
        .bind(user.to_string())
        .bind(since)
        .fetch_one(self.read().await?)
        .await
        .map_err(db_err)?;
        Ok((bytes, oldest))
    }

    async fn list_unposted_attachments(
        &self,
        before: i64,
        limit: u32,
    ) -> StoreResult<Vec<AttachmentId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "select id from attachments where message_id is null and created_at < ? \
             order by created_at limit ?",
        )
        .bind(before)
        .bind(i64::from(limit))
        .fetch_all(self.read().await?)
        .await
        .map_err(db_err)?;
        attachment_ids(rows)
    }

    async fn delete_unposted_attachments(
        &self,
        ids: &[AttachmentId],
    ) -> StoreResult<Vec<AttachmentId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String,)> = sqlx::query_as(
            "delete from attachments where message_id is null \
             and id in (select value from json_each(?)) returning id",
        )
        .bind(id_texts(ids)?)
        .fetch_all(&self.writer)
        .await
        .map_err(db_err)?;
        attachment_ids(rows)
    }

    async fn existing_attachments(&self, ids: &[AttachmentId]) -> StoreResult<Vec<AttachmentId>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<(String,)> = sqlx::query_as(
            "select id from attachments where id in (select value from json_each(?))",
        )
        .bind(id_texts(ids)?)
        .fetch_all(self.read().await?)
        .await
        .map_err(db_err)?;
        attachment_ids(rows)
    }
}
