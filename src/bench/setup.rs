//! Users, tokens, rooms and memberships for a run, through the public API.
//! Names are deterministic (`<prefix>-u<i>`, `<prefix>-r<j>`), so a second run
//! with the same prefix reuses what the first created; a state file also
//! keeps the API tokens, so reusing 1 000 users costs 1 000 cheap token checks
//! instead of 1 000 password logins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use futures_util::{StreamExt, TryStreamExt, stream};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::bench::api::{Api, RoomInfo};
use crate::bench::layout::Layout;

/// Most members a room is created with in one request: the server's default
/// `--max-members-per-request`; the others join.
const CREATE_MEMBERS_MAX: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchUser {
    pub username: String,
    pub id: String,
    pub token: String,
}

/// How to find or create the run's accounts.
#[derive(Debug, Clone)]
pub struct Identity {
    pub prefix: String,
    pub password: String,
    pub state_file: Option<PathBuf>,
    /// Requests in flight while setting up (registration hashes a password:
    /// more than the server's cores only queues).
    pub concurrency: usize,
}

/// What a state file remembers for one server and prefix.
#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    url: String,
    prefix: String,
    users: BTreeMap<String, BenchUser>,
    /// Room name → room id.
    rooms: BTreeMap<String, String>,
}

pub struct Setup<'a> {
    api: &'a Api,
    identity: &'a Identity,
    state: State,
    /// Registrations and logins made (each hashes a password on the server).
    password_checks: usize,
}

impl<'a> Setup<'a> {
    /// Loads the state file if it is for this server and prefix.
    pub fn new(api: &'a Api, identity: &'a Identity, url: &str) -> anyhow::Result<Self> {
        let mut state = State {
            url: url.to_string(),
            prefix: identity.prefix.clone(),
            ..State::default()
        };
        if let Some(path) = &identity.state_file
            && path.exists()
        {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let saved: State = serde_json::from_str(&text)
                .with_context(|| format!("{} is not a bench state file", path.display()))?;
            if saved.url == state.url && saved.prefix == state.prefix {
                state = saved;
            }
        }
        Ok(Self {
            api,
            identity,
            state,
            password_checks: 0,
        })
    }

    pub fn password_checks(&self) -> usize {
        self.password_checks
    }

    pub fn username(&self, i: usize) -> String {
        format!("{}-u{i}", self.identity.prefix)
    }

    fn room_name(&self, j: usize) -> String {
        format!("{}-r{j}", self.identity.prefix)
    }

    /// Users `0..count`, each with a working API token.
    pub async fn users(
        &mut self,
        count: usize,
        bar: &ProgressBar,
    ) -> anyhow::Result<Vec<BenchUser>> {
        bar.set_prefix("users");
        let names: Vec<(String, Option<BenchUser>)> = (0..count)
            .map(|i| {
                let name = self.username(i);
                let known = self.state.users.get(&name).cloned();
                (name, known)
            })
            .collect();
        let api = self.api;
        let password = self.identity.password.as_str();
        let users: Vec<(BenchUser, bool)> = stream::iter(names)
            .map(|(name, known)| async move {
                let user = acquire(api, &name, password, known).await;
                bar.inc(1);
                bar.set_message(format!("{}/{count}", bar.position()));
                user
            })
            .buffered(self.identity.concurrency.max(1))
            .try_collect()
            .await?;
        self.password_checks += users.iter().filter(|(_, hashed)| *hashed).count();
        let users: Vec<BenchUser> = users.into_iter().map(|(user, _)| user).collect();
        for user in &users {
            self.state.users.insert(user.username.clone(), user.clone());
        }
        self.save()?;
        Ok(users)
    }

    /// The rooms of `layout`, each with every user that has a connection in it as a member.
    pub async fn rooms(
        &mut self,
        layout: &Layout,
        users: &[BenchUser],
        bar: &ProgressBar,
    ) -> anyhow::Result<Vec<String>> {
        bar.set_prefix("rooms");
        bar.set_position(0);
        let jobs: Vec<(usize, String, Option<String>)> = (0..layout.rooms)
            .map(|j| {
                let name = self.room_name(j);
                let known = self.state.rooms.get(&name).cloned();
                (j, name, known)
            })
            .collect();
        let api = self.api;
        let rooms: Vec<(String, String)> = stream::iter(jobs)
            .map(|(j, name, known)| async move {
                let members: Vec<&BenchUser> =
                    layout.users_in(j).into_iter().map(|u| &users[u]).collect();
                let id = ensure_room(api, &name, known.as_deref(), &members).await?;
                bar.inc(1);
                bar.set_message(format!("{}/{}", bar.position(), layout.rooms));
                anyhow::Ok((name, id))
            })
            .buffered(self.identity.concurrency.max(1))
            .try_collect()
            .await?;
        for (name, id) in &rooms {
            self.state.rooms.insert(name.clone(), id.clone());
        }
        self.save()?;
        Ok(rooms.into_iter().map(|(_, id)| id).collect())
    }

    fn save(&self) -> anyhow::Result<()> {
        let Some(path) = &self.identity.state_file else {
            return Ok(());
        };
        write_private(path, &serde_json::to_string_pretty(&self.state)?)
    }
}

/// The state file holds API tokens: readable by its owner only.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A known token if it still works; else register (or log in, if the name is
/// taken) and create a token. True when the server had to hash the password.
async fn acquire(
    api: &Api,
    username: &str,
    password: &str,
    known: Option<BenchUser>,
) -> anyhow::Result<(BenchUser, bool)> {
    if let Some(known) = known
        && api.token_user(&known.token).await?.as_deref() == Some(known.id.as_str())
    {
        return Ok((known, false));
    }
    let login = match api.register(username, password).await? {
        Some(login) => login,
        None => api.login(username, password).await.with_context(|| {
            format!(
                "{username} exists but logging in failed: was it created with another --password? \
                 (failed logins are throttled: see --login-max-failures on the server)"
            )
        })?,
    };
    let token = api.create_token(&login, "parley bench").await?;
    let user = BenchUser {
        username: username.to_string(),
        id: login.user_id,
        token,
    };
    Ok((user, true))
}

/// Finds the room by id (state file) or by name among the owner's rooms, or
/// creates it; then makes sure every member belongs to it.
async fn ensure_room(
    api: &Api,
    name: &str,
    known: Option<&str>,
    members: &[&BenchUser],
) -> anyhow::Result<String> {
    let owner = members[0];
    let mut found: Option<RoomInfo> = None;
    if let Some(id) = known
        && let Ok(room) = api.room(&owner.token, id).await
        && room.name == name
        && room.owner_id.as_deref() == Some(owner.id.as_str())
    {
        found = Some(room);
    }
    if found.is_none() {
        found = api
            .my_rooms(&owner.token)
            .await?
            .into_iter()
            .find(|r| r.name == name && r.owner_id.as_deref() == Some(owner.id.as_str()));
    }
    let room = match found {
        Some(room) => {
            // Reused: anyone may be missing, and joining twice changes nothing.
            if (room.member_count as usize) < members.len() {
                for member in &members[1..] {
                    api.join(&member.token, &room.room_id).await?;
                }
            }
            room
        }
        None => {
            let ids: Vec<String> = members[1..].iter().map(|m| m.id.clone()).collect();
            let first = &ids[..ids.len().min(CREATE_MEMBERS_MAX)];
            let room = api.create_room(&owner.token, name, first).await?;
            for member in &members[1 + first.len()..] {
                api.join(&member.token, &room.room_id).await?;
            }
            room
        }
    };
    Ok(room.room_id)
}
