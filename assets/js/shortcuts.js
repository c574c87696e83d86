// The app's keyboard: the quick switcher (Ctrl/⌘+K), moving between rooms
// (Alt+↑/↓, and Alt+Shift+↑/↓ for unread ones), Escape closing the topmost
// layer only, "?" for the list of shortcuts, and the confirmation before
// logging out.
import { h } from './dom.js';
import { t } from './i18n.js';
import { openDialog } from './dialogs.js';

/** Whether this is a Mac (⌘ instead of Ctrl). */
export function isMac() {
  const platform = navigator.userAgentData?.platform ?? navigator.platform ?? '';
  return /mac|iphone|ipad/i.test(platform);
}

function modKey() {
  return isMac() ? '⌘' : 'Ctrl';
}

function altKey() {
  return isMac() ? '⌥' : 'Alt';
}

/** Typing in a field: single-letter shortcuts stay out of the way. */
function typingIn(target) {
  return Boolean(target?.closest?.('input, textarea, select, [contenteditable=""], [contenteditable="true"]'));
}

/** The keys of every shortcut, as shown in the list: [keys…] per way, and what it does. */
function shortcutRows() {
  const mod = modKey();
  const alt = altKey();
  return [
    [[[mod, 'K']], 'keys.help.switcher'],
    [[[alt, '↑'], [alt, '↓']], 'keys.help.room_prev_next'],
    [[[alt, 'Shift', '↑'], [alt, 'Shift', '↓']], 'keys.help.unread_prev_next'],
    [[['↑'], ['↓'], ['Home'], ['End']], 'keys.help.room_list'],
    [[['Enter']], 'keys.help.open'],
    [[['Tab'], ['↑'], ['↓']], 'keys.help.messages'],
    [[['Enter']], 'keys.help.message_profile'],
    [[['Enter']], 'keys.help.send'],
    [[['Shift', 'Enter']], 'keys.help.newline'],
    [[['←'], ['→']], 'keys.help.lightbox'],
    [[['Esc']], 'keys.help.escape'],
    [[['?']], 'keys.help.shortcuts'],
  ];
}

function keyCombo(keys) {
  const parts = [];
  keys.forEach((key, i) => {
    if (i) parts.push(h('span', { class: 'kbd-plus', 'aria-hidden': 'true' }, '+'));
    parts.push(h('kbd', {}, key));
  });
  return h('span', { class: 'kbd-combo' }, parts);
}

let openShortcuts = null;

/** The list of shortcuts, localised, with the keys of this platform. */
export function shortcutsDialog() {
  if (openShortcuts?.open) return openShortcuts;
  const rows = shortcutRows().map(([ways, key]) =>
    h(
      'tr',
      {},
      h('th', { scope: 'row' }, t(key)),
      h(
        'td',
        {},
        ways.map((keys, i) => [i ? h('span', { class: 'kbd-or' }, t('keys.help.or')) : null, keyCombo(keys)]),
      ),
    ),
  );
  const table = h(
    'table',
    { class: 'shortcuts-table' },
    h('caption', { class: 'sr-only' }, t('keys.help.title')),
    h('thead', { class: 'sr-only' }, h('tr', {}, h('th', { scope: 'col' }, t('keys.help.action')), h('th', { scope: 'col' }, t('keys.help.keys')))),
    h('tbody', {}, rows),
  );
  openShortcuts = openDialog({ title: t('keys.help.title'), body: [table, h('p', { class: 'muted shortcuts-note' }, t('keys.help.note'))], className: 'shortcuts-dialog' });
  // The list scrolls on a phone and holds nothing focusable: its body is a
  // Tab stop of its own so the keyboard can scroll it.
  const body = openShortcuts.querySelector('.dialog-body');
  body.tabIndex = 0;
  body.setAttribute('role', 'region');
  body.setAttribute('aria-label', t('keys.help.title'));
  return openShortcuts;
}

/**
 * Wires the keyboard. `app` gives: switcher, roomIds() (in list order),
 * unreadIds() (a Set), currentId(), openRoom(id), emoji (the picker),
 * drawersOpen(), closeDrawers(returnFocus).
 */
export function setupShortcuts(app) {
  // Capture: these run before any field or panel handles the key.
  document.addEventListener(
    'keydown',
    (event) => {
      const modal = document.querySelector('dialog[open]');
      if ((event.key === 'k' || event.key === 'K') && (event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey) {
        // A modal other than the switcher keeps the keyboard.
        if (modal && !modal.classList.contains('switcher')) return;
        event.preventDefault();
        app.switcher.toggle();
        return;
      }
      if (event.key === 'Escape') {
        // The topmost layer only: an open dialog closes itself (natively);
        // then the emoji picker, then a drawer.
        if (modal) return;
        if (app.emoji.isOpen) {
          event.preventDefault();
          event.stopPropagation();
          app.emoji.close(true);
        }
        return;
      }
      if (modal) return;
      if (event.altKey && !event.ctrlKey && !event.metaKey && (event.key === 'ArrowUp' || event.key === 'ArrowDown')) {
        event.preventDefault();
        moveRoom(app, event.key === 'ArrowDown' ? 1 : -1, event.shiftKey);
        return;
      }
      if (event.key === '?' && !event.ctrlKey && !event.metaKey && !event.altKey && !typingIn(event.target)) {
        event.preventDefault();
        shortcutsDialog();
      }
    },
    { capture: true },
  );
}

/** Alt+↑/↓: the previous/next room in the list; with Shift, the previous/next unread one. */
function moveRoom(app, step, unreadOnly) {
  const ids = app.roomIds();
  if (!ids.length) return;
  const here = ids.indexOf(app.currentId());
  if (!unreadOnly) {
    const next = here < 0 ? (step > 0 ? 0 : ids.length - 1) : here + step;
    if (next >= 0 && next < ids.length) app.openRoom(ids[next]);
    return;
  }
  const unread = app.unreadIds();
  // Round the list, starting next to the open room.
  for (let k = 1; k <= ids.length; k += 1) {
    const i = (((here < 0 ? (step > 0 ? -1 : 0) : here) + step * k) % ids.length + ids.length) % ids.length;
    if (unread.has(ids[i]) && ids[i] !== app.currentId()) {
      app.openRoom(ids[i]);
      return;
    }
  }
}
