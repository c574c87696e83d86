-- Who created a room, so the rooms-per-hour quota is counted from the
-- database and holds across nodes. Null for the server's own rooms. Existing
-- group and public rooms were created by their owner.
alter table rooms add column created_by text references users (id);
update rooms set created_by = owner_id where kind <> 'direct';
create index rooms_created_by on rooms (created_by, created_at);
