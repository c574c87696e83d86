-- Attachments (images, files, voice, video). A message carrying some keeps a
-- JSON copy of their metadata in messages.attachments, so history, resume and
-- live frames read them with the message; this table is who may fetch which
-- file, the upload quota, and the clean-up of uploads never posted.
alter table messages add column attachments text;

create table attachments (
    id text primary key,
    -- the room it was uploaded to, and may only be posted in
    room_id text not null references rooms (id),
    uploader_id text not null references users (id),
    -- null until a message posts it (then it is that message's, for good)
    message_id text,
    size bigint not null,
    -- json of the attachment as messages carry it
    meta text not null,
    created_at bigint not null
);
create index attachments_message on attachments (message_id);
-- uploads never posted, oldest first: the clean-up's scan
create index attachments_unposted on attachments (created_at) where message_id is null;
-- a user's recent uploads: the daily quota
create index attachments_uploader on attachments (uploader_id, created_at);
