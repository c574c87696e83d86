-- Parley schema, PostgreSQL dialect. It mirrors migrations/sqlite/ table for
-- table, column for column and index for index (a test compares them), so both
-- back ends behave alike. Times are Unix milliseconds (bigint) rather than
-- timestamptz for the same reason; ids are text (UUIDv7 or room slugs).
-- Nothing is schema-qualified: tables land in the first schema on search_path,
-- which lets tests give each run its own schema.

create table users (
    id text primary key not null,
    username text not null,
    -- lower-cased username: uniqueness ignores case
    username_key text not null,
    password_hash text not null,
    display_name text not null default '',
    first_name text not null default '',
    last_name text not null default '',
    bio text not null default '',
    email text not null default '',
    membership text not null default 'free',
    membership_until bigint,
    theme_mode text not null default 'work',
    theme_style text not null default 'auto',
    language text not null default 'zh-CN',
    is_admin boolean not null default false,
    avatar_version bigint not null default 0,
    created_at bigint not null,
    last_seen_at bigint
);
create unique index users_username_key on users (username_key);

-- re-encoded 256x256 PNGs; in the database so every node can serve them
create table avatars (
    user_id text primary key not null references users (id) on delete cascade,
    image bytea not null,
    updated_at bigint not null
);

create table sessions (
    -- sha-256 of the cookie value: a database leak reveals no usable session
    token_hash text primary key not null,
    user_id text not null references users (id) on delete cascade,
    csrf_token text not null,
    created_at bigint not null,
    expires_at bigint not null,
    last_used_at bigint not null,
    user_agent text not null default '',
    ip text not null default ''
);
create index sessions_user_id on sessions (user_id);

create table api_tokens (
    id text primary key not null,
    user_id text not null references users (id) on delete cascade,
    name text not null,
    token_hash text not null,
    created_at bigint not null,
    last_used_at bigint
);
create unique index api_tokens_token_hash on api_tokens (token_hash);
create index api_tokens_user_id on api_tokens (user_id);

create table rooms (
    id text primary key not null,
    kind text not null,
    name text not null,
    description text not null default '',
    owner_id text references users (id),
    is_archived boolean not null default false,
    -- "<smaller user id>:<larger user id>" for direct rooms: one room per pair
    direct_key text,
    -- highest message seq; bumped in the same transaction as the insert, under
    -- the room row's lock, so seqs have no gaps even with several nodes writing
    last_seq bigint not null default 0,
    last_message_at bigint,
    created_at bigint not null,
    updated_at bigint not null
);
create unique index rooms_direct_key on rooms (direct_key);
create index rooms_kind on rooms (kind);

create table room_members (
    room_id text not null references rooms (id),
    user_id text not null references users (id) on delete cascade,
    role text not null,
    muted_until bigint,
    last_read_seq bigint not null default 0,
    joined_at bigint not null,
    primary key (room_id, user_id)
);
create index room_members_user_id on room_members (user_id);

create table room_invites (
    code text primary key not null,
    room_id text not null references rooms (id),
    created_by text not null references users (id),
    created_at bigint not null,
    expires_at bigint,
    max_uses bigint,
    uses bigint not null default 0,
    revoked boolean not null default false
);
create index room_invites_room_id on room_invites (room_id);

-- the primary key (room_id, seq) makes a history page one index range scan
create table messages (
    id text not null,
    room_id text not null references rooms (id),
    seq bigint not null,
    sender_id text references users (id),
    message_type text not null,
    content text not null,
    client_id text,
    -- json of the system event, for system messages; text, not jsonb, as in SQLite
    event text,
    created_at bigint not null,
    primary key (room_id, seq)
);
create unique index messages_id on messages (id);
-- a client may resend: one message per (room, sender, client_id); null client ids
-- never collide, exactly as in SQLite
create unique index messages_client_id on messages (room_id, sender_id, client_id);

-- days (since the epoch, UTC) on which a user sent a message: feeds the "active user" tag
create table user_activity_days (
    user_id text not null references users (id) on delete cascade,
    day bigint not null,
    primary key (user_id, day)
);
