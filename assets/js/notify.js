// Telling the user about messages while Parley is in the background: the
// unread count in the tab title, a desktop notification (permission is asked
// only when the user turns them on), and an optional sound.

const NOTIFY_KEY = 'parley.notify';
const SOUND_KEY = 'parley.sound';

export const settings = {
  get notify() {
    return localStorage.getItem(NOTIFY_KEY) === 'on';
  },
  set notify(on) {
    localStorage.setItem(NOTIFY_KEY, on ? 'on' : 'off');
  },
  get sound() {
    return localStorage.getItem(SOUND_KEY) === 'on';
  },
  set sound(on) {
    localStorage.setItem(SOUND_KEY, on ? 'on' : 'off');
  },
};

export function notificationsSupported() {
  return 'Notification' in window;
}

/** Turns desktop notifications on; call from a click. Resolves to the permission. */
export async function enableNotifications() {
  if (!notificationsSupported()) return 'denied';
  let permission = Notification.permission;
  if (permission === 'default') permission = await Notification.requestPermission();
  settings.notify = permission === 'granted';
  return permission;
}

export class Notifier {
  constructor(baseTitle) {
    this.baseTitle = baseTitle;
    this.audio = null;
  }

  get hidden() {
    return document.visibilityState === 'hidden';
  }

  /** "(3) Parley" while hidden with unread messages. */
  setUnread(count) {
    document.title = this.hidden && count > 0 ? `(${count}) ${this.baseTitle}` : this.baseTitle;
  }

  message({ title, body, icon, tag, onClick }) {
    if (!this.hidden) return;
    if (settings.notify && notificationsSupported() && Notification.permission === 'granted') {
      try {
        const n = new Notification(title, { body: body.slice(0, 200), icon, tag });
        n.onclick = () => {
          window.focus();
          onClick?.();
          n.close();
        };
      } catch {
        /* some browsers only allow notifications from a service worker */
      }
    }
    if (settings.sound) this.beep();
  }

  beep() {
    try {
      this.audio ??= new AudioContext();
      const ctx = this.audio;
      const gain = ctx.createGain();
      gain.gain.setValueAtTime(0.0001, ctx.currentTime);
      gain.gain.exponentialRampToValueAtTime(0.15, ctx.currentTime + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, ctx.currentTime + 0.35);
      gain.connect(ctx.destination);
      for (const [freq, at] of [[880, 0], [1320, 0.12]]) {
        const osc = ctx.createOscillator();
        osc.frequency.value = freq;
        osc.connect(gain);
        osc.start(ctx.currentTime + at);
        osc.stop(ctx.currentTime + at + 0.2);
      }
    } catch {
      /* no audio: the title and notification still tell */
    }
  }
}
