//! Attachments over HTTP: `POST /tools/api/chat/<room_id>/uploads/`, the
//! original system's one-shot `send-image/`, `send-file/`, `send-audio/` and
//! `send-video/`, and the downloads: `/tools/api/chat/attachments/<id>/`
//! (with `thumbnail/` and `preview/`) and `/tools/api/chat/<room_id>/download/<message_id>/`.

use std::ops::Range;

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;

use super::{created, ok};
use crate::domain::attachment::{self, Attachment, AttachmentKind};
use crate::domain::ids::{AttachmentId, MessageId};
use crate::domain::message::InsertOutcome;
use crate::error::{AppError, Result};
use crate::http::api::rooms::room_id;
use crate::http::extract::AuthUser;
use crate::http::state::AppState;
use crate::media;
use crate::services::attachments::{self, Admission, Spooled, UploadInfo, Variant, storage_error};
use crate::services::messages;
use crate::services::rooms::sender_of;
use crate::services::writer::attachments_taken;
use crate::views::{AttachmentView, MessageView};

/// Longest text field of an upload form (a waveform of 256 values fits).
const TEXT_FIELD_MAX: usize = 4096;

/// An upload form, read: the spooled file and the other fields.
struct UploadForm {
    spooled: Spooled,
    info: UploadInfo,
    caption: String,
    client_id: Option<String>,
}

/// Reads a multipart upload: the file (the field named in `file_fields`, or
/// any field with a file name) is spooled as it arrives; the other fields
/// are small text. `voice` says the file is a recording whatever `kind` says.
async fn read_upload(
    state: &AppState,
    admission: &Admission,
    form: std::result::Result<Multipart, MultipartRejection>,
    file_fields: &[&str],
    voice: bool,
) -> Result<UploadForm> {
    let mut form = form.map_err(|e| AppError::bad_request("invalid_upload", e.body_text()))?;
    let mut spooled = None;
    let mut info = UploadInfo {
        voice,
        ..UploadInfo::default()
    };
    let mut caption = String::new();
    let mut client_id = None;
    while let Some(field) = form.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        let is_file = file_fields.contains(&name.as_str()) || field.file_name().is_some();
        if is_file {
            if spooled.is_some() {
                return Err(AppError::bad_request(
                    "too_many_files",
                    "send one file per upload",
                ));
            }
            info.name = field.file_name().unwrap_or_default().to_string();
            spooled = Some(attachments::spool(state, admission, field).await?);
            continue;
        }
        let value = small_text(field).await?;
        match name.as_str() {
            "kind" => match value.trim() {
                "voice" => info.voice = true,
                "" | "auto" => {}
                other => {
                    return Err(AppError::bad_request(
                        "invalid_kind",
                        format!("kind is \"voice\" or left out, not {other:?}"),
                    ));
                }
            },
            "duration_ms" => {
                info.duration_ms = Some(value.trim().parse().map_err(|_| {
                    AppError::bad_request(
                        "invalid_duration",
                        "duration_ms is a whole number of milliseconds",
                    )
                })?);
            }
            "waveform" => info.waveform = Some(attachment::parse_waveform(&value)?),
            "content" | "caption" | "message" => caption = value,
            "client_id" => client_id = Some(value),
            // Unknown fields (a CSRF form token, say) are ignored.
            _ => {}
        }
    }
    let spooled = spooled.ok_or_else(|| {
        AppError::bad_request(
            "missing_file",
            format!("send the file as a multipart field \"{}\"", file_fields[0]),
        )
    })?;
    Ok(UploadForm {
        spooled,
        info,
        caption,
        client_id,
    })
}

/// A text field, refused past [`TEXT_FIELD_MAX`] bytes without reading more.
async fn small_text(mut field: Field<'_>) -> Result<String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = field.next().await {
        let chunk = chunk.map_err(multipart_error)?;
        if bytes.len() + chunk.len() > TEXT_FIELD_MAX {
            return Err(AppError::bad_request(
                "field_too_long",
                format!("form fields other than the file are at most {TEXT_FIELD_MAX} bytes"),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    String::from_utf8(bytes)
        .map_err(|_| AppError::bad_request("invalid_upload", "form fields are UTF-8 text"))
}

fn multipart_error(err: MultipartError) -> AppError {
    AppError::bad_request("invalid_upload", err.body_text())
}

/// `POST /tools/api/chat/<room_id>/uploads/` (multipart: `file`, optional
/// `kind=voice`, `duration_ms`, `waveform`) → 201 with the attachment, ready
/// to be posted by a message's `attachments`.
pub async fn upload(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    let room = room_id(&id)?;
    let admission = attachments::admit(&state, auth.user.id, &room).await?;
    let form = read_upload(&state, &admission, form, &["file"], false).await?;
    let stored = attachments::store_upload(&state, &admission, form.spooled, form.info).await?;
    Ok(created(AttachmentView::new(&stored)))
}

/// The original system's one-shot uploads: the file, stored and posted as a
/// message (with `content` as its caption) in one request → 201 with the
/// message, delivered to the room like any other.
async fn upload_and_send(
    state: AppState,
    auth: AuthUser,
    id: String,
    form: std::result::Result<Multipart, MultipartRejection>,
    file_fields: &[&str],
    voice: bool,
) -> Result<Response> {
    let room = room_id(&id)?;
    let admission = attachments::admit(&state, auth.user.id, &room).await?;
    let form = read_upload(&state, &admission, form, file_fields, voice).await?;
    let stored = attachments::store_upload(&state, &admission, form.spooled, form.info).await?;
    let sender = sender_of(&auth.user);
    let outcome = messages::post(
        &state,
        &sender,
        &room,
        &form.caption,
        form.client_id.as_deref(),
        &[stored.id.to_string()],
    )
    .await?;
    Ok(match &outcome {
        InsertOutcome::Inserted(m) => created(MessageView::new(m, true, false)),
        InsertOutcome::Duplicate(m) => ok(MessageView::new(m, true, false)),
        InsertOutcome::AttachmentsTaken => return Err(attachments_taken()),
    })
}

/// `POST /tools/api/chat/<room_id>/send-image/` (field `image`).
pub async fn send_image(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    upload_and_send(state, auth, id, form, &["image"], false).await
}

/// `POST /tools/api/chat/<room_id>/send-file/` (field `file`).
pub async fn send_file(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    upload_and_send(state, auth, id, form, &["file"], false).await
}

/// `POST /tools/api/chat/<room_id>/send-audio/` (field `audio`, stored as a voice message).
pub async fn send_audio(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    upload_and_send(state, auth, id, form, &["audio"], true).await
}

/// `POST /tools/api/chat/<room_id>/send-video/` (field `file` or `video`).
pub async fn send_video(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    form: std::result::Result<Multipart, MultipartRejection>,
) -> Result<Response> {
    upload_and_send(state, auth, id, form, &["video", "file"], false).await
}

#[derive(Deserialize)]
pub struct DownloadQuery {
    /// Any value: served as a download with its file name, even if it shows inline.
    download: Option<String>,
}

fn attachment_id(raw: &str) -> Result<AttachmentId> {
    AttachmentId::parse(raw).map_err(|_| attachments::attachment_not_found())
}

/// `GET /tools/api/chat/attachments/<id>/`: the file, to whoever may see it.
pub async fn get_original(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<DownloadQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let download = query.download.is_some();
    serve_authorized(&state, &auth, &id, Variant::Original, download, &headers).await
}

/// `GET /tools/api/chat/attachments/<id>/thumbnail/` (320 px).
pub async fn get_thumbnail(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    serve_authorized(&state, &auth, &id, Variant::Thumbnail, false, &headers).await
}

/// `GET /tools/api/chat/attachments/<id>/preview/` (1280 px).
pub async fn get_preview(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    serve_authorized(&state, &auth, &id, Variant::Preview, false, &headers).await
}

/// One file of the attachment `id`, if the caller may see it.
async fn serve_authorized(
    state: &AppState,
    auth: &AuthUser,
    id: &str,
    variant: Variant,
    force_download: bool,
    headers: &HeaderMap,
) -> Result<Response> {
    let record = attachments::authorize(state, auth.user.id, attachment_id(id)?).await?;
    serve(state, &record.attachment, variant, force_download, headers).await
}

/// `GET /tools/api/chat/<room_id>/download/<message_id>/` (the original
/// path): the message's first attachment, always as a download.
pub async fn download_message(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((room, message)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response> {
    let room = room_id(&room)?;
    let message = MessageId::parse(&message)
        .map_err(|_| AppError::not_found("message_not_found", "no such message in this room"))?;
    let attachment = attachments::of_message(&state, auth.user.id, &room, message).await?;
    serve(&state, &attachment, Variant::Original, true, &headers).await
}

/// Serves one file of an attachment with the headers that keep it harmless:
/// `nosniff`, a sandboxing CSP, a download unless it is an image, audio or
/// video the web app shows; with ranges for players, and an ETag (the
/// content under a key never changes).
async fn serve(
    state: &AppState,
    attachment: &Attachment,
    variant: Variant,
    force_download: bool,
    headers: &HeaderMap,
) -> Result<Response> {
    let (mime, inline) = match variant {
        Variant::Original => (
            served_type(attachment),
            !force_download && media::inline_safe(attachment.kind, &attachment.mime),
        ),
        Variant::Thumbnail | Variant::Preview => match attachment.thumbnail_mime.as_deref() {
            Some(mime) => (mime, true),
            None => return Err(attachments::attachment_not_found()),
        },
    };
    let key = attachments::blob_key(attachment.id, variant);
    let etag = format!("\"{}-{}\"", attachment.id, variant_tag(variant));
    let mut out = HeaderMap::new();
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    out.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
    out.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    out.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    out.insert(header::ETAG, header_value(&etag)?);
    out.insert(header::CONTENT_TYPE, header_value(mime)?);
    out.insert(
        header::CONTENT_DISPOSITION,
        header_value(&content_disposition(inline, &attachment.name))?,
    );
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"))
    {
        return Ok((StatusCode::NOT_MODIFIED, out).into_response());
    }

    let Some(size) = state.blobs.size(&key).await.map_err(storage_error)? else {
        tracing::warn!(attachment = %attachment.id, key, "an attachment's file is missing");
        return Err(attachments::attachment_not_found());
    };
    let range = match headers.get(header::RANGE).and_then(|v| v.to_str().ok()) {
        None => None,
        Some(raw) => match parse_range(raw, size) {
            RangeAsk::Whole => None,
            RangeAsk::Part(range) => Some(range),
            RangeAsk::Unsatisfiable => {
                out.insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{size}"))?,
                );
                return Ok((StatusCode::RANGE_NOT_SATISFIABLE, out).into_response());
            }
        },
    };
    let Some(blob) = state
        .blobs
        .get(&key, range.clone())
        .await
        .map_err(storage_error)?
    else {
        return Err(attachments::attachment_not_found());
    };
    let status = match &range {
        Some(range) => {
            out.insert(
                header::CONTENT_RANGE,
                header_value(&format!("bytes {}-{}/{size}", range.start, range.end - 1))?,
            );
            out.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(range.end - range.start),
            );
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            out.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
            StatusCode::OK
        }
    };
    Ok((status, out, Body::from_stream(blob.body)).into_response())
}

fn variant_tag(variant: Variant) -> &'static str {
    match variant {
        Variant::Original => "o",
        Variant::Thumbnail => "t",
        Variant::Preview => "p",
    }
}

/// The type a stored file is served as: its detected type, except for files
/// whose type a browser would run (HTML, SVG, XML, scripts), which go as
/// bytes — they are downloads anyway.
fn served_type(attachment: &Attachment) -> &str {
    let mime = attachment.mime.as_str();
    let runnable = mime.contains("html")
        || mime.contains("xml")
        || mime.contains("svg")
        || mime.contains("javascript")
        || mime.contains("ecmascript");
    if attachment.kind == AttachmentKind::File && runnable {
        "application/octet-stream"
    } else {
        mime
    }
}

/// `inline` or `attachment`, with an ASCII fallback name and the real one
/// as RFC 8187 `filename*` (so 照片.png arrives as 照片.png).
pub fn content_disposition(inline: bool, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

fn header_value(text: &str) -> Result<HeaderValue> {
    HeaderValue::from_str(text)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("header value: {e}")))
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// No usable single range (several, or not bytes): the whole file, 200.
    Whole,
    /// A half-open byte range within the file: 206.
    Part(Range<u64>),
    /// A range that starts past the end: 416.
    Unsatisfiable,
}

/// `bytes=0-499`, `bytes=500-`, `bytes=-500` (the last 500). Several ranges
/// are answered with the whole file, which RFC 9110 allows.
pub fn parse_range(raw: &str, size: u64) -> RangeAsk {
    let Some(spec) = raw.trim().strip_prefix("bytes=") else {
        return RangeAsk::Whole;
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let Some((start, end)) = spec.trim().split_once('-') else {
        return RangeAsk::Whole;
    };
    let (start, end) = (start.trim(), end.trim());
    let parsed = match (start.is_empty(), end.is_empty()) {
        (true, true) => return RangeAsk::Whole,
        // The last `end` bytes.
        (true, false) => match end.parse::<u64>() {
            Ok(0) => return RangeAsk::Unsatisfiable,
            Ok(n) => Some((size.saturating_sub(n), size)),
            Err(_) => None,
        },
        (false, _) => match start.parse::<u64>() {
            Ok(first) if end.is_empty() => Some((first, size)),
            Ok(first) => match end.parse::<u64>() {
                Ok(last) if last >= first => Some((first, last.saturating_add(1).min(size))),
                _ => None,
            },
            Err(_) => None,
        },
    };
    match parsed {
        None => RangeAsk::Whole,
        Some((first, _)) if first >= size => RangeAsk::Unsatisfiable,
        Some((first, end)) => RangeAsk::Part(first..end),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-1", 10), RangeAsk::Part(0..2));
        assert_eq!(parse_range("bytes=5-", 10), RangeAsk::Part(5..10));
        assert_eq!(parse_range("bytes=-3", 10), RangeAsk::Part(7..10));
        assert_eq!(parse_range("bytes=-30", 10), RangeAsk::Part(0..10));
        assert_eq!(parse_range("bytes=8-100", 10), RangeAsk::Part(8..10));
        assert_eq!(parse_range("bytes=10-", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeAsk::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,4-5", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=5-2", 10), RangeAsk::Whole);
        assert_eq!(parse_range("items=0-1", 10), RangeAsk::Whole);
        assert_eq!(parse_range("bytes=x-1", 10), RangeAsk::Whole);
    }

    #[test]
    fn dispositions_carry_the_real_name() {
        assert_eq!(
            content_disposition(false, "照片 1.png"),
            "attachment; filename=\"__ 1.png\"; filename*=UTF-8''%E7%85%A7%E7%89%87%201.png"
        );
        assert_eq!(
            content_disposition(true, "a\"b.txt"),
            "inline; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"
        );
    }
}
