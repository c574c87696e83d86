//! Uploads: recorded under a daily quota, claimed by exactly one message in
//! its transaction (on both back ends alike), and cleaned up when never posted.

use super::*;
use crate::domain::attachment::{Attachment, AttachmentKind};
use crate::domain::ids::AttachmentId;

fn upload(room: &Room, by: &User, size: i64, at: i64) -> AttachmentRecord {
    AttachmentRecord {
        attachment: Attachment {
            id: AttachmentId::new(),
            kind: AttachmentKind::Image,
            name: "照片.png".into(),
            mime: "image/png".into(),
            size,
            width: Some(40),
            height: Some(30),
            animated: false,
            duration_ms: None,
            waveform: None,
            placeholder: Some("data:image/png;base64,AAAA".into()),
            thumbnail_mime: Some("image/png".into()),
        },
        room_id: room.id.clone(),
        uploader_id: by.id,
        message_id: None,
        created_at: at,
    }
}

fn quota(max_bytes: i64) -> UploadQuota {
    UploadQuota {
        max_bytes,
        since: NOW - DAY_MS,
    }
}

fn with_attachments(message: NewMessage, attachments: &[&AttachmentRecord]) -> NewMessage {
    NewMessage {
        message_type: MessageType::Image,
        attachments: attachments.iter().map(|r| r.attachment.clone()).collect(),
        ..message
    }
}

pub async fn attachments_are_claimed_once_and_counted(store: &DynStore) {
    let ann = user(store, "ann").await;
    let bob = user(store, "bob").await;
    let lobby = room(
        store,
        "lobby",
        RoomKind::Group,
        &[(ann.id, Role::Owner), (bob.id, Role::Member)],
    )
    .await;
    let other = room(store, "other", RoomKind::Group, &[(ann.id, Role::Owner)]).await;

    // The daily quota: what was uploaded in the window, with the new one.
    let old = upload(&lobby, &ann, 600, NOW - DAY_MS - 1);
    store
        .insert_attachment(&old, quota(1000))
        .await
        .expect("outside the window");
    let a = upload(&lobby, &ann, 600, NOW);
    store
        .insert_attachment(&a, quota(1000))
        .await
        .expect("first");
    let too_much = upload(&lobby, &ann, 401, NOW);
    assert!(matches!(
        store.insert_attachment(&too_much, quota(1000)).await,
        Err(StoreError::Conflict(Conflict::UploadQuotaExceeded))
    ));
    assert_eq!(
        store.get_attachment(too_much.attachment.id).await.unwrap(),
        None
    );
    let b = upload(&lobby, &ann, 400, NOW + 1);
    store
        .insert_attachment(&b, quota(1000))
        .await
        .expect("exactly at the quota");
    assert_eq!(
        store.uploaded_since(ann.id, NOW - DAY_MS).await.unwrap(),
        (1000, Some(NOW))
    );
    assert_eq!(
        store.uploaded_since(bob.id, NOW - DAY_MS).await.unwrap(),
        (0, None)
    );
    assert_eq!(
        store.get_attachment(a.attachment.id).await.unwrap(),
        Some(a.clone())
    );

    // Posted: the message carries the attachment, and the row knows its message.
    let first = with_attachments(text(&lobby, &ann, "", Some("pics"), NOW + 2), &[&a, &b]);
    let first_id = first.id;
    let stored = store.insert_messages(&[first]).await.unwrap();
    let message = match &stored[0] {
        InsertOutcome::Inserted(m) => m.clone(),
        other => panic!("not inserted: {other:?}"),
    };
    assert_eq!(
        message.attachments,
        vec![a.attachment.clone(), b.attachment.clone()]
    );
    assert_eq!(message.message_type, MessageType::Image);
    let record = store
        .get_attachment(a.attachment.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.message_id, Some(first_id));
    let page = store
        .list_messages(&lobby.id, Page::Latest { limit: 10 })
        .await
        .unwrap();
    assert_eq!(page.messages, vec![message.clone()]);
    assert_eq!(
        store.get_message(&lobby.id, first_id).await.unwrap(),
        Some(message.clone())
    );
    assert_eq!(store.get_message(&other.id, first_id).await.unwrap(), None);

    // A resend with the same client id is the original, not a refusal.
    let again = with_attachments(text(&lobby, &ann, "", Some("pics"), NOW + 3), &[&a, &b]);
    assert!(
        matches!(&store.insert_messages(&[again]).await.unwrap()[0], InsertOutcome::Duplicate(m) if m.id == first_id)
    );

    // Already posted, someone else's, or from another room: refused, and
    // without using a seq (the next message still gets seq 2), and the
    // refused message's other, free upload stays free.
    let c = upload(&lobby, &ann, 1, NOW + 4);
    store.insert_attachment(&c, quota(i64::MAX)).await.unwrap();
    let elsewhere = upload(&other, &ann, 1, NOW + 4);
    store
        .insert_attachment(&elsewhere, quota(i64::MAX))
        .await
        .unwrap();
    let batch = vec![
        with_attachments(text(&lobby, &ann, "", None, NOW + 5), &[&c, &a]),
        with_attachments(text(&lobby, &bob, "", None, NOW + 5), &[&c]),
        with_attachments(text(&lobby, &ann, "", None, NOW + 5), &[&elsewhere]),
        text(&lobby, &ann, "plain", None, NOW + 5),
    ];
    let outcomes = store.insert_messages(&batch).await.unwrap();
    assert_eq!(outcomes[0], InsertOutcome::AttachmentsTaken);
    assert_eq!(outcomes[1], InsertOutcome::AttachmentsTaken);
    assert_eq!(outcomes[2], InsertOutcome::AttachmentsTaken);
    assert_eq!(outcomes[3].message().unwrap().seq, 2);
    assert_eq!(
        store
            .get_attachment(c.attachment.id)
            .await
            .unwrap()
            .unwrap()
            .message_id,
        None
    );

    // Two messages racing for one upload in one batch: the first has it.
    let race = vec![
        with_attachments(text(&lobby, &ann, "", None, NOW + 6), &[&c]),
        with_attachments(text(&lobby, &ann, "", None, NOW + 6), &[&c]),
    ];
    let outcomes = store.insert_messages(&race).await.unwrap();
    assert_eq!(outcomes[0].message().unwrap().seq, 3);
    assert_eq!(outcomes[1], InsertOutcome::AttachmentsTaken);

    // Clean-up takes only unposted uploads older than the cut.
    let unposted = store
        .list_unposted_attachments(NOW + 10, 100)
        .await
        .unwrap();
    assert_eq!(unposted, vec![old.attachment.id, elsewhere.attachment.id]);
    assert_eq!(
        store.list_unposted_attachments(NOW, 100).await.unwrap(),
        vec![old.attachment.id]
    );
    let gone = store
        .delete_unposted_attachments(&[old.attachment.id, a.attachment.id])
        .await
        .unwrap();
    assert_eq!(
        gone,
        vec![old.attachment.id],
        "a posted upload is never deleted as unposted"
    );
    assert_eq!(store.get_attachment(old.attachment.id).await.unwrap(), None);
    let mut known = store
        .existing_attachments(&[a.attachment.id, old.attachment.id, c.attachment.id])
        .await
        .unwrap();
    known.sort();
    let mut expected = vec![a.attachment.id, c.attachment.id];
    expected.sort();
    assert_eq!(known, expected);
}
