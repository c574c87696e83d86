// The open room's messages: every loaded message in a list sorted by seq, and
// in the DOM only a window of it (at most MAX_ROWS rows) around what the user
// is looking at, so a room with tens of thousands of loaded messages scrolls
// as smoothly as one with ten. Messages being sent wait below as pending
// rows until their own copy (matched by client_id) arrives.
import { h, clear, perFrame } from './dom.js';
import { t, tn, formatDay, formatTime, formatDateTime } from './i18n.js';
import { avatar, linkify, senderName, systemText } from './format.js';
import { icon } from './icons.js';
import { isJoinLeave, joinLeaveSummary, emojiOnly, isLong } from './message-view.js';
import { attachmentsView, mediaOnly } from './attachment-view.js';
import { attachmentsOf } from './format.js';

const MAX_ROWS = 160;
const CHUNK = 60;
const EDGE_PX = 400;
const RUN_GAP_MS = 5 * 60 * 1000;
/** A join/leave run summarises at most this many notices (a bound on the work per row). */
const RUN_MAX = 2000;

export class Timeline {
  constructor({ scroller, rows, pending, status, jump, jumpCount, jumpUnread, onReadable, onLoadOlder, onProfile, onRetry, onDiscard, onOpenImage }) {
    Object.assign(this, { scroller, rowsEl: rows, pendingEl: pending, statusEl: status, jump, jumpCount, jumpUnread });
    this.onReadable = onReadable;
    this.onLoadOlder = onLoadOlder;
    this.onProfile = onProfile;
    this.onRetry = onRetry;
    this.onDiscard = onDiscard;
    this.onOpenImage = onOpenImage;
    // The placeholder rows the page starts with, shown again while a room loads.
    this.skeleton = [...rows.querySelectorAll('.skeleton')].map((el) => el.cloneNode(true));
    this.list = [];
    this.seqs = new Set();
    this.start = 0;
    this.end = 0;
    this.pending = new Map();
    this.room = null;
    this.newCount = 0;
    this.loadingOlder = false;
    this.hasMore = false;
    /** Seqs of long messages unfolded, and of the first notice of expanded join/leave runs. */
    this.unfolded = new Set();
    this.expandedRuns = new Set();
    this.scheduleScrollCheck = perFrame(() => this.onScroll());
    scroller.addEventListener('scroll', () => this.scheduleScrollCheck(), { passive: true });
    // The composer growing (files in its tray, the recorder, a longer text)
    // makes the conversation shorter: whoever was at the newest message stays there.
    this.wasAtBottom = true;
    new ResizeObserver(() => {
      if (this.room && this.wasAtBottom && !this.isAtBottom()) this.scrollToBottom();
    }).observe(scroller);
    jump.addEventListener('click', () => this.jumpToLatest());
    jumpUnread?.addEventListener('click', () => this.jumpToFirstUnread());
    // Each message is one Tab stop; ↑/↓ move between them, Enter on one from
    // someone else shows their profile. One listener for every row.
    rows.addEventListener('keydown', (event) => this.onRowKey(event));
  }

  onRowKey(event) {
    const row = event.target;
    if (!row.classList?.contains('row') || event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      const next = event.key === 'ArrowDown' ? row.nextElementSibling : row.previousElementSibling;
      if (next) {
        event.preventDefault();
        next.focus();
      }
    } else if (event.key === 'Enter' && row.dataset.seq) {
      const message = this.list[this.indexFor(Number(row.dataset.seq))];
      if (message && !message.is_own && message.message_type !== 'system' && message.sender_id) {
        event.preventDefault();
        this.onProfile(message.sender_id);
      }
    }
  }

  /** Shows a room: `messages` ascending, `hasMore` if older ones exist. */
  reset(room, { messages, hasMore, lastReadSeq, unreadCount, me }) {
    this.room = room;
    this.me = me;
    this.isDirect = room.room_type === 'direct';
    this.unfolded = new Set();
    this.expandedRuns = new Set();
    this.list = [];
    this.seqs = new Set();
    for (const m of messages) this.insertSorted(m);
    this.hasMore = hasMore;
    this.loadingOlder = false;
    this.newCount = 0;
    this.peerReadSeq = 0;
    for (const m of this.list) if (m.is_own && m.is_read && m.seq > this.peerReadSeq) this.peerReadSeq = m.seq;
    // Where the user left off: before the first message from someone else
    // they have not read.
    this.lastReadSeq = lastReadSeq;
    this.unreadCount = unreadCount ?? 0;
    this.unreadSeen = false;
    // With more unread than the page holds, the first unread is older than
    // what was loaded: the divider waits until it is (jumpToFirstUnread).
    this.unreadNotLoaded = hasMore && this.list.length > 0 && this.list[0].seq > lastReadSeq + 1 && this.unreadCount > 0;
    const firstUnread = this.unreadNotLoaded ? null : this.list.find((m) => m.seq > lastReadSeq && !m.is_own && m.message_type !== 'system');
    this.dividerSeq = firstUnread?.seq ?? null;
    for (const entry of this.pending.values()) entry.el.remove();
    this.pending.clear();
    this.end = this.list.length;
    this.start = Math.max(0, this.end - MAX_ROWS);
    clear(this.rowsEl);
    this.rowsEl.append(this.renderRange(this.start, this.end));
    this.setStatus();
    this.showLatestReceipt();
    const divider = this.rowsEl.querySelector('.unread-sep');
    if (divider) divider.scrollIntoView({ block: 'center' });
    else this.scrollToBottom();
    this.updateJump();
  }

  /**
   * The "N new messages · jump" pill: shown while the first unread message is
   * above the viewport (or not loaded yet), until the user has seen it.
   */
  updateJumpUnread() {
    const pill = this.jumpUnread;
    if (!pill) return;
    let show = false;
    if (this.room && !this.unreadSeen && this.unreadCount > 0) {
      if (this.unreadNotLoaded) show = true;
      else if (this.dividerSeq !== null) {
        const divider = this.rowsEl.querySelector('.unread-sep');
        if (divider) {
          const top = divider.getBoundingClientRect().top - this.scroller.getBoundingClientRect().top;
          if (top >= 0 && top < this.scroller.clientHeight) this.unreadSeen = true;
          else show = top < 0;
        } else show = this.indexFor(this.dividerSeq) < this.start;
      }
    }
    if (show) {
      const text = tn('keys.unread.jump', this.unreadCount);
      const label = pill.querySelector('.jump-unread-text');
      if (label.textContent !== text) label.textContent = text;
    }
    if (pill.hidden === show) pill.hidden = !show;
  }

  /** Scrolls to the unread divider, loading older history until it is there. */
  async jumpToFirstUnread() {
    const room = this.room;
    if (!room) return;
    if (this.unreadNotLoaded) {
      this.loadingOlder = true;
      this.setStatus();
      try {
        while (this.room === room && this.hasMore && this.list[0].seq > this.lastReadSeq + 1) {
          const page = await this.onLoadOlder(this.firstSeq);
          if (this.room !== room) return;
          this.hasMore = page.has_more;
          for (const m of page.messages) this.insertSorted(m);
          if (!page.messages.length) break;
        }
      } catch {
        this.loadingOlder = false;
        this.statusEl.textContent = t('messages.load_failed');
        return;
      } finally {
        if (this.room === room) this.loadingOlder = false;
      }
      if (this.room !== room) return;
      this.unreadNotLoaded = false;
      this.dividerSeq = this.list.find((m) => m.seq > this.lastReadSeq && !m.is_own && m.message_type !== 'system')?.seq ?? null;
    }
    if (this.dividerSeq === null) {
      this.unreadSeen = true;
      this.updateJumpUnread();
      return;
    }
    const index = this.indexFor(this.dividerSeq);
    if (index < this.start || index >= this.end || !this.rowsEl.querySelector('.unread-sep')) {
      // Draw a window around the divider.
      this.start = Math.max(0, index - CHUNK / 2);
      this.end = Math.min(this.list.length, this.start + MAX_ROWS);
      clear(this.rowsEl).append(this.renderRange(this.start, this.end));
      this.showLatestReceipt();
    }
    this.setStatus();
    const divider = this.rowsEl.querySelector('.unread-sep');
    divider?.scrollIntoView({ block: 'start' });
    this.unreadSeen = true;
    this.updateJump();
    // The first unread message takes the keyboard, as if reached by Tab.
    divider?.closest('.row')?.focus({ preventScroll: true });
  }

  get lastSeq() {
    return this.list.length ? this.list[this.list.length - 1].seq : 0;
  }

  get firstSeq() {
    return this.list.length ? this.list[0].seq : 0;
  }

  /** Index where `seq` belongs in the list (binary search). */
  indexFor(seq) {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid].seq < seq) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  insertSorted(message) {
    if (this.seqs.has(message.seq)) return -1;
    const index = this.indexFor(message.seq);
    this.list.splice(index, 0, message);
    this.seqs.add(message.seq);
    return index;
  }

  /**
   * A message from the socket or a gap fill. Returns false if it was already
   * shown. The sender's own copy also confirms its pending row.
   */
  add(message) {
    if (message.client_id && this.pending.has(message.client_id) && message.is_own) {
      this.pending.get(message.client_id).el.remove();
      this.pending.delete(message.client_id);
    }
    const wasAtBottom = this.isAtBottom();
    const wasWindowAtEnd = this.end === this.list.length;
    const index = this.insertSorted(message);
    if (index < 0) return false;
    if (index < this.start) {
      this.start += 1;
      this.end += 1;
    } else if (index > this.end || (index === this.end && !wasWindowAtEnd)) {
      // Beyond the window (the user is reading older history): counted, shown later.
      this.newCount += 1;
    } else {
      this.insertRow(index);
      if (this.end - this.start > MAX_ROWS) {
        if (wasAtBottom) this.trimTop(this.end - this.start - MAX_ROWS);
        else this.trimBottom(this.end - this.start - MAX_ROWS);
      }
      if (index === this.list.length - 1 && !message.is_own && !wasAtBottom) this.newCount += 1;
    }
    if (message.is_own) this.showLatestReceipt();
    if (wasAtBottom && this.end === this.list.length) this.scrollToBottom();
    this.updateJump();
    return true;
  }

  /**
   * Direct rooms show 已读/未读 under the newest own message only: when it is
   * read, so is everything before it.
   */
  showLatestReceipt() {
    if (!this.isDirect) return;
    for (const el of this.rowsEl.querySelectorAll('.receipt.latest')) el.classList.remove('latest');
    const newestOwn = this.list.findLast((m) => m.is_own && m.message_type !== 'system');
    if (newestOwn) this.rowsEl.querySelector(`.receipt[data-seq="${newestOwn.seq}"]`)?.classList.add('latest');
  }

  /** Renders list[index] into the DOM (it lies inside the window) and refreshes its successor. */
  insertRow(index) {
    const row = this.renderRow(index);
    const before = this.rowsEl.children[index - this.start] ?? null;
    this.rowsEl.insertBefore(row, before);
    this.end += 1;
    this.rerender(index + 1);
    if (isJoinLeave(this.list[index])) {
      // A join/leave notice joins the run before it: that run's summary moves here.
      this.rerender(index - 1);
      this.rerender(this.runEnd(index));
    }
  }

  /** Whether list[index] continues the join/leave run of list[index - 1]. */
  continuesRun(index) {
    const message = this.list[index];
    const prev = this.list[index - 1];
    return (
      index > 0 &&
      isJoinLeave(message) &&
      isJoinLeave(prev) &&
      message.seq !== this.dividerSeq &&
      new Date(prev.created_at).toDateString() === new Date(message.created_at).toDateString()
    );
  }

  /** The index of the last notice of the run list[index] belongs to. */
  runEnd(index) {
    let end = index;
    while (end + 1 < this.list.length && this.continuesRun(end + 1)) end += 1;
    return end;
  }

  /** The run of join/leave notices ending at list[index] (at most RUN_MAX of them). */
  runBefore(index) {
    let start = index;
    while (start > 0 && index - start < RUN_MAX && this.continuesRun(start)) start -= 1;
    return this.list.slice(start, index + 1);
  }

  /** Re-renders the row of list[index] if it is on screen (its predecessor changed). */
  rerender(index) {
    if (index < this.start || index >= this.end) return;
    const old = this.rowsEl.children[index - this.start];
    if (old) old.replaceWith(this.renderRow(index));
  }

  renderRange(from, to) {
    const fragment = document.createDocumentFragment();
    for (let i = from; i < to; i += 1) fragment.append(this.renderRow(i));
    return fragment;
  }

  renderRow(index) {
    const message = this.list[index];
    const prev = this.list[index - 1];
    const date = new Date(message.created_at);
    const row = h('div', { class: 'row', role: 'article', tabindex: '0', dataset: { seq: message.seq } });
    if (!prev || new Date(prev.created_at).toDateString() !== date.toDateString()) {
      row.append(h('div', { class: 'day-sep', role: 'separator' }, h('span', {}, formatDay(date))));
    }
    if (message.seq === this.dividerSeq) {
      row.append(h('div', { class: 'unread-sep', role: 'separator', id: 'unread-divider' }, h('span', {}, t('messages.unread_divider'))));
    }
    if (isJoinLeave(message)) {
      // Consecutive joins and leaves read as one line, on the run's last notice;
      // the others keep their (empty) rows so rows and the list stay in step.
      if (index + 1 < this.list.length && this.continuesRun(index + 1)) {
        row.classList.add('run-member');
        return row;
      }
      const run = this.runBefore(index);
      row.append(run.length > 1 ? this.runSummary(run) : h('div', { class: 'system' }, h('span', {}, systemText(message))));
      return row;
    }
    if (message.message_type === 'system') {
      row.append(h('div', { class: 'system' }, h('span', {}, systemText(message))));
      return row;
    }
    const first =
      !prev ||
      prev.message_type === 'system' ||
      prev.sender_id !== message.sender_id ||
      date - new Date(prev.created_at) > RUN_GAP_MS ||
      row.firstChild !== null;
    row.append(this.bubble(message, date, first));
    return row;
  }

  /** "Bob, Carol and 3 others joined" with a button that lists every notice. */
  runSummary(run) {
    const key = run[0].seq;
    const expanded = this.expandedRuns.has(key);
    const listId = `run-${key}`;
    const details = h(
      'ul',
      { class: 'run-details', id: listId, hidden: !expanded },
      run.map((m) => h('li', {}, h('time', { datetime: m.created_at }, formatTime(new Date(m.created_at))), ' ', systemText(m))),
    );
    const toggle = h(
      'button',
      {
        type: 'button',
        class: 'link-btn run-toggle',
        'aria-expanded': String(expanded),
        'aria-controls': listId,
        onclick: () => {
          const open = !this.expandedRuns.has(key);
          if (open) this.expandedRuns.add(key);
          else this.expandedRuns.delete(key);
          details.hidden = !open;
          toggle.setAttribute('aria-expanded', String(open));
          toggle.textContent = open ? t('people.run_hide') : t('people.run_show', { n: run.length });
        },
      },
      expanded ? t('people.run_hide') : t('people.run_show', { n: run.length }),
    );
    return h('div', { class: 'system run', dataset: { count: run.length } }, h('span', {}, joinLeaveSummary(run), ' ', toggle), details);
  }

  bubble(message, date, first) {
    const own = message.is_own;
    const name = own ? t('messages.you') : senderName(message);
    const profile = () => this.onProfile(message.sender_id);
    const meta = first
      ? h(
          'div',
          { class: 'msg-meta' },
          own ? null : h('button', { type: 'button', class: 'name', tabindex: '-1', onclick: profile }, name),
          h('time', { datetime: message.created_at }, formatTime(date)),
        )
      : null;
    const foot =
      own && this.isDirect
        ? h(
            'div',
            { class: 'msg-foot' },
            h(
              'span',
              { class: message.seq <= this.peerReadSeq ? 'receipt read' : 'receipt', dataset: { seq: message.seq } },
              message.seq <= this.peerReadSeq ? t('messages.read') : t('messages.unread'),
            ),
          )
        : null;
    const avatarSlot = own
      ? null
      : h(
          'div',
          { class: 'avatar-slot' },
          first && message.sender_avatar
            ? h('button', { type: 'button', tabindex: '-1', onclick: profile, 'aria-label': name }, avatar(message.sender_avatar))
            : null,
        );
    return h(
      'div',
      { class: `msg${own ? ' own' : ''}${first ? ' first' : ''}` },
      avatarSlot,
      h(
        'div',
        { class: 'msg-body' },
        meta,
        this.content(message, date),
        foot,
      ),
    );
  }

  /**
   * The bubble: what the message carries with its caption below, 1–3 emoji
   * alone shown large, a long text folded behind "Show more".
   */
  content(message, date) {
    const title = formatDateTime(date);
    if (attachmentsOf(message).length) return this.withAttachments(message, title);
    if (emojiOnly(message.content)) return h('div', { class: 'bubble jumbo', title }, message.content);
    if (!isLong(message.content)) return h('div', { class: 'bubble', title }, linkify(message.content));
    const open = this.unfolded.has(message.seq);
    const id = `msg-text-${message.seq}`;
    const text = h('div', { class: open ? 'fold-text' : 'fold-text folded', id }, linkify(message.content));
    const more = h(
      'button',
      {
        type: 'button',
        class: 'link-btn fold-toggle',
        'aria-expanded': String(open),
        'aria-controls': id,
        onclick: () => {
          const unfold = !this.unfolded.has(message.seq);
          if (unfold) this.unfolded.add(message.seq);
          else this.unfolded.delete(message.seq);
          text.classList.toggle('folded', !unfold);
          more.setAttribute('aria-expanded', String(unfold));
          more.textContent = unfold ? t('people.show_less') : t('people.show_more');
        },
      },
      open ? t('people.show_less') : t('people.show_more'),
    );
    return h('div', { class: 'bubble long', title }, text, more);
  }

  /** A message with attachments: the media (pictures and videos alone go without a bubble), then the caption. */
  withAttachments(message, title) {
    const caption = (message.content ?? '').trim() ? h('div', { class: 'caption' }, linkify(message.content)) : null;
    const media = attachmentsView(message, { onOpenImage: (images, index, opener) => this.onOpenImage?.(images, index, opener, message) });
    return h('div', { class: mediaOnly(message) ? 'bubble has-attachments media-only' : 'bubble has-attachments', title }, media, caption);
  }

  /** The other member of a direct room read up to `seq`. */
  markPeerRead(seq) {
    if (seq <= this.peerReadSeq) return;
    this.peerReadSeq = seq;
    for (const receipt of this.rowsEl.querySelectorAll('.receipt:not(.read)')) {
      if (Number(receipt.dataset.seq) <= seq) {
        receipt.classList.add('read');
        receipt.textContent = t('messages.read');
      }
    }
    this.showLatestReceipt();
  }

  // ------------------------------------------------------------ pending sends

  /**
   * A message in the outbox, below the timeline: `state` is waiting, sending
   * or failed (`reason` says why); `scroll` brings it into view (a new send,
   * not a room switch).
   */
  addPending(clientId, content, state, reason = '', scroll = true, attachments = []) {
    const message = { content, attachments, is_own: true };
    const bubble = attachments.length ? this.withAttachments(message, null) : h('div', { class: 'bubble' }, linkify(content));
    const el = h(
      'div',
      { class: 'row', dataset: { clientId }, role: 'article', tabindex: '0' },
      h('div', { class: 'msg own first pending' }, h('div', { class: 'msg-body' }, bubble, h('div', { class: 'msg-foot' }))),
    );
    this.pending.set(clientId, { content, el });
    this.pendingEl.append(el);
    this.setPendingState(clientId, state, reason);
    if (scroll) this.jumpToLatest();
  }

  hasPending(clientId) {
    return this.pending.has(clientId);
  }

  /** Shows an outbox message's state: waiting for a connection, sending, or failed with Retry and Delete. */
  setPendingState(clientId, state, reason = '') {
    const entry = this.pending.get(clientId);
    if (!entry) return;
    const msg = entry.el.querySelector('.msg');
    msg.classList.toggle('pending', state !== 'failed');
    msg.classList.toggle('failed', state === 'failed');
    msg.dataset.state = state;
    const foot = clear(entry.el.querySelector('.msg-foot'));
    if (state === 'failed') {
      foot.append(
        h('span', { class: 'pending-state' }, icon('circle-alert'), `${t('messages.failed')}${reason ? ` · ${reason}` : ''}`),
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.onRetry(clientId) }, t('messages.retry')),
        h('button', { type: 'button', class: 'link-btn', onclick: () => this.onDiscard(clientId) }, t('phone.outbox_delete')),
      );
    } else if (state === 'waiting') {
      foot.append(h('span', { class: 'pending-state' }, icon('clock'), t('phone.outbox_waiting')));
    } else {
      foot.append(h('span', { class: 'pending-state' }, t('messages.sending')));
    }
  }

  removePending(clientId) {
    this.pending.get(clientId)?.el.remove();
    this.pending.delete(clientId);
  }

  pendingIds() {
    return [...this.pending.keys()];
  }

  // ------------------------------------------------------------ scrolling

  isAtBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 48;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  onScroll() {
    if (!this.room) return;
    const s = this.scroller;
    this.wasAtBottom = this.isAtBottom();
    if (s.scrollTop < EDGE_PX) this.showOlder();
    if (s.scrollHeight - s.scrollTop - s.clientHeight < EDGE_PX) this.showNewer();
    if (this.isAtBottom() && this.end === this.list.length) {
      this.newCount = 0;
      this.onReadable(this.lastSeq);
    }
    this.updateJump();
  }

  /** Whether the user is looking at the newest message. */
  get seesLatest() {
    return this.end === this.list.length && this.isAtBottom();
  }

  async showOlder() {
    if (this.start > 0) {
      const from = Math.max(0, this.start - CHUNK);
      this.keepPosition(() => {
        this.rowsEl.prepend(this.renderRange(from, this.start));
        this.start = from;
      });
      if (this.end - this.start > MAX_ROWS) this.trimBottom(this.end - this.start - MAX_ROWS);
      this.setStatus();
      return;
    }
    if (!this.hasMore || this.loadingOlder || !this.list.length) return;
    this.loadingOlder = true;
    this.setStatus();
    const room = this.room;
    try {
      const page = await this.onLoadOlder(this.firstSeq);
      if (room !== this.room) return;
      this.hasMore = page.has_more;
      const before = this.list.length;
      for (const m of page.messages) this.insertSorted(m);
      const added = this.list.length - before;
      this.start += added;
      this.end += added;
      if (added) {
        this.keepPosition(() => {
          this.rerender(added);
          // Older joins and leaves may extend the run that was first on screen.
          if (isJoinLeave(this.list[added])) this.rerender(this.runEnd(added));
          const from = Math.max(0, this.start - CHUNK);
          this.rowsEl.prepend(this.renderRange(from, this.start));
          this.start = from;
        });
        if (this.end - this.start > MAX_ROWS) this.trimBottom(this.end - this.start - MAX_ROWS);
      }
    } catch {
      this.statusEl.textContent = t('messages.load_failed');
      this.loadingOlder = false;
      return;
    }
    this.loadingOlder = false;
    this.setStatus();
  }

  showNewer() {
    if (this.end >= this.list.length) return;
    const to = Math.min(this.list.length, this.end + CHUNK);
    // The last row shown may have summed up a join/leave run that goes on below.
    if (this.continuesRun(this.end)) this.rerender(this.end - 1);
    this.rowsEl.append(this.renderRange(this.end, to));
    this.end = to;
    this.showLatestReceipt();
    if (this.end - this.start > MAX_ROWS) this.trimTop(this.end - this.start - MAX_ROWS);
  }

  /** Runs a change above the viewport without moving what the user sees. */
  keepPosition(change) {
    const s = this.scroller;
    const fromBottom = s.scrollHeight - s.scrollTop;
    change();
    s.scrollTop = s.scrollHeight - fromBottom;
  }

  trimTop(count) {
    const s = this.scroller;
    const before = s.scrollHeight;
    for (let i = 0; i < count; i += 1) this.rowsEl.firstElementChild?.remove();
    this.start += count;
    // The first row left may have lost its day separator's context: redraw it.
    this.rerender(this.start);
    s.scrollTop -= before - s.scrollHeight;
  }

  trimBottom(count) {
    for (let i = 0; i < count; i += 1) this.rowsEl.lastElementChild?.remove();
    this.end -= count;
  }

  jumpToLatest() {
    if (this.end !== this.list.length) {
      this.end = this.list.length;
      this.start = Math.max(0, this.end - CHUNK * 2);
      clear(this.rowsEl).append(this.renderRange(this.start, this.end));
      this.showLatestReceipt();
    }
    this.newCount = 0;
    this.scrollToBottom();
    this.updateJump();
    if (this.room) this.onReadable(this.lastSeq);
  }

  updateJump() {
    const away = this.end < this.list.length || this.scroller.scrollHeight - this.scroller.scrollTop - this.scroller.clientHeight > this.scroller.clientHeight;
    this.jump.hidden = !away && this.newCount === 0;
    this.jumpCount.hidden = this.newCount === 0;
    this.jumpCount.textContent = String(this.newCount);
    if (!this.jump.hidden && this.isAtBottom() && this.end === this.list.length) this.jump.hidden = true;
    this.updateJumpUnread();
  }

  setStatus() {
    if (this.loadingOlder) this.statusEl.textContent = t('messages.loading_older');
    else if (!this.hasMore && this.start === 0) this.statusEl.textContent = t('messages.beginning');
    else this.statusEl.textContent = '';
  }

  close() {
    this.room = null;
    this.list = [];
    this.seqs = new Set();
    this.start = this.end = 0;
    clear(this.rowsEl);
    for (const entry of this.pending.values()) entry.el.remove();
    this.pending.clear();
    this.statusEl.textContent = '';
    this.jump.hidden = true;
    if (this.jumpUnread) this.jumpUnread.hidden = true;
  }

  /** The room's first page could not be loaded: no placeholders left, a note instead. */
  showLoadFailed() {
    clear(this.rowsEl);
    this.statusEl.textContent = t('messages.load_failed');
  }

  /** Placeholder rows while a room's first page loads (replaced by reset()). */
  showSkeleton() {
    clear(this.rowsEl).append(...this.skeleton.map((el) => el.cloneNode(true)));
  }
}
