-- The user's IANA time zone ("Asia/Shanghai"), set by the web app from the
-- browser or in settings: others see the user's local time, and
-- do-not-disturb schedules will be read in it. Empty = unknown.
alter table users add column time_zone text not null default '';
