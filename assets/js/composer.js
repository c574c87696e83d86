// The message box: Enter sends, Shift+Enter is a new line (and Enter while
// an input method is composing is left to it), a counter near the limit,
// and typing notifications at most every few seconds. With files in the
// tray a message may be a caption only, or nothing but the files.
const TYPING_REFRESH_MS = 2500;
const COUNTER_FROM = 0.9;

export class Composer {
  /**
   * `onSend(text)` sends (it returns false when it could not yet: the text
   * stays); `hasAttachments()` says whether files wait in the tray.
   */
  constructor({ form, input, counter, send, max, onSend, onTyping, hasAttachments = () => false }) {
    Object.assign(this, { form, input, counter, sendButton: send, max, onSend, onTyping, hasAttachments });
    this.typingSentAt = 0;
    this.typing = false;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        this.submit();
      }
    });
    input.addEventListener('input', () => this.changed());
    input.addEventListener('blur', () => this.stopTyping());
  }

  length() {
    return [...this.input.value.trim()].length;
  }

  submit() {
    const text = this.input.value.trim();
    if ((!text && !this.hasAttachments()) || this.length() > this.max || this.input.disabled) return;
    if (this.onSend(text) === false) return;
    this.stopTyping();
    this.input.value = '';
    this.changed();
    this.input.focus();
  }

  changed() {
    this.autosize();
    const length = this.length();
    const over = length > this.max;
    this.counter.textContent = length >= this.max * COUNTER_FROM ? `${length}/${this.max}` : '';
    this.counter.classList.toggle('over', over);
    this.sendButton.disabled = over || this.input.disabled;
    if (length === 0) {
      this.stopTyping();
    } else if (!this.typing || Date.now() - this.typingSentAt > TYPING_REFRESH_MS) {
      this.typing = true;
      this.typingSentAt = Date.now();
      this.onTyping(true);
    }
  }

  stopTyping() {
    if (!this.typing) return;
    this.typing = false;
    this.onTyping(false);
  }

  autosize() {
    // A hidden box has no height to measure; it is sized again when typed in.
    if (this.input.offsetParent === null) return;
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 160)}px`;
  }

  /** Inserts text at the cursor (replacing a selection). */
  insert(text) {
    const { selectionStart, selectionEnd } = this.input;
    this.input.setRangeText(text, selectionStart ?? this.input.value.length, selectionEnd ?? this.input.value.length, 'end');
    this.input.focus();
    this.changed();
  }

  setEnabled(enabled) {
    this.input.disabled = !enabled;
    this.sendButton.disabled = !enabled;
    if (!enabled) this.stopTyping();
  }

  /** Forgets typing state (room switch) without telling anyone. */
  reset() {
    this.typing = false;
    this.input.value = '';
    this.changed();
  }
}
