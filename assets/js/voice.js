// Voice messages: a play/pause button, the recorded waveform as bars that
// fill as it plays (a click or the arrow keys on it seek), and the time.
// One plays at a time. The <audio> behind a message lives here, not in the
// row: the timeline redraws rows (a window of them) and a removed media
// element would stop, so a redrawn row binds to the same sound again.
import { h } from './dom.js';
import { t } from './i18n.js';
import { icon } from './icons.js';
import { formatDuration } from './format.js';

const BARS = 40;
const KEY_STEP_S = 2;

/** key → { audio, views: Set }; the one playing is `playing`. */
const sounds = new Map();
let playing = null;
let frame = 0;

/** `count` bars from any number of values 0–255 (the loudest of each group), as fractions 0–1. */
export function bars(values, count = BARS) {
  if (!Array.isArray(values) || !values.length) return Array.from({ length: count }, () => 0.25);
  const out = [];
  for (let i = 0; i < count; i += 1) {
    const from = Math.floor((i * values.length) / count);
    const to = Math.max(from + 1, Math.floor(((i + 1) * values.length) / count));
    let peak = 0;
    for (let k = from; k < to && k < values.length; k += 1) peak = Math.max(peak, Number(values[k]) || 0);
    out.push(Math.min(1, Math.max(0, peak / 255)));
  }
  return out;
}

function soundFor(key, src) {
  let sound = sounds.get(key);
  if (!sound) {
    sound = { key, src, audio: null, views: new Set(), durationS: 0, position: 0 };
    sounds.set(key, sound);
  }
  return sound;
}

/** The <audio>, made on first use (a room of voice messages loads none of them until played). */
function audioOf(sound) {
  if (sound.audio) return sound.audio;
  const audio = new Audio();
  audio.preload = 'auto';
  audio.src = sound.src;
  audio.addEventListener('play', () => show(sound));
  audio.addEventListener('pause', () => show(sound));
  audio.addEventListener('timeupdate', () => show(sound));
  audio.addEventListener('ended', () => {
    sound.position = 0;
    audio.currentTime = 0;
    if (playing === sound) playing = null;
    show(sound);
  });
  audio.addEventListener('error', () => {
    if (playing === sound) playing = null;
    for (const view of sound.views) view.el.classList.add('voice-failed');
    show(sound);
  });
  sound.audio = audio;
  return audio;
}

/** The sound's length in seconds: the recorder's figure, else what the file says. */
function duration(sound) {
  if (sound.durationS > 0) return sound.durationS;
  const d = sound.audio?.duration;
  return Number.isFinite(d) && d > 0 ? d : 0;
}

function position(sound) {
  return sound.audio ? sound.audio.currentTime : sound.position;
}

function tick() {
  frame = 0;
  if (!playing) return;
  show(playing);
  frame = requestAnimationFrame(tick);
}

export function toggle(sound) {
  const audio = audioOf(sound);
  if (!audio.paused) {
    audio.pause();
    return;
  }
  if (playing && playing !== sound) playing.audio?.pause();
  playing = sound;
  audio.play().catch(() => {
    if (playing === sound) playing = null;
    show(sound);
  });
  if (!frame) frame = requestAnimationFrame(tick);
}

function seek(sound, seconds) {
  const total = duration(sound);
  const to = Math.max(0, total ? Math.min(total, seconds) : seconds);
  sound.position = to;
  const audio = audioOf(sound);
  try {
    audio.currentTime = to;
  } catch {
    /* not seekable yet: it starts from there once it can */
  }
  show(sound);
}

/** Redraws every view of the sound (several rows may show one message: a redraw, a pending copy). */
function show(sound) {
  const total = duration(sound);
  const now = position(sound);
  const fraction = total ? Math.min(1, now / total) : 0;
  const isPlaying = Boolean(sound.audio && !sound.audio.paused);
  for (const view of [...sound.views]) {
    if (!view.el.isConnected && view.mounted) {
      sound.views.delete(view);
      continue;
    }
    render(view, { total, now, fraction, isPlaying });
  }
}

function render(view, { total, now, fraction, isPlaying }) {
  const filled = Math.round(fraction * view.bars.length);
  if (view.filled !== filled) {
    view.bars.forEach((bar, i) => bar.classList.toggle('played', i < filled));
    view.filled = filled;
  }
  if (view.isPlaying !== isPlaying) {
    view.isPlaying = isPlaying;
    view.el.dataset.state = isPlaying ? 'playing' : 'paused';
    const label = isPlaying ? t('voice.pause') : t('voice.play');
    view.button.setAttribute('aria-label', label);
    view.button.title = label;
    view.button.replaceChildren(icon(isPlaying ? 'pause' : 'play'));
  }
  const shown = now > 0 || isPlaying ? `${formatDuration(now * 1000)} / ${formatDuration(total * 1000)}` : formatDuration(total * 1000);
  if (view.time.textContent !== shown) view.time.textContent = shown;
  const valueNow = String(Math.round(now));
  if (view.wave.getAttribute('aria-valuenow') !== valueNow) {
    view.wave.setAttribute('aria-valuenow', valueNow);
    view.wave.setAttribute('aria-valuemax', String(Math.max(1, Math.round(total))));
    view.wave.setAttribute('aria-valuetext', t('voice.position', { now: formatDuration(now * 1000), total: formatDuration(total * 1000) }));
  }
  view.el.dataset.position = now.toFixed(2);
}

/**
 * A voice message's player. `key`: what identifies the sound (the
 * attachment's id); `src`: its URL (or a blob: URL for a preview).
 */
export function voicePlayer({ key, src, durationMs, waveform }) {
  const sound = soundFor(key, src);
  if (durationMs > 0) sound.durationS = durationMs / 1000;
  const barEls = bars(waveform).map((v) => {
    const bar = h('span', { class: 'voice-bar' });
    // Through the CSSOM: the page's CSP allows no style attributes.
    bar.style.height = `${Math.round(12 + v * 88)}%`;
    return bar;
  });
  const button = h('button', { type: 'button', class: 'voice-play', onclick: () => toggle(sound) }, icon('play'));
  const wave = h(
    'div',
    {
      class: 'voice-wave',
      role: 'slider',
      tabindex: '0',
      'aria-label': t('voice.seek'),
      'aria-valuemin': '0',
      'aria-valuemax': '1',
      'aria-valuenow': '-1',
    },
    barEls,
  );
  const time = h('span', { class: 'voice-time' });
  const el = h('div', { class: 'voice', dataset: { state: 'paused', key } }, button, h('div', { class: 'voice-track' }, wave, time));
  const view = { el, button, wave, time, bars: barEls, filled: -1, isPlaying: null, mounted: false };
  wave.addEventListener('click', (event) => {
    const box = wave.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    seek(sound, fraction * duration(sound));
    if (sound.audio?.paused) toggle(sound);
  });
  wave.addEventListener('keydown', (event) => {
    const step = { ArrowLeft: -KEY_STEP_S, ArrowDown: -KEY_STEP_S, ArrowRight: KEY_STEP_S, ArrowUp: KEY_STEP_S }[event.key];
    if (step !== undefined) seek(sound, position(sound) + step);
    else if (event.key === 'Home') seek(sound, 0);
    else if (event.key === 'End') seek(sound, duration(sound));
    else if (event.key === ' ' || event.key === 'Enter') toggle(sound);
    else return;
    event.preventDefault();
    event.stopPropagation();
  });
  for (const old of sound.views) if (old.mounted && !old.el.isConnected) sound.views.delete(old);
  sound.views.add(view);
  render(view, { total: duration(sound), now: position(sound), fraction: duration(sound) ? position(sound) / duration(sound) : 0, isPlaying: Boolean(sound.audio && !sound.audio.paused) });
  // Views not yet in the page are kept until they have been (see show()).
  requestAnimationFrame(() => {
    view.mounted = true;
  });
  return el;
}

/** Stops and forgets a sound (a discarded recording's preview). */
export function release(key) {
  const sound = sounds.get(key);
  if (!sound) return;
  sound.audio?.pause();
  if (playing === sound) playing = null;
  sounds.delete(key);
}
