// The participants drawer: below 1024 px the participants slide over the
// timeline (closed by the scrim, Escape or their close button); wider, the
// participants column can be hidden, which is remembered. (On a phone the
// room list is a screen of its own: see phone.js.)
import { $ } from './dom.js';

/** Wires the drawer buttons; returns `closeDrawers(returnFocus)` for the app. */
export function setupDrawers(els) {
  const narrow = window.matchMedia('(max-width: 1023px)');
  const participantsButton = $('#toggle-participants');

  function openDrawer() {
    els.app.classList.add('participants-open');
    els.scrim.hidden = false;
    participantsButton.setAttribute('aria-expanded', 'true');
    $('#participants-panel').querySelector('button, input, a')?.focus();
  }

  function closeDrawers(returnFocus = false) {
    const wasOpen = els.app.classList.contains('participants-open');
    els.app.classList.remove('participants-open');
    els.scrim.hidden = true;
    if (narrow.matches) participantsButton.setAttribute('aria-expanded', 'false');
    if (returnFocus && wasOpen) participantsButton.focus();
  }

  $('#close-participants').addEventListener('click', () => closeDrawers(true));
  els.scrim.addEventListener('click', () => closeDrawers(true));
  participantsButton.addEventListener('click', () => {
    if (narrow.matches) {
      if (els.app.classList.contains('participants-open')) closeDrawers(true);
      else openDrawer();
      return;
    }
    const hidden = els.app.classList.toggle('participants-hidden');
    participantsButton.setAttribute('aria-expanded', String(!hidden));
    localStorage.setItem('parley.participantsHidden', hidden ? '1' : '0');
  });
  if (localStorage.getItem('parley.participantsHidden') === '1' && !narrow.matches) {
    els.app.classList.add('participants-hidden');
    participantsButton.setAttribute('aria-expanded', 'false');
  }
  if (narrow.matches) participantsButton.setAttribute('aria-expanded', 'false');
  narrow.addEventListener('change', () => {
    closeDrawers();
    participantsButton.setAttribute('aria-expanded', String(!narrow.matches && !els.app.classList.contains('participants-hidden')));
  });
  document.addEventListener('keydown', (event) => {
    // Only when the drawer is the topmost layer (a dialog closes first).
    if (event.key === 'Escape' && !event.defaultPrevented && !document.querySelector('dialog[open]') && els.app.classList.contains('participants-open')) {
      closeDrawers(true);
    }
  });

  return { closeDrawers };
}
