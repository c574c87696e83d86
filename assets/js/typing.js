// "Alice is typing…": who is typing in the open room, each expiring by
// itself shortly after the server's own 6 s expiry in case a stop is lost.
import { t, tn } from './i18n.js';

const EXPIRE_MS = 7000;

export class TypingIndicator {
  constructor(el) {
    this.el = el;
    this.typers = new Map();
  }

  set(userId, name, isTyping) {
    clearTimeout(this.typers.get(userId)?.timer);
    if (isTyping) {
      const timer = setTimeout(() => this.set(userId, name, false), EXPIRE_MS);
      this.typers.set(userId, { name, timer });
    } else {
      this.typers.delete(userId);
    }
    this.render();
  }

  clear() {
    for (const { timer } of this.typers.values()) clearTimeout(timer);
    this.typers.clear();
    this.render();
  }

  render() {
    const names = [...this.typers.values()].map((typer) => typer.name);
    let text = '';
    if (names.length === 1) text = t('typing.one', { name: names[0] });
    else if (names.length === 2) text = t('typing.two', { a: names[0], b: names[1] });
    else if (names.length > 2) text = tn('typing.many', names.length - 2, { a: names[0], b: names[1], total: names.length });
    this.el.textContent = text;
  }
}
