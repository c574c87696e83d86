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

const timeFormat = () => new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' });
let cachedTime = null;
let cachedTimeLang = '';

export function formatTime(date) {
  if (!cachedTime || cachedTimeLang !== lang) {
    cachedTime = timeFormat();
    cachedTimeLang = lang;
  }
  return cachedTime.format(date);
}

export function formatDateTime(date) {
  return new Intl.DateTimeFormat(lang, { dateStyle: 'medium', timeStyle: 'short' }).format(date);
}

/** "Today", "Yesterday", or the date. */
export function formatDay(date) {
  const today = new Date();
  const start = (d) => new Date(d.getFullYear(), d.getMonth(), d.getDate()).getTime();
  const days = Math.round((start(today) - start(date)) / 86400000);
  if (days === 0) return t('messages.today');
  if (days === 1) return t('messages.yesterday');
  const sameYear = date.getFullYear() === today.getFullYear();
  return new Intl.DateTimeFormat(lang, {
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
  return new Intl.DateTimeFormat(lang, { month: 'numeric', day: 'numeric' }).format(date);
}
