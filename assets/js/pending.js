// Messages sent but not yet acknowledged by the server (it acknowledges by
// delivering the message back with our client_id). They are kept until then:
// shown as pending, resent under the same client_id after a reconnect (the
// server stores each client_id once), and marked failed after a timeout or an
// error, for the user to retry.
import { newClientId } from './connection.js';

const ACK_TIMEOUT_MS = 15000;

export class PendingSends {
  /** `send(frame)` sends on the socket; `onTimeout(clientId, entry)` when one fails unanswered. */
  constructor({ send, isOpen, onTimeout }) {
    this.entries = new Map();
    this.send = send;
    setInterval(() => {
      if (!isOpen()) return;
      for (const [clientId, entry] of this.entries) {
        if (!entry.failed && Date.now() - entry.sentAt > ACK_TIMEOUT_MS) {
          entry.failed = true;
          onTimeout(clientId, entry);
        }
      }
    }, 5000);
  }

  /** Sends `content` to `room`; returns its client_id. */
  add(room, content) {
    const clientId = newClientId();
    this.entries.set(clientId, { room, content, failed: false, sentAt: Date.now() });
    this.transmit(clientId, room, content);
    return clientId;
  }

  /** Sends a failed message again; returns it, or nothing if it is not pending. */
  retry(clientId) {
    const entry = this.entries.get(clientId);
    if (!entry) return undefined;
    entry.failed = false;
    entry.sentAt = Date.now();
    this.transmit(clientId, entry.room, entry.content);
    return entry;
  }

  /** After a reconnect: everything not yet acknowledged goes again, under the same client_id. */
  resendAll() {
    for (const [clientId, entry] of this.entries) {
      if (entry.failed) continue;
      entry.sentAt = Date.now();
      this.transmit(clientId, entry.room, entry.content);
    }
  }

  /** The server delivered our message: it is no longer pending. */
  acknowledged(clientId) {
    this.entries.delete(clientId);
  }

  /** The server refused it: returns the entry (now failed), if it was ours. */
  fail(clientId) {
    const entry = this.entries.get(clientId);
    if (entry) entry.failed = true;
    return entry;
  }

  /** [clientId, entry] of the messages pending in `room`. */
  *inRoom(room) {
    for (const [clientId, entry] of this.entries) {
      if (entry.room === room) yield [clientId, entry];
    }
  }

  transmit(clientId, room, content) {
    this.send({ type: 'message', room_id: room, content, client_id: clientId });
  }
}
