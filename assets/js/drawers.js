// The layout's drawers: on narrow screens the room list and the participants
// slide over the timeline (one at a time, closed by the scrim, Escape or their
// close buttons); on wide ones the participants panel can be hidden, which is
// remembered.
import { $ } from './dom.js';

/** Wires the drawer buttons; returns `closeDrawers(returnFocus)` for the app. */
export function setupDrawers(els) {
  const narrow = window.matchMedia('(max-width: 1100px)');
  const mobile = window.matchMedia('(max-width: 768px)');
  const roomsButton = $('#open-rooms');
  const participantsButton = $('#toggle-participants');

  function openDrawer(which) {
    els.app.classList.add(`${which}-open`);
    els.scrim.hidden = false;
    const panel = which === 'rooms' ? $('#rooms-panel') : $('#participants-panel');
    (which === 'rooms' ? roomsButton : participantsButton).setAttribute('aria-expanded', 'true');
    panel.querySelector('button, input, a')?.focus();
  }

  function closeDrawers(returnFocus = false) {
    const wasRooms = els.app.classList.contains('rooms-open');
    const wasParticipants = els.app.classList.contains('participants-open');
    els.app.classList.remove('rooms-open', 'participants-open');
    els.scrim.hidden = true;
    roomsButton.setAttribute('aria-expanded', 'false');
    if (narrow.matches) participantsButton.setAttribute('aria-expanded', 'false');
    if (returnFocus && wasRooms) roomsButton.focus();
    if (returnFocus && wasParticipants) participantsButton.focus();
  }

  roomsButton.addEventListener('click', () => openDrawer('rooms'));
  $('#close-rooms').addEventListener('click', () => closeDrawers(true));
  $('#close-participants').addEventListener('click', () => closeDrawers(true));
  els.scrim.addEventListener('click', () => closeDrawers(true));
  participantsButton.addEventListener('click', () => {
    if (narrow.matches) {
      if (els.app.classList.contains('participants-open')) closeDrawers(true);
      else openDrawer('participants');
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
  narrow.addEventListener('change', () => closeDrawers());
  mobile.addEventListener('change', () => closeDrawers());
  document.addEventListener('keydown', (event) => {
    // Only when the drawer is the topmost layer (a dialog closes first).
    if (event.key === 'Escape' && !event.defaultPrevented && !document.querySelector('dialog[open]') && (els.app.classList.contains('rooms-open') || els.app.classList.contains('participants-open'))) {
      closeDrawers(true);
    }
  });

  return { closeDrawers };
}
