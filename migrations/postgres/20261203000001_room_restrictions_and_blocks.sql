-- Mutes and bans belong to a user in a room whether or not they are a member
-- at the moment: leaving and joining again, or coming back through an invite,
-- keeps them. One row per (room, user) that has either; the membership row
-- no longer carries the mute.
create table room_restrictions (
    room_id text not null references rooms (id),
    user_id text not null references users (id) on delete cascade,
    -- may not post until then (Unix ms); null = not muted
    muted_until bigint,
    -- set while banned: cannot join, use an invite or be added back
    banned_at bigint,
    banned_by text references users (id) on delete set null,
    ban_reason text not null default '',
    primary key (room_id, user_id)
);

insert into room_restrictions (room_id, user_id, muted_until)
    select room_id, user_id, muted_until from room_members where muted_until is not null;
alter table room_members drop column muted_until;

-- user_id blocks blocked_id: no direct room, no adding to rooms, no posting in
-- their direct room while it stands
create table user_blocks (
    user_id text not null references users (id) on delete cascade,
    blocked_id text not null references users (id) on delete cascade,
    created_at bigint not null,
    primary key (user_id, blocked_id)
);
create index user_blocks_blocked_id on user_blocks (blocked_id);
