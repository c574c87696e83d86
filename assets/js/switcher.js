// The quick switcher (Ctrl+K / ⌘+K): one search field over the user's rooms
// and people, fuzzy (the letters of the query in order, not necessarily side
// by side; a Chinese name matches character by character), in the ARIA
// combobox pattern: ↑/↓ move the active option, Enter opens it, Escape closes.
import { h, clear, debounce } from './dom.js';
import { t, tn } from './i18n.js';
import { get, post } from './api.js';
import { trapTab } from './dialogs.js';
import { avatarWithDot, initials, roomTitle, shownName } from './format.js';

const MAX_ROOMS = 30;
const MAX_PEOPLE = 8;

/** Lower-cased code points, so a CJK character or an emoji is one unit. */
function units(text) {
  return Array.from(text.toLocaleLowerCase());
}

/**
 * How well `query` matches `text` as a subsequence: null if it does not,
 * else a score (higher is better) that favours a match at the start, at word
 * starts and in one run.
 */
export function fuzzyScore(query, text) {
  const q = units(query.replace(/\s+/g, ''));
  if (!q.length) return 0;
  const s = units(text);
  let score = 0;
  let from = 0;
  let last = -2;
  for (const ch of q) {
    let at = -1;
    for (let i = from; i < s.length; i += 1) {
      if (s[i] === ch) {
        at = i;
        break;
      }
    }
    if (at < 0) return null;
    if (at === 0) score += 8;
    else if (/[\s\-_.@#·]/.test(s[at - 1])) score += 5;
    if (at === last + 1) score += 4;
    else score -= Math.min(at - from, 6);
    last = at;
    from = at + 1;
  }
  // Shorter names with the same letters first.
  return score - s.length / 100;
}

/** The best score of `query` over several names of one thing. */
function bestScore(query, names) {
  let best = null;
  for (const name of names) {
    if (!name) continue;
    const score = fuzzyScore(query, name);
    if (score !== null && (best === null || score > best)) best = score;
  }
  return best;
}

let switcherCount = 0;

export class Switcher {
  /**
   * `rooms()`: the user's rooms in list order; `me`: the user;
   * `openRoom(id, room)`: opens one; `isOnline(userId)` for direct rooms' dots.
   */
  constructor({ rooms, me, openRoom, isOnline = () => false }) {
    Object.assign(this, { rooms, me, openRoom, isOnline });
    this.dialog = null;
    this.options = [];
    this.active = -1;
    this.people = [];
    this.searchPeople = debounce(() => this.loadPeople(), 150);
  }

  get isOpen() {
    return Boolean(this.dialog?.open);
  }

  toggle() {
    if (this.isOpen) this.dialog.close();
    else this.open();
  }

  open() {
    if (this.isOpen) {
      this.input.focus();
      return;
    }
    switcherCount += 1;
    const listId = `switcher-list-${switcherCount}`;
    const titleId = `switcher-title-${switcherCount}`;
    this.input = h('input', {
      type: 'text',
      role: 'combobox',
      'aria-autocomplete': 'list',
      'aria-expanded': 'true',
      'aria-controls': listId,
      'aria-labelledby': titleId,
      placeholder: t('keys.switcher.placeholder'),
      autocomplete: 'off',
      spellcheck: 'false',
      class: 'switcher-input',
      oninput: () => {
        this.people = [];
        this.render();
        this.searchPeople();
      },
      onkeydown: (event) => this.onKey(event),
    });
    this.list = h('ul', { id: listId, role: 'listbox', class: 'switcher-list', 'aria-labelledby': titleId });
    this.status = h('p', { class: 'sr-only', role: 'status', 'aria-live': 'polite' });
    this.dialog = h(
      'dialog',
      { class: 'switcher', 'aria-labelledby': titleId },
      h('h2', { id: titleId, class: 'sr-only' }, t('keys.switcher.title')),
      h('div', { class: 'switcher-field' }, this.input),
      this.list,
      this.status,
      h('p', { class: 'switcher-hint muted', 'aria-hidden': 'true' }, t('keys.switcher.hint')),
    );
    this.list.addEventListener('click', (event) => {
      const option = event.target.closest('[role="option"]');
      if (option) this.choose(Number(option.dataset.index));
    });
    // The handlers name this dialog, not this.dialog: a close event arrives a
    // task later, when a quick Ctrl+K may already have opened the next one.
    const dialog = this.dialog;
    dialog.addEventListener('click', (event) => {
      if (event.target === dialog) dialog.close();
    });
    dialog.addEventListener('keydown', (event) => trapTab(dialog, event));
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (this.dialog === dialog) this.dialog = null;
    });
    document.body.append(this.dialog);
    this.people = [];
    this.dialog.showModal();
    this.input.focus();
    this.render();
  }

  onKey(event) {
    const count = this.options.length;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      if (!count) return;
      const step = event.key === 'ArrowDown' ? 1 : -1;
      this.setActive((this.active + step + count) % count);
    } else if (event.key === 'Home' && event.ctrlKey) {
      event.preventDefault();
      if (count) this.setActive(0);
    } else if (event.key === 'End' && event.ctrlKey) {
      event.preventDefault();
      if (count) this.setActive(count - 1);
    } else if (event.key === 'Enter') {
      event.preventDefault();
      if (this.active >= 0) this.choose(this.active);
    }
  }

  /** Rooms matching the query, best first; with no query, unread then recent. */
  matchRooms(query) {
    const rooms = this.rooms();
    if (!query) {
      const unread = rooms.filter((room) => room.unread > 0);
      const read = rooms.filter((room) => !(room.unread > 0));
      return [...unread, ...read].slice(0, MAX_ROOMS);
    }
    const scored = [];
    for (const room of rooms) {
      const score = bestScore(query, [roomTitle(room), room.peer?.username, room.peer && shownName(room.peer), room.room_id]);
      if (score !== null) scored.push({ room, score: score + (room.unread > 0 ? 0.5 : 0) });
    }
    scored.sort((a, b) => b.score - a.score);
    return scored.slice(0, MAX_ROOMS).map((entry) => entry.room);
  }

  async loadPeople() {
    const query = this.input?.value.trim();
    if (!query || !this.isOpen) return;
    try {
      // The server matches a substring; a fuzzy query ("张明" for 张伟明) is
      // also sent as its first character, and the answers filtered here.
      const first = units(query)[0];
      const asked = first && first !== query.toLocaleLowerCase() ? [query, first] : [query];
      const answers = await Promise.all(asked.map((q) => get(`/user/search/?q=${encodeURIComponent(q)}`)));
      if (!this.isOpen || this.input.value.trim() !== query) return;
      const users = [...new Map(answers.flat().map((u) => [u.id, u])).values()];
      // People one already has a direct room with show as that room.
      const direct = new Set(this.rooms().filter((room) => room.peer).map((room) => room.peer.id));
      this.people = users
        .filter((u) => u.id !== this.me.id && !direct.has(u.id))
        .map((u) => ({ u, score: bestScore(query, [shownName(u), u.username, u.display_name]) }))
        .filter((entry) => entry.score !== null)
        .sort((a, b) => b.score - a.score)
        .slice(0, MAX_PEOPLE)
        .map((entry) => entry.u);
      this.render();
    } catch {
      /* people are an extra: the rooms still show */
    }
  }

  render() {
    const query = this.input.value.trim();
    const rooms = this.matchRooms(query);
    this.options = [...rooms.map((room) => ({ kind: 'room', room })), ...this.people.map((user) => ({ kind: 'person', user }))];
    const items = [];
    const group = (label) => h('li', { role: 'presentation', class: 'switcher-group' }, label);
    if (rooms.length) items.push(group(t('keys.switcher.rooms')));
    this.options.forEach((option, index) => {
      if (option.kind === 'person' && (index === 0 || this.options[index - 1].kind !== 'person')) items.push(group(t('keys.switcher.people')));
      items.push(this.optionEl(option, index));
    });
    if (!this.options.length) items.push(h('li', { role: 'presentation', class: 'switcher-empty muted' }, t('keys.switcher.none')));
    clear(this.list).append(...items);
    this.status.textContent = this.options.length ? tn('keys.switcher.count', this.options.length) : t('keys.switcher.none');
    this.setActive(this.options.length ? 0 : -1);
  }

  optionEl(option, index) {
    const id = `${this.list.id}-${index}`;
    if (option.kind === 'room') {
      const { room } = option;
      const title = roomTitle(room);
      const icon =
        room.room_type === 'direct' && room.peer
          ? avatarWithDot(room.peer.avatar_url, this.isOnline(room.peer.id))
          : h('span', { class: 'room-icon', 'aria-hidden': 'true' }, room.room_type === 'public' ? '#' : initials(title));
      const unread = room.unread ?? 0;
      return h(
        'li',
        { id, role: 'option', class: 'switcher-option', 'aria-selected': 'false', dataset: { index, room: room.room_id } },
        icon,
        h('span', { class: 'result-main' }, h('strong', {}, title), h('small', {}, t(`room.kind_${room.room_type}`))),
        unread ? h('span', { class: 'badge unread-badge', 'aria-label': t('rooms.unread', { n: unread }) }, unread > 99 ? '99+' : String(unread)) : null,
      );
    }
    const { user } = option;
    return h(
      'li',
      { id, role: 'option', class: 'switcher-option', 'aria-selected': 'false', dataset: { index, user: user.username } },
      avatarWithDot(user.avatar_url, user.is_online),
      h('span', { class: 'result-main' }, h('strong', {}, shownName(user)), h('small', {}, `@${user.username} · ${t('keys.switcher.message_person')}`)),
    );
  }

  setActive(index) {
    this.active = index;
    for (const el of this.list.querySelectorAll('[role="option"]')) {
      const on = Number(el.dataset.index) === index;
      el.setAttribute('aria-selected', String(on));
      if (on) el.scrollIntoView({ block: 'nearest' });
    }
    if (index >= 0) this.input.setAttribute('aria-activedescendant', `${this.list.id}-${index}`);
    else this.input.removeAttribute('aria-activedescendant');
  }

  async choose(index) {
    const option = this.options[index];
    if (!option) return;
    if (option.kind === 'room') {
      this.dialog.close();
      this.openRoom(option.room.room_id, option.room);
      return;
    }
    try {
      const room = await post(`/chat/direct/${option.user.id}/`);
      this.dialog?.close();
      this.openRoom(room.room_id, { ...room, peer: option.user });
    } catch (error) {
      this.status.textContent = error.message;
    }
  }
}
