//! Attachments: taking an upload in (spooled to a local file as it arrives,
//! checked and processed off the async threads, stored in the blob store),
//! who may fetch it, and the clean-up of uploads never posted.
//!
//! An upload belongs to its uploader and the room it was uploaded to; a
//! message claims it in the transaction that stores the message (see
//! `Store::insert_messages`), and from then on whoever may read that room's
//! history may fetch it — on every node, as the rows and files are shared.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use tokio::io::AsyncWriteExt;

use crate::domain::attachment::{self, Attachment, AttachmentKind};
use crate::domain::ids::{AttachmentId, MessageId, RoomId, UserId};
use crate::domain::time::now_ms;
use crate::error::{AppError, Result};
use crate::media::{self, Declared, MediaLimits, Processed};
use crate::services::Services;
use crate::services::rooms;
use crate::store::{AttachmentRecord, Conflict, StoreError, UploadQuota};

/// The window of `--max-upload-bytes-per-day`.
const QUOTA_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// Which stored file of an attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// The file as stored (for images: re-encoded, metadata removed).
    Original,
    /// The 320 px thumbnail the timeline loads.
    Thumbnail,
    /// The 1280 px preview the lightbox shows.
    Preview,
}

impl Variant {
    fn suffix(self) -> &'static str {
        match self {
            Variant::Original => "original",
            Variant::Thumbnail => "thumb-320",
            Variant::Preview => "thumb-1280",
        }
    }
}

/// The blob-store key of one of an attachment's files.
pub fn blob_key(id: AttachmentId, variant: Variant) -> String {
    format!("attachments/{id}/{}", variant.suffix())
}

/// The attachment a blob-store key belongs to (for `parley storage check`).
pub fn id_of_key(key: &str) -> Option<AttachmentId> {
    let rest = key.strip_prefix("attachments/")?;
    let (id, _) = rest.split_once('/')?;
    AttachmentId::parse(id).ok()
}

/// What the uploader said about the file besides its bytes.
#[derive(Debug, Clone, Default)]
pub struct UploadInfo {
    /// The file name the client gave (sanitised here).
    pub name: String,
    /// `kind=voice`: a recording, with the recorder's duration and waveform.
    pub voice: bool,
    pub duration_ms: Option<u32>,
    pub waveform: Option<Vec<u8>>,
}

/// An upload spooled to a local file; the file goes when this is dropped.
pub struct Spooled {
    path: PathBuf,
    size: u64,
}

impl Spooled {
    /// The file's first bytes, for sniffing.
    async fn head(&self) -> Result<Vec<u8>> {
        use tokio::io::AsyncReadExt;
        let mut head = Vec::with_capacity(media::SNIFF_BYTES);
        let file = tokio::fs::File::open(&self.path)
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("reading an upload: {e}")))?;
        file.take(media::SNIFF_BYTES as u64)
            .read_to_end(&mut head)
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("reading an upload: {e}")))?;
        Ok(head)
    }
}

impl Drop for Spooled {
    fn drop(&mut self) {
        // A quick unlink; the file is ours alone.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// What an upload may still be: checked before a byte is read, so a refused
/// upload costs nothing (the room, the rate, what is left of the day's quota).
pub struct Admission {
    user: UserId,
    room: RoomId,
    /// Bytes this upload may have: the per-file limit, or less when the day's
    /// quota is nearly used up.
    max_bytes: u64,
    quota_bound: bool,
}

/// Checks that `user` may upload to `room` now: the same rules as posting
/// (member, not muted, room not archived, nobody blocked), the upload rate
/// and the daily quota.
pub async fn admit(ctx: &Services, user: UserId, room: &RoomId) -> Result<Admission> {
    if let Err(wait) = ctx.limits.check_upload(user).await {
        return Err(AppError::RateLimited {
            code: "rate_limited",
            message: "you are uploading too fast".into(),
            retry_after: wait,
        });
    }
    rooms::access(ctx, room, user)
        .await?
        .require_post(now_ms())?;
    let per_day = ctx.config.max_upload_bytes_per_day;
    let (used, _) = ctx
        .store
        .uploaded_since(user, now_ms() - QUOTA_WINDOW_MS)
        .await?;
    let left = per_day.saturating_sub(u64::try_from(used).unwrap_or(u64::MAX));
    if left == 0 {
        return Err(quota_exceeded(per_day));
    }
    let per_file = ctx.config.max_upload_bytes;
    Ok(Admission {
        user,
        room: room.clone(),
        max_bytes: per_file.min(left),
        quota_bound: left < per_file,
    })
}

/// Writes the upload's bytes to a local file as they arrive, never holding
/// more than one chunk; stops (and deletes what it wrote) at the limit.
pub async fn spool<S, E>(ctx: &Services, admission: &Admission, mut chunks: S) -> Result<Spooled>
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let dir = spool_dir(&ctx.config.data_dir);
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
    let spooled = Spooled {
        path: dir.join(format!("{}.part", AttachmentId::new())),
        size: 0,
    };
    let mut file = tokio::fs::File::create(&spooled.path)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("creating an upload file: {e}")))?;
    let mut spooled = spooled;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::bad_request("upload_interrupted", format!("the upload broke off: {e}"))
        })?;
        spooled.size += chunk.len() as u64;
        if spooled.size > admission.max_bytes {
            return Err(if admission.quota_bound {
                quota_exceeded(ctx.config.max_upload_bytes_per_day)
            } else {
                file_too_large(ctx.config.max_upload_bytes)
            });
        }
        file.write_all(&chunk)
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("writing an upload: {e}")))?;
    }
    file.flush()
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("writing an upload: {e}")))?;
    Ok(spooled)
}

/// Where uploads wait while they arrive and are checked: always local, also
/// with object storage (the checks read the file more than once).
pub fn spool_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("tmp").join("uploads")
}

/// Checks and processes a spooled upload, stores its files and records it:
/// the attachment, ready to be posted by its uploader in its room.
pub async fn store_upload(
    ctx: &Services,
    admission: &Admission,
    spooled: Spooled,
    info: UploadInfo,
) -> Result<Attachment> {
    let limits = MediaLimits {
        max_pixels: ctx.config.max_image_pixels,
        max_side: ctx.config.max_image_side,
        max_voice_ms: ctx.config.max_voice_seconds.saturating_mul(1000),
    };
    let declared = if info.voice {
        Declared::Voice {
            duration_ms: info.duration_ms,
            waveform: info.waveform.clone(),
        }
    } else {
        Declared::Auto
    };
    let path = spooled.path.clone();
    // Images decode on the bounded image workers (`503 busy` when they are
    // full); the rest only read a few headers, on the blocking threads.
    let is_image = !info.voice && media::decodes_as_image(&spooled.head().await?);
    let job = move || media::process(&path, &declared, &limits);
    let processed = if is_image {
        ctx.images.run(job).await?
    } else {
        tokio::task::spawn_blocking(job)
            .await
            .map_err(|e| AppError::Internal(anyhow::anyhow!("an upload check failed: {e}")))?
    };
    let processed = processed.map_err(|invalid| match invalid.code {
        "image_too_large" | "voice_too_long" => AppError::too_large(invalid.code, invalid.message),
        // Our own spool file could not be read: a fault here, not in the upload.
        "upload_unreadable" => AppError::Internal(anyhow::anyhow!("{}", invalid.message)),
        _ => AppError::from(invalid),
    })?;

    let id = AttachmentId::new();
    let attachment = describe(id, &info, &processed, spooled.size);
    let stored = put_files(ctx, id, &spooled, processed).await;
    drop(spooled);
    if let Err(err) = stored {
        remove_files(ctx, id).await;
        return Err(err);
    }
    let now = now_ms();
    let record = AttachmentRecord {
        attachment,
        room_id: admission.room.clone(),
        uploader_id: admission.user,
        message_id: None,
        created_at: now,
    };
    let quota = UploadQuota {
        max_bytes: i64::try_from(ctx.config.max_upload_bytes_per_day).unwrap_or(i64::MAX),
        since: now - QUOTA_WINDOW_MS,
    };
    match ctx.store.insert_attachment(&record, quota).await {
        Ok(()) => Ok(record.attachment),
        Err(err) => {
            // Nothing is kept of a refused upload.
            remove_files(ctx, id).await;
            Err(match err {
                StoreError::Conflict(Conflict::UploadQuotaExceeded) => {
                    quota_exceeded(ctx.config.max_upload_bytes_per_day)
                }
                other => other.into(),
            })
        }
    }
}

fn describe(
    id: AttachmentId,
    info: &UploadInfo,
    processed: &Processed,
    spooled: u64,
) -> Attachment {
    let size = processed
        .replacement
        .as_ref()
        .map_or(spooled, |bytes| bytes.len() as u64);
    let fallback = match processed.kind {
        AttachmentKind::Image => "image",
        AttachmentKind::Voice => "voice-message",
        AttachmentKind::Video => "video",
        AttachmentKind::File => "file",
    };
    Attachment {
        id,
        kind: processed.kind,
        name: attachment::sanitize_name(&info.name, fallback),
        mime: processed.mime.to_string(),
        size: i64::try_from(size).unwrap_or(i64::MAX),
        width: processed.width,
        height: processed.height,
        animated: processed.animated,
        duration_ms: processed.duration_ms,
        waveform: processed.waveform.clone(),
        placeholder: processed.placeholder.clone(),
        thumbnail_mime: processed.thumbnails.as_ref().map(|t| t.mime.to_string()),
    }
}

async fn put_files(
    ctx: &Services,
    id: AttachmentId,
    spooled: &Spooled,
    processed: Processed,
) -> Result<()> {
    let original = blob_key(id, Variant::Original);
    match processed.replacement {
        Some(bytes) => ctx.blobs.put_bytes(&original, bytes).await,
        None => ctx.blobs.put_file(&original, &spooled.path).await,
    }
    .map_err(storage_error)?;
    if let Some(thumbnails) = processed.thumbnails {
        ctx.blobs
            .put_bytes(&blob_key(id, Variant::Thumbnail), thumbnails.small)
            .await
            .map_err(storage_error)?;
        ctx.blobs
            .put_bytes(&blob_key(id, Variant::Preview), thumbnails.large)
            .await
            .map_err(storage_error)?;
    }
    Ok(())
}

/// Deletes every file of an attachment (missing ones are fine).
async fn remove_files(ctx: &Services, id: AttachmentId) {
    for variant in [Variant::Original, Variant::Thumbnail, Variant::Preview] {
        if let Err(err) = ctx.blobs.delete(&blob_key(id, variant)).await {
            tracing::warn!(error = %err, attachment = %id, "could not delete an attachment's file");
        }
    }
}

pub fn storage_error(err: crate::storage::StorageError) -> AppError {
    AppError::Internal(anyhow::anyhow!("attachment storage: {err}"))
}

fn file_too_large(max: u64) -> AppError {
    AppError::too_large(
        "file_too_large",
        format!("the file is larger than the limit of {}", human_bytes(max)),
    )
}

fn quota_exceeded(per_day: u64) -> AppError {
    AppError::too_large(
        "upload_quota_exceeded",
        format!(
            "you have uploaded your {} for the last 24 hours; try again later",
            human_bytes(per_day)
        ),
    )
}

/// "25 MiB", "1 GiB", "512 KiB", "100 bytes".
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            let whole = bytes / size;
            let tenth = (bytes % size) * 10 / size;
            return if tenth == 0 {
                format!("{whole} {unit}")
            } else {
                format!("{whole}.{tenth} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

/// The attachments a new message names, checked: at most
/// `--max-attachments-per-message`, no repeats, each an unposted upload of
/// `sender` in `room`, a voice message alone. The store checks the last
/// point again as it claims them, in the message's transaction. With a
/// `client_id`, uploads already posted pass here: the message may be a
/// resend, which the store answers with the original (or else refuses).
pub async fn for_message(
    ctx: &Services,
    sender: UserId,
    room: &RoomId,
    ids: &[String],
    resend_possible: bool,
) -> Result<Vec<Attachment>> {
    let max = ctx.config.max_attachments_per_message;
    if ids.len() > max {
        return Err(AppError::bad_request(
            "too_many_attachments",
            format!("a message carries at most {max} attachments"),
        ));
    }
    let mut found: Vec<Attachment> = Vec::with_capacity(ids.len());
    for raw in ids {
        let id = AttachmentId::parse(raw)?;
        if found.iter().any(|a| a.id == id) {
            return Err(AppError::bad_request(
                "invalid_attachment",
                "an attachment is named twice",
            ));
        }
        let record = ctx.store.get_attachment(id).await?;
        match record {
            Some(r)
                if r.uploader_id == sender
                    && &r.room_id == room
                    && (r.message_id.is_none() || resend_possible) =>
            {
                found.push(r.attachment);
            }
            _ => return Err(crate::services::writer::attachments_taken()),
        }
    }
    if found.len() > 1 && found.iter().any(|a| a.kind == AttachmentKind::Voice) {
        return Err(AppError::bad_request(
            "invalid_attachment",
            "a voice message is sent on its own",
        ));
    }
    Ok(found)
}

/// An attachment `user` may fetch: its uploader before it is posted, anyone
/// who may read the room's history after. Everyone else gets the same 404 as
/// for an attachment that does not exist.
pub async fn authorize(ctx: &Services, user: UserId, id: AttachmentId) -> Result<AttachmentRecord> {
    let Some(record) = ctx.store.get_attachment(id).await? else {
        return Err(attachment_not_found());
    };
    let allowed = match record.message_id {
        None => record.uploader_id == user,
        Some(_) => match rooms::access(ctx, &record.room_id, user).await {
            Ok(_) => true,
            Err(err) if err.is_server_error() => return Err(err),
            Err(_) => false,
        },
    };
    if allowed {
        Ok(record)
    } else {
        Err(attachment_not_found())
    }
}

/// The first attachment of a message, for the original system's
/// `download/<message_id>/`: only for whoever may read the room.
pub async fn of_message(
    ctx: &Services,
    user: UserId,
    room: &RoomId,
    message: MessageId,
) -> Result<Attachment> {
    rooms::access(ctx, room, user).await?;
    let message =
        ctx.store.get_message(room, message).await?.ok_or_else(|| {
            AppError::not_found("message_not_found", "no such message in this room")
        })?;
    message.attachments.into_iter().next().ok_or_else(|| {
        AppError::not_found("attachment_not_found", "this message has no attachment")
    })
}

pub fn attachment_not_found() -> AppError {
    AppError::not_found("attachment_not_found", "no such attachment")
}

/// Deletes uploads nobody posted within `--unposted-upload-ttl`, rows first
/// (so a message claiming one at the same moment either gets it or is
/// refused), then their files. Returns how many went.
pub async fn delete_unposted(ctx: &Services) -> Result<usize> {
    let ttl = i64::try_from(ctx.config.unposted_upload_ttl.as_millis()).unwrap_or(i64::MAX);
    let before = now_ms().saturating_sub(ttl);
    let mut deleted = 0;
    loop {
        let ids = ctx.store.list_unposted_attachments(before, 500).await?;
        if ids.is_empty() {
            break;
        }
        let gone = ctx.store.delete_unposted_attachments(&ids).await?;
        for id in &gone {
            remove_files(ctx, *id).await;
        }
        deleted += gone.len();
        if ids.len() < 500 {
            break;
        }
    }
    Ok(deleted)
}

/// Runs [`delete_unposted`] every `every` until shutdown.
pub fn spawn_cleanup(ctx: Services, every: Duration) {
    let tasks = ctx.tasks.clone();
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = ctx.shutdown.cancelled() => break,
            }
            match delete_unposted(&ctx).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "deleted uploads never posted"),
                Err(err) => tracing::warn!(error = %err, "deleting unposted uploads failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_attachment() {
        let id = AttachmentId::new();
        assert_eq!(id_of_key(&blob_key(id, Variant::Preview)), Some(id));
        assert_eq!(id_of_key("attachments/nope/original"), None);
        assert_eq!(id_of_key("avatars/x"), None);
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_bytes(25 * 1024 * 1024), "25 MiB");
        assert_eq!(human_bytes(1 << 30), "1 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(100), "100 bytes");
    }
}

/// What `parley storage check` found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StorageReport {
    /// Files under `attachments/` in the blob store.
    pub files: usize,
    /// Files no attachment row refers to (left by a crash between storing
    /// the files and recording the upload, or by a deletion cut short).
    pub leftovers: Vec<String>,
    /// Of those, the ones deleted (older than the grace period).
    pub deleted: usize,
    /// Attachments whose original file is missing.
    pub missing: Vec<AttachmentId>,
}

/// Files younger than this are not leftovers yet: an upload in flight stores
/// its files before its row.
const LEFTOVER_GRACE_MS: i64 = 60 * 60 * 1000;

/// Compares the blob store with the attachment rows: reports files no row
/// refers to (deleting those older than an hour unless `dry_run`) and rows
/// whose file is missing.
pub async fn check_storage(
    store: &crate::store::DynStore,
    blobs: &crate::storage::DynBlobStore,
    dry_run: bool,
) -> anyhow::Result<StorageReport> {
    let listed = blobs.list("attachments/").await?;
    let mut report = StorageReport {
        files: listed.len(),
        ..StorageReport::default()
    };
    let now = now_ms();
    for chunk in listed.chunks(500) {
        let ids: Vec<AttachmentId> = chunk.iter().filter_map(|f| id_of_key(&f.key)).collect();
        let known = store.existing_attachments(&ids).await?;
        for file in chunk {
            let owned = id_of_key(&file.key).is_some_and(|id| known.contains(&id));
            if owned {
                continue;
            }
            report.leftovers.push(file.key.clone());
            if !dry_run && now - file.modified_ms > LEFTOVER_GRACE_MS {
                blobs.delete(&file.key).await?;
                report.deleted += 1;
            }
        }
        for id in known {
            let original = blob_key(id, Variant::Original);
            if !chunk.iter().any(|f| f.key == original) && blobs.size(&original).await?.is_none() {
                report.missing.push(id);
            }
        }
    }
    Ok(report)
}
