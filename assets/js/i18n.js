// UI strings from the page's catalogue (i18n/<lang>.json on the server),
// dates and times in the user's locale.

let catalog = {};
let lang = 'zh-CN';
let plurals = new Intl.PluralRules(lang);

export function initI18n(strings, language) {
  catalog = strings || {};
  lang = language || 'zh-CN';
  plurals = new Intl.PluralRules(lang);
}

export function language() {
  return lang;
}

/** t('typing.one', {name}) */
export function t(key, vars) {
  let text = catalog[key] ?? key;
  if (vars) text = text.replace(/\{(\w+)\}/g, (_, name) => (vars[name] ?? '').toString());
  return text;
}

/**
 * t() for a count: `key.one`, `key.few`, … as the language's plural rules
 * say, else `key` itself (Chinese has one form).
 */
export function tn(key, count, vars = {}) {
  const form = `${key}.${plurals.select(count)}`;
  return t(form in catalog ? form : key, { n: count, ...vars });
}

/** The translated message for an API or WebSocket error code. */
export function errorText(code, fallback) {
  return catalog[`error.${code}`] ?? fallback ?? t('error.generic');
}

// ------------------------------------------------------------ times
// Every time the app shows goes through these. They format in the app's
// language, but follow the browser's own locale when it is the same language
// (an en-GB browser gets 24 h "15:35" in English, en-US "3:35 PM"); zh-CN
// gets its 24 h "15:35".

const formats = new Map();
let formatsLang = '';
let cachedLocale = null;

function sameLanguage(a, b) {
  try {
    const x = new Intl.Locale(a).maximize();
    const y = new Intl.Locale(b).maximize();
    return x.language === y.language && x.script === y.script;
  } catch {
    return false;
  }
}

/** The locale times are formatted in. */
export function timeLocale() {
  if (cachedLocale && formatsLang === lang) return cachedLocale;
  const browser = (typeof navigator !== 'undefined' && (navigator.languages?.length ? navigator.languages : [navigator.language])) || [];
  cachedLocale = browser.find((tag) => tag && sameLanguage(tag, lang)) ?? lang;
  return cachedLocale;
}

/** A cached Intl.DateTimeFormat for these options (and time zone). */
function dateFormat(options) {
  if (formatsLang !== lang) {
    formats.clear();
    cachedLocale = null;
    timeLocale();
    formatsLang = lang;
  }
  const key = JSON.stringify(options);
  let format = formats.get(key);
  if (!format) {
    format = new Intl.DateTimeFormat(timeLocale(), options);
    formats.set(key, format);
  }
  return format;
}

const TIME = { hour: 'numeric', minute: '2-digit' };

/** "3:35 PM" / "15:35": the hour as the locale writes it, no leading zero in 12 h. */
export function formatTime(date) {
  return dateFormat(TIME).format(date);
}

export function formatDateTime(date) {
  return dateFormat({ year: 'numeric', month: 'short', day: 'numeric', ...TIME }).format(date);
}

/** Whether `zone` is an IANA time zone this browser knows. */
export function knownTimeZone(zone) {
  if (!zone) return false;
  try {
    dateFormat({ ...TIME, timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** The time now (or at `date`) in `zone`, "" for an unknown or invalid zone. */
export function formatTimeIn(zone, date = new Date()) {
  if (!knownTimeZone(zone)) return '';
  return dateFormat({ ...TIME, timeZone: zone }).format(date);
}

const startOfDay = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
const daysBetween = (earlier, later) => Math.round((startOfDay(later) - startOfDay(earlier)) / 86400000);

/** "Today", "Yesterday", or the date. */
export function formatDay(date) {
  const today = new Date();
  const days = daysBetween(date, today);
  if (days === 0) return t('messages.today');
  if (days === 1) return t('messages.yesterday');
  const sameYear = date.getFullYear() === today.getFullYear();
  return dateFormat({
    weekday: days < 7 ? 'long' : undefined,
    month: 'long',
    day: 'numeric',
    year: sameYear ? undefined : 'numeric',
  }).format(date);
}

/** A short time for lists: the time today, else the date. */
export function formatShort(date) {
  const now = new Date();
  if (date.toDateString() === now.toDateString()) return formatTime(date);
  return dateFormat({ month: 'numeric', day: 'numeric' }).format(date);
}

let relative = null;
let relativeLang = '';

/**
 * When someone was last online, for "last seen …": "just now", "5 minutes
 * ago", "today at 14:05", "yesterday at 14:05", "Monday at 14:05", else the
 * date. `last` is a Date (or null: never seen); `now` defaults to now.
 */
export function formatLastSeen(last, now = new Date()) {
  if (!last || Number.isNaN(last.getTime())) return t('people.last_seen_recently');
  const minutes = Math.floor((now - last) / 60000);
  if (minutes < 1) return t('people.last_seen_just_now');
  if (minutes < 60) {
    if (!relative || relativeLang !== lang) {
      relative = new Intl.RelativeTimeFormat(timeLocale(), { numeric: 'always', style: 'long' });
      relativeLang = lang;
    }
    return t('people.last_seen', { when: relative.format(-minutes, 'minute') });
  }
  const days = daysBetween(last, now);
  const time = formatTime(last);
  if (days === 0) return t('people.last_seen_today', { time });
  if (days === 1) return t('people.last_seen_yesterday', { time });
  if (days < 7) return t('people.last_seen_weekday', { day: dateFormat({ weekday: 'long' }).format(last), time });
  const sameYear = last.getFullYear() === now.getFullYear();
  return t('people.last_seen', {
    when: dateFormat({ month: 'short', day: 'numeric', year: sameYear ? undefined : 'numeric' }).format(last),
  });
}

/** The browser's IANA time zone ("Asia/Shanghai"), "" if it does not say. */
export function browserTimeZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || '';
  } catch {
    return '';
  }
}
