// The outbox: messages written but not yet acknowledged by the server (it
// acknowledges by delivering the message back with our client_id). Each is
// `waiting` (no connection: it goes as soon as there is one), `sending` (on
// the socket, no answer yet) or `failed` (refused by the server, or no answer
// in time: the user retries or deletes it). Everything is sent under one
// client_id for its whole life, so the server stores it once however often
// it goes out. The outbox is kept in localStorage per user, so a reload (or a
// closed tab) keeps unsent messages, their states and their client_ids. A
// message with attachments enters the outbox once they are uploaded: it
// keeps their ids (and what is needed to draw them), not the files.
import { newClientId } from './connection.js';

const ACK_TIMEOUT_MS = 15000;
/** Stored entries at most; past it the oldest go first. */
export const OUTBOX_LIMIT = 200;

export class PendingSends {
  /**
   * `send(frame)` sends on the socket (false if it is not open); `onChange(clientId, entry)`
   * when an entry changes state (entry null: it is gone); `userId` names the stored outbox.
   */
  constructor({ send, isOpen, onChange, userId }) {
    this.send = send;
    this.isOpen = isOpen;
    this.onChange = onChange;
    this.key = userId ? `parley.outbox.${userId}` : null;
    this.entries = new Map();
    const stored = Object.entries(this.readStore()).sort(([, a], [, b]) => (a.createdAt ?? 0) - (b.createdAt ?? 0));
    for (const [clientId, entry] of stored) {
      // After a reload nothing is on a socket yet: what was sending waits.
      const state = entry.state === 'failed' ? 'failed' : 'waiting';
      const attachments = Array.isArray(entry.attachments) ? entry.attachments : [];
      this.entries.set(clientId, { ...entry, attachments, state, sentAt: 0 });
    }
    setInterval(() => {
      if (!this.isOpen()) return;
      for (const [clientId, entry] of this.entries) {
        if (entry.state === 'sending' && Date.now() - entry.sentAt > ACK_TIMEOUT_MS) {
          this.setState(clientId, entry, 'failed', { code: 'timeout' });
        }
      }
    }, 5000);
  }

  /** Queues `content` (with uploaded `attachments`) for `room` and sends it if connected; returns its client_id. */
  add(room, content, attachments = []) {
    const clientId = newClientId();
    const entry = { room, content, attachments, state: 'waiting', createdAt: Date.now(), sentAt: 0, error: null };
    this.entries.set(clientId, entry);
    this.transmit(clientId, entry);
    this.save(clientId);
    return clientId;
  }

  /** Sends a failed message again; returns it, or nothing if it is not in the outbox. */
  retry(clientId) {
    const entry = this.entries.get(clientId);
    if (!entry) return undefined;
    entry.error = null;
    entry.state = 'waiting';
    this.transmit(clientId, entry);
    this.save(clientId);
    this.onChange(clientId, entry);
    return entry;
  }

  /** The user gave up on a message: it is forgotten. */
  discard(clientId) {
    if (!this.entries.delete(clientId)) return;
    this.save(clientId);
    this.onChange(clientId, null);
  }

  /** After (re)connecting: everything not failed goes (again), under the same client_id. */
  resendAll() {
    for (const [clientId, entry] of this.entries) {
      if (entry.state === 'failed') continue;
      entry.state = 'waiting';
      this.transmit(clientId, entry);
      this.save(clientId);
      this.onChange(clientId, entry);
    }
  }

  /** The connection dropped: what was on its way now waits for the next one. */
  disconnected() {
    for (const [clientId, entry] of this.entries) {
      if (entry.state === 'sending') this.setState(clientId, entry, 'waiting');
    }
  }

  /** The server delivered our message: it leaves the outbox. */
  acknowledged(clientId) {
    if (!this.entries.delete(clientId)) return;
    this.save(clientId);
    this.onChange(clientId, null);
  }

  /** The server refused it (`error` is the frame's {code, message}): returns the entry, if it was ours. */
  fail(clientId, error) {
    const entry = this.entries.get(clientId);
    if (entry) this.setState(clientId, entry, 'failed', error);
    return entry;
  }

  get(clientId) {
    return this.entries.get(clientId);
  }

  /** [clientId, entry] of the messages in the outbox for `room`, oldest first. */
  *inRoom(room) {
    for (const [clientId, entry] of this.entries) {
      if (entry.room === room) yield [clientId, entry];
    }
  }

  /** Forgets the stored outbox (logging out on a shared computer). */
  clearStore() {
    if (!this.key) return;
    try {
      localStorage.removeItem(this.key);
    } catch {
      /* storage unavailable: nothing was kept */
    }
  }

  transmit(clientId, entry) {
    const frame = { type: 'message', room_id: entry.room, content: entry.content, client_id: clientId };
    if (entry.attachments?.length) frame.attachments = entry.attachments.map((a) => a.id);
    if (!this.send(frame)) return;
    entry.state = 'sending';
    entry.sentAt = Date.now();
  }

  setState(clientId, entry, state, error = null) {
    entry.state = state;
    entry.error = error ? { code: error.code ?? 'generic', message: error.message ?? '' } : null;
    this.save(clientId);
    this.onChange(clientId, entry);
  }

  readStore() {
    if (!this.key) return {};
    try {
      const stored = JSON.parse(localStorage.getItem(this.key) || '{}');
      return stored && typeof stored === 'object' && !Array.isArray(stored) ? stored : {};
    } catch {
      return {};
    }
  }

  /**
   * Writes one entry's change into the stored outbox (read, change, write: other
   * tabs of the same user keep theirs), oldest dropped past OUTBOX_LIMIT.
   */
  save(clientId) {
    if (!this.key) return;
    const stored = this.readStore();
    const entry = this.entries.get(clientId);
    if (entry) {
      const { room, content, attachments, state, createdAt, error } = entry;
      stored[clientId] = attachments?.length ? { room, content, attachments, state, createdAt, error } : { room, content, state, createdAt, error };
    } else {
      delete stored[clientId];
    }
    const ids = Object.keys(stored).sort((a, b) => (stored[a].createdAt ?? 0) - (stored[b].createdAt ?? 0));
    for (const old of ids.slice(0, Math.max(0, ids.length - OUTBOX_LIMIT))) {
      delete stored[old];
      if (old !== clientId && this.entries.delete(old)) this.onChange(old, null);
    }
    try {
      if (Object.keys(stored).length) localStorage.setItem(this.key, JSON.stringify(stored));
      else localStorage.removeItem(this.key);
    } catch {
      /* storage full or unavailable: the outbox still lives in this tab */
    }
  }
}
