// How users, tags, links and system messages are shown.
import { h } from './dom.js';
import { t, tn, language } from './i18n.js';

export function shownName(profile) {
  return profile?.display_name || profile?.username || '';
}

export function realName(profile) {
  return [profile?.first_name, profile?.last_name].filter(Boolean).join(' ');
}

/** The name a message shows for its sender. */
export function senderName(message) {
  return message.sender_display_name || message.sender || '';
}

/**
 * The user's tags as pills; `compact` draws them as one line of small muted
 * text that ends in an ellipsis (lists), the full labels in its tooltip.
 */
export function tagPills(details = [], { compact = false } = {}) {
  const labels = details.map((tag) => `${tag.emoji} ${t(`tag.${tag.kind}.${tag.code}`)}`);
  return h(
    'ul',
    compact ? { class: 'tags tags-compact', title: labels.join(' · ') } : { class: 'tags' },
    details.map((tag) =>
      h(
        'li',
        { class: `tag tag-${tag.kind} tag-${tag.kind}-${tag.code}` },
        h('span', { 'aria-hidden': 'true' }, tag.emoji),
        ` ${t(`tag.${tag.kind}.${tag.code}`)}`,
      ),
    ),
  );
}

export function avatar(url, size = '', alt = '') {
  return h('img', { class: `avatar ${size}`, src: url, alt, width: 36, height: 36, loading: 'lazy', decoding: 'async' });
}

/** An avatar with a presence dot; `online` null: not known now (disconnected), a grey ring. */
export function avatarWithDot(url, online, size = '') {
  const dot = online === null ? 'status-dot unknown' : online ? 'status-dot online' : 'status-dot';
  return h('span', { class: `avatar-wrap ${size}` }, avatar(url, size), h('span', { class: dot }));
}

// http(s) URLs and www. addresses; anything else (javascript:, data:, …)
// stays plain text because it never matches.
const LINK = /\b(?:https?:\/\/|www\.)[^\s<>"'`]+/gi;
const TRAILING = /[.,;:!?'")\]}>，。！？、；：）】》]+$/u;

/** The text as nodes: plain text, with web addresses as safe links. */
export function linkify(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(LINK)) {
    let url = match[0];
    const trailing = url.match(TRAILING);
    if (trailing) url = url.slice(0, -trailing[0].length);
    if (!url) continue;
    const start = match.index;
    if (start > last) nodes.push(text.slice(last, start));
    const href = url.toLowerCase().startsWith('www.') ? `https://${url}` : url;
    let safe = null;
    try {
      const parsed = new URL(href);
      if (parsed.protocol === 'http:' || parsed.protocol === 'https:') safe = parsed.href;
    } catch {
      safe = null;
    }
    nodes.push(safe ? h('a', { href: safe, target: '_blank', rel: 'noopener noreferrer' }, url) : url);
    last = start + url.length;
  }
  if (last < text.length) nodes.push(text.slice(last));
  return nodes;
}

/** A system message in the reader's language (from its event), else its English text. */
export function systemText(message) {
  const e = message.event;
  if (!e?.event) return message.content;
  const key = `sys.${e.event}`;
  const text = t(key, { user: e.username ?? '', by: e.by ?? '', name: e.name ?? '' });
  return text === key ? message.content : text;
}

/** A message's attachments (a message without any has none: the field is left out). */
export function attachmentsOf(message) {
  return Array.isArray(message?.attachments) ? message.attachments : [];
}

/** 0:07, 1:05, 1:02:03 — a media duration in milliseconds. */
export function formatDuration(ms) {
  const total = Math.max(0, Math.round((Number(ms) || 0) / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

const SIZE_UNITS = ['kilobyte', 'megabyte', 'gigabyte', 'terabyte'];
const sizeFormats = new Map();

/** "512 bytes", "1.4 MB": a file size in the reader's language (1 kB = 1024 bytes, as file managers count). */
export function formatBytes(bytes) {
  const n = Math.max(0, Number(bytes) || 0);
  if (n < 1024) return tn('attach.bytes', n);
  let value = n / 1024;
  let unit = 0;
  while (value >= 1024 && unit < SIZE_UNITS.length - 1) {
    value /= 1024;
    unit += 1;
  }
  // One decimal below 10 ("2.2 MB"), none above ("98 kB").
  const digits = value < 10 ? 1 : 0;
  const key = `${language()}|${SIZE_UNITS[unit]}|${digits}`;
  let format = sizeFormats.get(key);
  if (!format) {
    format = new Intl.NumberFormat(language(), { style: 'unit', unit: SIZE_UNITS[unit], unitDisplay: 'short', maximumFractionDigits: digits });
    sizeFormats.set(key, format);
  }
  return format.format(value);
}

/**
 * What a message's attachments are, in words: "📷 Photo", "📷 3 photos",
 * "🎤 Voice message 0:12", "📎 report.pdf", "🎬 Video" ("" for none).
 */
export function attachmentLabel(attachments) {
  const n = attachments.length;
  if (!n) return '';
  const kinds = new Set(attachments.map((a) => a.kind));
  const kind = kinds.size === 1 ? attachments[0].kind : 'mixed';
  if (kind === 'image') return n === 1 ? t('attach.preview.photo') : tn('attach.preview.photos', n);
  if (kind === 'video') return n === 1 ? t('attach.preview.video') : tn('attach.preview.videos', n);
  if (kind === 'voice') return t('attach.preview.voice', { duration: formatDuration(attachments[0].duration_ms) });
  if (kind === 'file') return n === 1 ? t('attach.preview.file', { name: attachments[0].name }) : tn('attach.preview.files', n);
  return tn('attach.preview.mixed', n);
}

/** A message in one line, without its sender: the text, or what it carries and its caption. */
export function messageSummary(message) {
  const text = (message.content ?? '').replace(/\s+/g, ' ').trim();
  const label = attachmentLabel(attachmentsOf(message));
  if (!label) return text;
  return text ? t('attach.preview.with_caption', { label, caption: text }) : label;
}

/** Text for a room list preview. */
export function previewText(message) {
  if (!message) return t('rooms.no_messages');
  if (message.message_type === 'system') return systemText(message);
  const who = message.is_own ? t('rooms.you') : senderName(message);
  return `${who}: ${messageSummary(message)}`;
}

export function roomTitle(room) {
  if (room.room_type === 'direct') return shownName(room.peer) || t('room.kind_direct');
  return room.name || room.room_id;
}

/** One or two letters for a room's icon. */
export function initials(text) {
  const letters = [...(text || '?').trim()];
  return (letters[0] || '?').toUpperCase();
}
