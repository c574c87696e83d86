// The left column: my rooms, most recently active first, with previews,
// times and unread badges, filtered by the search box.
import { h, clear, perFrame } from './dom.js';
import { t, formatShort } from './i18n.js';
import { avatarWithDot, initials, previewText, roomTitle } from './format.js';

export class RoomList {
  /** `isOnline(userId)`: true, false or null (not known now); `onRender()` after each render (badges). */
  constructor({ list, empty, search, onOpen, isOnline, onRender }) {
    Object.assign(this, { listEl: list, emptyEl: empty, searchEl: search, onOpen, isOnline, onRender });
    this.rooms = new Map();
    // Until the first list arrives the page's placeholder rows stay.
    this.loaded = false;
    this.active = null;
    this.schedule = perFrame(() => this.render());
    search.addEventListener('input', () => this.render());
    // The list is one Tab stop (roving tabindex): ↑/↓/Home/End move between
    // rooms, Enter opens (the rooms are buttons).
    list.addEventListener('keydown', (event) => this.onKey(event));
    list.addEventListener('focusin', (event) => {
      const item = event.target.closest('.room-item');
      if (item) this.setFocusable(item);
    });
  }

  items() {
    return [...this.listEl.querySelectorAll('.room-item')];
  }

  /** The room ids in the order shown. */
  shownIds() {
    return this.items().map((item) => item.dataset.room);
  }

  setFocusable(item) {
    this.focusId = item.dataset.room;
    for (const other of this.items()) other.tabIndex = other === item ? 0 : -1;
  }

  onKey(event) {
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    const items = this.items();
    const here = items.indexOf(event.target.closest('.room-item'));
    if (here < 0) return;
    const next = { ArrowDown: here + 1, ArrowUp: here - 1, Home: 0, End: items.length - 1 }[event.key];
    if (next === undefined) return;
    event.preventDefault();
    const item = items[Math.max(0, Math.min(items.length - 1, next))];
    this.setFocusable(item);
    item.focus();
  }

  setRooms(rooms) {
    const live = this.rooms;
    this.rooms = new Map(
      rooms.map((room) => {
        // Messages that arrived while the list was on its way are newer than it.
        const known = live.get(room.room_id);
        if (!known || (known.last_seq ?? 0) <= (room.last_seq ?? 0)) return [room.room_id, room];
        const { last_seq, last_message, activity } = known;
        return [room.room_id, { ...room, last_seq, last_message, activity, unread: Math.max(room.unread ?? 0, known.unread ?? 0) }];
      }),
    );
    this.loaded = true;
    this.render();
  }

  get(roomId) {
    return this.rooms.get(roomId);
  }

  /** Adds or updates a room (fields not given are kept). */
  upsert(room) {
    const old = this.rooms.get(room.room_id) ?? { unread: 0, last_read_seq: 0 };
    this.rooms.set(room.room_id, { ...old, ...room });
    this.schedule();
  }

  remove(roomId) {
    this.rooms.delete(roomId);
    this.schedule();
  }

  setActive(roomId) {
    this.active = roomId;
    this.focusId = roomId;
    this.schedule();
  }

  /** A new message in a room; `unread` says whether it counts as unread. */
  onMessage(roomId, message, unread) {
    const room = this.rooms.get(roomId);
    if (!room || message.seq <= (room.last_seq ?? 0)) return;
    room.last_seq = message.seq;
    room.last_message = message;
    room.activity = Date.parse(message.created_at);
    if (unread) room.unread = (room.unread ?? 0) + 1;
    this.schedule();
  }

  markRead(roomId, upToSeq) {
    const room = this.rooms.get(roomId);
    if (!room) return;
    room.last_read_seq = Math.max(room.last_read_seq ?? 0, upToSeq);
    if (upToSeq >= (room.last_seq ?? 0)) room.unread = 0;
    this.schedule();
  }

  totalUnread() {
    let total = 0;
    for (const room of this.rooms.values()) total += room.unread ?? 0;
    return total;
  }

  sorted() {
    const time = (room) => room.activity ?? Date.parse(room.last_message?.created_at ?? room.updated_at ?? room.created_at ?? 0);
    return [...this.rooms.values()].sort((a, b) => time(b) - time(a));
  }

  render() {
    if (!this.loaded) return;
    const query = this.searchEl.value.trim().toLowerCase();
    const rooms = this.sorted().filter((room) => !query || roomTitle(room).toLowerCase().includes(query) || room.room_id.includes(query));
    // A re-render keeps the keyboard where it was.
    const focused = this.listEl.contains(document.activeElement) ? document.activeElement.closest('.room-item')?.dataset.room : null;
    clear(this.listEl).append(...rooms.map((room) => this.item(room)));
    this.emptyEl.hidden = rooms.length > 0;
    const items = this.items();
    const stop = items.find((item) => item.dataset.room === (focused ?? this.focusId)) ?? items.find((item) => item.dataset.room === this.active) ?? items[0];
    for (const item of items) item.tabIndex = item === stop ? 0 : -1;
    if (focused && stop?.dataset.room === focused) stop.focus({ preventScroll: true });
    this.onRender?.();
  }

  /** Unread messages in every room but `roomId`. */
  unreadElsewhere(roomId) {
    let total = 0;
    for (const room of this.rooms.values()) if (room.room_id !== roomId) total += room.unread ?? 0;
    return total;
  }

  item(room) {
    const title = roomTitle(room);
    const unread = room.unread ?? 0;
    const icon =
      room.room_type === 'direct' && room.peer
        ? avatarWithDot(room.peer.avatar_url, this.isOnline(room.peer.id))
        : h('span', { class: 'room-icon', 'aria-hidden': 'true' }, room.room_type === 'public' ? '#' : initials(title));
    const when = room.last_message ? new Date(room.last_message.created_at) : null;
    return h(
      'li',
      {},
      h(
        'button',
        {
          type: 'button',
          class: unread ? 'room-item unread' : 'room-item',
          'aria-current': room.room_id === this.active ? 'page' : null,
          dataset: { room: room.room_id },
          onclick: () => this.onOpen(room.room_id),
        },
        icon,
        h('span', { class: 'room-main' }, h('span', { class: 'room-name' }, title), h('span', { class: 'room-preview' }, previewText(room.last_message))),
        h(
          'span',
          { class: 'room-side' },
          when ? h('time', { datetime: room.last_message.created_at }, formatShort(when)) : null,
          unread ? h('span', { class: 'badge unread-badge', 'aria-label': t('rooms.unread', { n: unread }) }, unread > 99 ? '99+' : String(unread)) : null,
        ),
      ),
    );
  }
}
