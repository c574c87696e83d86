// Recording a voice message (loaded when the microphone button is first
// pressed): the panel replaces the composer while recording (a timer, the
// live input level, cancel, stop), then offers the recording to play back,
// delete or send. The sound is Opus (WebM where the browser records it, else
// Ogg, else what it has); its waveform (64 peaks 0–255) and duration are
// measured here from the recorded audio and go up with it (kind=voice).
import { h, clear, toast } from './dom.js';
import { t } from './i18n.js';
import { icon } from './icons.js';
import { formatDuration } from './format.js';
import { voicePlayer, release } from './voice.js';
import { uploadFile, uploadErrorText, retryable } from './uploads.js';

const TYPES = ['audio/webm;codecs=opus', 'audio/ogg;codecs=opus'];
const WAVEFORM_VALUES = 64;
const MIN_MS = 500;

/** The best type this browser records in, or '' (its default). */
export function recordingType() {
  if (typeof MediaRecorder === 'undefined' || typeof MediaRecorder.isTypeSupported !== 'function') return '';
  return TYPES.find((type) => MediaRecorder.isTypeSupported(type)) ?? '';
}

/**
 * `count` values 0–255 from decoded samples: the peak of each stretch,
 * scaled so the loudest is 255 (a silent recording is all zeros).
 */
export function waveformOf(samples, count = WAVEFORM_VALUES) {
  const peaks = new Array(count).fill(0);
  if (!samples?.length) return peaks;
  for (let i = 0; i < count; i += 1) {
    const from = Math.floor((i * samples.length) / count);
    const to = Math.max(from + 1, Math.floor(((i + 1) * samples.length) / count));
    let peak = 0;
    for (let k = from; k < to; k += 1) {
      const v = Math.abs(samples[k]);
      if (v > peak) peak = v;
    }
    peaks[i] = peak;
  }
  const max = Math.max(...peaks);
  return max > 0 ? peaks.map((p) => Math.round((p / max) * 255)) : peaks;
}

/** Duration and waveform of a recording, from its decoded audio (null if it does not decode). */
async function measure(blob) {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return null;
  const context = new Context();
  try {
    const buffer = await context.decodeAudioData(await blob.arrayBuffer());
    return { durationMs: Math.round(buffer.duration * 1000), waveform: waveformOf(buffer.getChannelData(0)) };
  } catch {
    return null;
  } finally {
    context.close().catch(() => {});
  }
}

let previewCount = 0;

export class VoiceRecorder {
  /**
   * `panel`: where the recorder is drawn; `form`: the composer it stands in
   * for; `onSend(roomId, attachment)` posts the uploaded voice message;
   * `limits`: the upload limits (for error texts); `maxSeconds`: the longest
   * recording the server keeps.
   */
  constructor({ panel, form, onSend, limits, maxSeconds = 300 }) {
    Object.assign(this, { panel, form, onSend, limits, maxSeconds });
    this.state = 'idle';
    panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.state === 'recording') {
        event.preventDefault();
        this.cancel();
      }
    });
  }

  get active() {
    return this.state !== 'idle';
  }

  /** Asks for the microphone and starts recording for `room`. */
  async start(room) {
    if (this.active) return;
    if (!navigator.mediaDevices?.getUserMedia || typeof MediaRecorder === 'undefined') {
      toast(t('voice.unsupported'));
      return;
    }
    this.state = 'starting';
    this.room = room;
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch {
      this.state = 'idle';
      toast(t('voice.no_mic'));
      return;
    }
    if (this.state !== 'starting') {
      for (const track of stream.getTracks()) track.stop();
      return;
    }
    this.stream = stream;
    const type = recordingType();
    try {
      this.media = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    } catch {
      this.media = new MediaRecorder(stream);
    }
    this.chunks = [];
    this.levels = [];
    this.media.addEventListener('dataavailable', (event) => {
      if (event.data?.size) this.chunks.push(event.data);
    });
    this.media.addEventListener('stop', () => this.recorded());
    this.listen(stream);
    this.media.start(250);
    this.startedAt = performance.now();
    this.state = 'recording';
    this.drawRecording();
    this.tick();
  }

  /** The live level: an analyser on the microphone, read every frame. */
  listen(stream) {
    try {
      const Context = window.AudioContext || window.webkitAudioContext;
      this.context = new Context();
      const source = this.context.createMediaStreamSource(stream);
      this.analyser = this.context.createAnalyser();
      this.analyser.fftSize = 1024;
      source.connect(this.analyser);
      this.samples = new Uint8Array(this.analyser.fftSize);
    } catch {
      this.analyser = null;
    }
  }

  level() {
    if (!this.analyser) return 0;
    this.analyser.getByteTimeDomainData(this.samples);
    let sum = 0;
    for (const v of this.samples) sum += ((v - 128) / 128) ** 2;
    return Math.min(1, Math.sqrt(sum / this.samples.length) * 3);
  }

  tick() {
    if (this.state !== 'recording') return;
    const elapsed = performance.now() - this.startedAt;
    // Whole seconds gone, as a stopwatch counts.
    const text = formatDuration(Math.floor(elapsed / 1000) * 1000);
    if (this.timer.textContent !== text) this.timer.textContent = text;
    const level = this.level();
    this.levels.push(level);
    this.meter.style.transform = `scaleX(${Math.max(0.04, level).toFixed(3)})`;
    if (elapsed >= this.maxSeconds * 1000) {
      this.stop();
      return;
    }
    this.frame = requestAnimationFrame(() => this.tick());
  }

  stop() {
    if (this.state !== 'recording') return;
    this.state = 'stopping';
    this.elapsedMs = performance.now() - this.startedAt;
    cancelAnimationFrame(this.frame);
    this.media.stop();
  }

  /** Drops whatever is recorded or being sent, and gives the composer back. */
  cancel() {
    const was = this.state;
    this.state = 'idle';
    cancelAnimationFrame(this.frame);
    this.job?.abort();
    this.job = null;
    if (was === 'recording' || was === 'stopping') {
      try {
        this.media.stop();
      } catch {
        /* already stopped */
      }
    }
    this.releaseMic();
    this.discardPreview();
    this.close();
  }

  releaseMic() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.stream = null;
    this.context?.close().catch(() => {});
    this.context = null;
    this.analyser = null;
  }

  discardPreview() {
    if (this.previewKey) release(this.previewKey);
    if (this.blobUrl) URL.revokeObjectURL(this.blobUrl);
    this.previewKey = null;
    this.blobUrl = null;
    this.blob = null;
  }

  async recorded() {
    this.releaseMic();
    if (this.state !== 'stopping') return;
    const blob = new Blob(this.chunks, { type: this.media.mimeType || 'audio/webm' });
    const measured = await measure(blob);
    if (this.state !== 'stopping') return;
    const durationMs = measured?.durationMs || Math.round(this.elapsedMs);
    if (durationMs < MIN_MS || !blob.size) {
      toast(t('voice.too_short'));
      this.cancel();
      return;
    }
    // Decoding failed: the levels seen while recording stand in for the peaks.
    const waveform = measured?.waveform ?? waveformOf(Float32Array.from(this.levels));
    this.blob = blob;
    this.recording = { durationMs, waveform };
    this.blobUrl = URL.createObjectURL(blob);
    previewCount += 1;
    this.previewKey = `preview-${previewCount}`;
    this.state = 'preview';
    this.drawPreview();
  }

  /** Uploads the recording as a voice message and has it sent. */
  async send() {
    if (this.state !== 'preview' && this.state !== 'failed') return;
    this.state = 'sending';
    const { durationMs, waveform } = this.recording;
    const ext = /ogg/.test(this.blob.type) ? 'ogg' : /mp4/.test(this.blob.type) ? 'm4a' : 'webm';
    const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-');
    this.drawSending(0);
    this.job = uploadFile(this.room, this.blob, {
      name: `voice-${stamp}.${ext}`,
      fields: { kind: 'voice', duration_ms: durationMs, waveform: waveform.join(',') },
      onProgress: (p) => this.showProgress(p),
    });
    try {
      const attachment = await this.job.promise;
      this.job = null;
      if (this.state !== 'sending') return;
      this.onSend(this.room, attachment);
      this.state = 'idle';
      this.discardPreview();
      this.close();
    } catch (error) {
      this.job = null;
      if (error?.aborted || this.state !== 'sending') return;
      this.state = 'failed';
      this.drawPreview(error);
    }
  }

  open() {
    if (this.panel.hidden) this.formWasHidden = this.form.hidden;
    this.panel.hidden = false;
    this.form.hidden = true;
  }

  close() {
    const hadFocus = this.panel.contains(document.activeElement);
    const wasOpen = !this.panel.hidden;
    clear(this.panel);
    this.panel.hidden = true;
    if (wasOpen) this.form.hidden = Boolean(this.formWasHidden);
    this.panel.dispatchEvent(new CustomEvent('recorder-closed', { bubbles: true, detail: { hadFocus } }));
  }

  button(cls, label, iconName, onclick, extra = {}) {
    return h('button', { type: 'button', class: `icon-btn ${cls}`, 'aria-label': label, title: label, onclick, ...extra }, icon(iconName));
  }

  drawRecording() {
    this.timer = h('span', { class: 'rec-timer', role: 'timer', 'aria-live': 'off' }, '0:00');
    this.meter = h('span', { class: 'rec-meter-fill' });
    const stop = this.button('rec-stop', t('voice.stop'), 'square', () => this.stop());
    clear(this.panel).append(
      h(
        'div',
        { class: 'rec-row', role: 'group', 'aria-label': t('voice.recording') },
        this.button('rec-cancel', t('voice.cancel'), 'trash-2', () => this.cancel()),
        h('span', { class: 'rec-dot', 'aria-hidden': 'true' }),
        h('span', { class: 'sr-only' }, t('voice.recording')),
        this.timer,
        h('span', { class: 'rec-meter', role: 'img', 'aria-label': t('voice.level') }, this.meter),
        stop,
      ),
    );
    this.open();
    stop.focus();
  }

  drawPreview(error = null) {
    const { durationMs, waveform } = this.recording;
    const send = this.button('rec-send', t('voice.send'), error && retryable(error.code) ? 'refresh-cw' : 'send', () => this.send(), {
      disabled: error && !retryable(error.code) ? true : null,
    });
    clear(this.panel).append(
      h(
        'div',
        { class: 'rec-row', role: 'group', 'aria-label': t('voice.preview_label') },
        this.button('rec-delete', t('voice.delete'), 'trash-2', () => this.cancel()),
        voicePlayer({ key: this.previewKey, src: this.blobUrl, durationMs, waveform }),
        send,
      ),
    );
    if (error) this.panel.append(h('p', { class: 'rec-error', role: 'alert' }, icon('circle-alert'), uploadErrorText(error, this.limits)));
    this.open();
    (error ? send : this.panel.querySelector('.voice-play'))?.focus();
  }

  drawSending(fraction) {
    const percent = Math.round(fraction * 100);
    this.progressText = h('span', { class: 'rec-sending-text' }, t('voice.sending', { percent }));
    this.progressBar = h('progress', { max: 100, value: percent, 'aria-label': t('voice.send') });
    clear(this.panel).append(
      h(
        'div',
        { class: 'rec-row', role: 'group', 'aria-label': t('voice.preview_label') },
        this.button('rec-delete', t('voice.delete'), 'trash-2', () => this.cancel()),
        h('div', { class: 'rec-sending' }, this.progressText, this.progressBar),
      ),
    );
    this.panel.querySelector('.rec-delete')?.focus();
  }

  showProgress(fraction) {
    if (this.state !== 'sending' || !this.progressBar) return;
    const percent = Math.round(fraction * 100);
    this.progressBar.value = percent;
    this.progressText.textContent = t('voice.sending', { percent });
  }
}
