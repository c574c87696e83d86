// How a message's content is shown: runs of join/leave notices summed up in
// one line, messages of a few emoji only drawn large, long texts folded.
import { t, tn, language } from './i18n.js';

const JOIN_LEAVE = new Set(['member_joined', 'member_left']);

/** A "Bob joined" / "Bob left" system notice. */
export function isJoinLeave(message) {
  return message?.message_type === 'system' && JOIN_LEAVE.has(message.event?.event);
}

let lists = null;
let listsLang = '';

/**
 * "Bob joined", "Bob and Carol joined", "Bob, Carol and Dave joined",
 * "Bob, Carol and 3 others joined" (`kind`: joined or left).
 */
function clause(kind, names) {
  if (!lists || listsLang !== language()) {
    lists = new Intl.ListFormat(language(), { style: 'long', type: 'conjunction' });
    listsLang = language();
  }
  if (names.length <= 3) return t(`people.${kind}`, { names: lists.format(names) });
  return tn(`people.${kind}_others`, names.length - 2, { a: names[0], b: names[1], total: names.length });
}

/** "Bob and Carol joined, Dave left": who joined, then who left, each named once. */
export function joinLeaveSummary(run) {
  const joined = [];
  const left = [];
  for (const message of run) {
    const name = message.event.username || message.content;
    const into = message.event.event === 'member_joined' ? joined : left;
    if (!into.includes(name)) into.push(name);
  }
  const parts = [];
  if (joined.length) parts.push(clause('joined', joined));
  if (left.length) parts.push(clause('left', left));
  return parts.join(t('people.clause_sep'));
}

// One emoji: pictographs with their modifiers, variation selectors and ZWJ
// joins (one grapheme), a flag (two regional indicators) or a keycap.
const EMOJI_GRAPHEME =
  /^(?:[#*0-9]\uFE0F?\u20E3|(?:\p{Regional_Indicator}{2})|(?:\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier}|[\u{E0020}-\u{E007F}])*(?:\u200D\p{Extended_Pictographic}(?:\uFE0F|\p{Emoji_Modifier})*)*))$/u;
const MAX_JUMBO = 3;
let graphemes = null;

/** 1–3 emoji and nothing else (spaces between them are fine). */
export function emojiOnly(text) {
  const trimmed = text.trim();
  if (!trimmed || trimmed.length > 64) return false;
  graphemes ??= typeof Intl.Segmenter === 'function' ? new Intl.Segmenter(undefined, { granularity: 'grapheme' }) : null;
  const parts = graphemes ? [...graphemes.segment(trimmed)].map((s) => s.segment) : [...trimmed];
  const emoji = parts.filter((part) => !/^\s+$/u.test(part));
  return emoji.length >= 1 && emoji.length <= MAX_JUMBO && emoji.every((part) => EMOJI_GRAPHEME.test(part));
}

const LONG_CHARS = 1500;
const LONG_LINES = 12;

/** Long enough to fold behind "Show more". */
export function isLong(text) {
  if (text.length > LONG_CHARS) return true;
  let lines = 1;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) {
    lines += 1;
    if (lines > LONG_LINES) return true;
  }
  return false;
}
