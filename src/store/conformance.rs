//! The store conformance suite: every `Store` method, written against the trait
//! so each back end runs the same tests and must fail the same way.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures_util::FutureExt as _;

use super::*;
use crate::domain::message::{MessageType, Sender};
use crate::domain::time::{DAY_MS, day_of};

const NOW: i64 = 1_800_000_000_000;

fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: name.to_string(),
        password_hash: format!("hash-of-{name}"),
        display_name: String::new(),
        is_admin: false,
        created_at: NOW,
    }
}

async fn user(store: &DynStore, name: &str) -> User {
    store
        .insert_user(&new_user(name))
        .await
        .expect("insert user")
}

fn room_id(name: &str) -> RoomId {
    RoomId::parse(name).expect("room id")
}

async fn room(store: &DynStore, id: &str, kind: RoomKind, members: &[(UserId, Role)]) -> Room {
    store
        .insert_room(
            &NewRoom {
                id: room_id(id),
                kind,
                name: id.to_string(),
                description: String::new(),
                owner_id: members
                    .iter()
                    .find(|(_, r)| *r == Role::Owner)
                    .map(|(u, _)| *u),
                direct_key: None,
                created_at: NOW,
                members: members.to_vec(),
                created_by: None,
            },
            None,
        )
        .await
        .expect("insert room")
}

fn sender(user: &User) -> Arc<Sender> {
    Arc::new(Sender {
        id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        avatar_version: user.avatar_version,
    })
}

fn text(room: &Room, from: &User, content: &str, client_id: Option<&str>, at: i64) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        room_id: room.id.clone(),
        sender: Some(sender(from)),
        message_type: MessageType::Text,
        content: content.to_string(),
        client_id: client_id.map(str::to_string),
        event: None,
        attachments: Vec::new(),
        created_at: at,
    }
}

fn seqs(outcomes: &[InsertOutcome]) -> Vec<i64> {
    outcomes.iter().map(|o| o.message().unwrap().seq).collect()
}

mod accounts;
mod attachments;
mod messages;
mod moderation;
mod parity;
mod quotas;
mod room_lists;
mod rooms;

use accounts::*;
use attachments::*;
use messages::*;
use moderation::*;
use quotas::*;
use room_lists::*;
use rooms::*;

/// What a test's store leaves behind, to clean up once the store is closed.
trait Leftovers {
    async fn clean_up(self);
}

impl Leftovers for tempfile::TempDir {
    async fn clean_up(self) {
        drop(self);
    }
}

impl Leftovers for super::postgres::TestSchema {
    async fn clean_up(self) {
        self.drop_schema().await.expect("drop the test schema");
    }
}

/// Runs each test of the suite against a fresh store made by `$make`, and
/// cleans up after it even when the test fails.
macro_rules! conformance_suite {
    ($make:path) => {
        conformance_suite!(@tests $make;
            users_are_unique_case_insensitively,
            profiles_update_only_given_fields,
            avatars_bump_their_version,
            avatars_are_removed_and_versions_keep_growing,
            search_and_list_users,
            sessions_expire_and_revoke,
            api_tokens_belong_to_their_owner,
            a_users_tokens_are_deleted_together,
            rooms_and_members,
            ownership_races_leave_one_owner_who_is_a_member,
            mutes_and_bans_outlive_the_membership,
            a_join_racing_a_ban_never_outlives_it,
            blocks_are_one_way_and_capped,
            quotas_are_counted_where_the_rows_are,
            direct_rooms_are_unique_per_pair,
            room_lists_show_unread_and_last_message,
            room_pages_add_up_to_the_room_list,
            invites_count_uses_and_expire,
            seqs_are_gapless_per_room_and_client_ids_idempotent,
            active_days_are_counted_per_user,
            large_batches_keep_seqs_and_client_ids,
            paging_matches_a_vec_model,
            attachments_are_claimed_once_and_counted,
        );
    };
    (@tests $make:path; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some((store, leftovers)) = $make().await else { return };
                let outcome = AssertUnwindSafe(super::$name(&store)).catch_unwind().await;
                // Closed first, so no connection still holds what cleaning up removes.
                store.close().await;
                Leftovers::clean_up(leftovers).await;
                if let Err(panic) = outcome {
                    std::panic::resume_unwind(panic);
                }
            }
        )+
    };
}

mod sqlite {
    use super::*;

    /// A fresh SQLite file in a temporary directory.
    pub(super) async fn make() -> Option<(DynStore, tempfile::TempDir)> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("test.db").display());
        let store = super::super::connect(&url, 4).await.expect("open sqlite");
        store.migrate().await.expect("migrate");
        Some((store, dir))
    }

    conformance_suite!(make);
}

// After the macro: it runs the suite against PostgreSQL too.
mod postgres;
