// How a person's presence and whereabouts read: "online" or "last seen 5
// minutes ago", their local time from the time zone in their profile, the
// side panel of a direct room (the other person's profile), and the browser's
// time zone sent to the server when it changes.
import { h } from './dom.js';
import { t, formatLastSeen, formatTimeIn, browserTimeZone } from './i18n.js';
import { avatarWithDot, realName, shownName, tagPills } from './format.js';
import { patch } from './api.js';

/** "online", else "last seen …" (relative, in the reader's language). */
export function presenceText(person) {
  if (!person) return '';
  if (person.is_online) return t('people.online');
  return formatLastSeen(person.last_seen ? new Date(person.last_seen) : null);
}

/**
 * A user went offline: the frame's profile may still carry the previous
 * `last_seen` (the server records the new one as it sends the frame), so
 * it is at least now.
 */
export function wentOffline(profile = {}, previous = {}) {
  const known = Date.parse(profile.last_seen ?? previous.last_seen ?? '') || 0;
  const now = Date.now();
  return { ...profile, is_online: false, last_seen: new Date(Math.max(known, now)).toISOString() };
}

/** "3:35 PM" where they are, "" when their time zone is unknown or invalid. */
export function localTime(person) {
  return formatTimeIn(person?.time_zone);
}

/** The other person of a direct room, in full, for the side panel. */
export function peerCard(person, { onProfile, presenceKnown = true }) {
  const real = realName(person);
  const time = localTime(person);
  // While disconnected, presence is not known: not shown as it last was.
  const online = presenceKnown ? Boolean(person.is_online) : null;
  const presence = presenceKnown ? presenceText(person) : t('phone.presence_unknown');
  return h(
    'section',
    { class: 'peer-card', dataset: { user: person.id, online: presenceKnown ? String(online) : 'unknown' }, 'aria-label': shownName(person) },
    h(
      'button',
      { type: 'button', class: 'peer-avatar', onclick: () => onProfile(person.id), 'aria-label': t('people.open_profile', { name: shownName(person) }), title: t('people.open_profile', { name: shownName(person) }) },
      avatarWithDot(person.avatar_url, online, 'xl'),
    ),
    h('h3', { class: 'peer-name' }, shownName(person)),
    h('p', { class: 'peer-username muted' }, `@${person.username}`),
    real ? h('p', { class: 'peer-real' }, real) : null,
    h('p', { class: online ? 'peer-presence online' : 'peer-presence' }, presence),
    person.bio ? h('p', { class: 'peer-bio' }, person.bio) : null,
    person.tag_details?.length ? tagPills(person.tag_details) : null,
    time
      ? h(
          'dl',
          { class: 'facts peer-facts' },
          h('dt', {}, t('people.local_time')),
          h('dd', { class: 'peer-local-time' }, h('time', {}, time), h('span', { class: 'muted' }, ` · ${person.time_zone.replace(/_/g, ' ')}`)),
        )
      : null,
  );
}

const REPORTED_ZONE_KEY = 'parley.reportedTimeZone';

/**
 * Sends this browser's time zone to the profile when the profile has none or
 * the browser's zone changed since it last reported one (a zone chosen in the
 * settings stays until the browser moves to another zone). Returns the
 * updated profile, or null if nothing was sent.
 */
export async function reportTimeZone(me) {
  const zone = browserTimeZone();
  if (!zone || !me) return null;
  const reported = localStorage.getItem(REPORTED_ZONE_KEY);
  if (me.time_zone === zone) {
    localStorage.setItem(REPORTED_ZONE_KEY, zone);
    return null;
  }
  if (me.time_zone && reported === zone) return null;
  try {
    const updated = await patch('/user/me/profile/', { time_zone: zone });
    localStorage.setItem(REPORTED_ZONE_KEY, zone);
    return updated;
  } catch {
    return null;
  }
}

/** Remembers that this browser's zone was seen, so a zone set by hand is not overwritten. */
export function markTimeZoneReported() {
  const zone = browserTimeZone();
  if (zone) localStorage.setItem(REPORTED_ZONE_KEY, zone);
}

/** Calls `fn` at the start of every minute (so "5 minutes ago" moves on). */
export function everyMinute(fn) {
  let timer = null;
  const tick = () => {
    fn();
    timer = setTimeout(tick, 60000 - (Date.now() % 60000) + 50);
  };
  timer = setTimeout(tick, 60000 - (Date.now() % 60000) + 50);
  return () => clearTimeout(timer);
}
