// The phone layout (at most 640 px wide), as in Telegram or WhatsApp: one
// screen at a time. With no room open the room list fills the screen (the
// CSS shows it when the app has the `no-room` class); an open room fills it
// with a back button whose badge counts unread messages in the other rooms.
// History follows: opening a room from the list is a new entry, so the
// browser's back button returns to the list, and so does ours.
import { t } from './i18n.js';

export const PHONE_QUERY = '(max-width: 640px)';

export class PhoneLayout {
  /** `back`: the header's back button (holding `badge`); `onBack()` shows the list without history. */
  constructor({ back, badge, onBack }) {
    Object.assign(this, { back, badge, onBack });
    this.query = window.matchMedia(PHONE_QUERY);
    back.addEventListener('click', () => this.goBack());
  }

  get isPhone() {
    return this.query.matches;
  }

  /**
   * The history state for a room opened now: how many room entries lie above
   * the list entry (null when the list is not below, e.g. after a deep link).
   */
  stateFor(roomId) {
    const state = history.state;
    const depth = state?.list ? 1 : state?.depth ? state.depth + 1 : null;
    return { room: roomId, depth };
  }

  /** The list entry: marked so rooms opened from it know the way back. */
  listState() {
    return { list: true };
  }

  goBack() {
    const depth = history.state?.depth;
    if (depth) history.go(-depth);
    else this.onBack();
  }

  /** Unread messages in the other rooms, on the back button. */
  setUnread(count) {
    const shown = count > 99 ? '99+' : String(count);
    if (this.badge.textContent !== shown) this.badge.textContent = shown;
    this.badge.hidden = count === 0;
    const label = count ? t('phone.back_unread', { n: count }) : t('phone.back');
    if (this.back.getAttribute('aria-label') !== label) {
      this.back.setAttribute('aria-label', label);
      this.back.title = label;
    }
  }
}
