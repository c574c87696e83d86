// Files on their way into a message: each is uploaded at once (plain HTTP,
// POST /tools/api/chat/<room>/uploads/, so a WebSocket reconnect does not
// touch it) and waits in the tray above the composer with its name, size,
// a thumbnail for images and a progress bar, until the message that carries
// it is sent. The tray belongs to a room: switching rooms keeps each room's
// files, like drafts.
import { h, clear } from './dom.js';
import { t, errorText } from './i18n.js';
import { ApiError, csrfToken } from './api.js';
import { icon } from './icons.js';
import { formatBytes } from './format.js';

const IMAGE_TYPES = /^image\/(png|jpeg|gif|webp)$/;

/**
 * Uploads one file with XMLHttpRequest (fetch cannot report upload progress).
 * `fields`: extra form fields (kind=voice, duration_ms, waveform). Returns
 * { promise (the attachment), abort() }; an abort rejects with `aborted` set.
 */
export function uploadFile(roomId, file, { fields = {}, name, onProgress = () => {} } = {}) {
  const xhr = new XMLHttpRequest();
  const promise = new Promise((resolve, reject) => {
    const body = new FormData();
    for (const [key, value] of Object.entries(fields)) body.append(key, String(value));
    body.append('file', file, name ?? file.name ?? 'file');
    xhr.open('POST', `/tools/api/chat/${encodeURIComponent(roomId)}/uploads/`);
    xhr.setRequestHeader('X-CSRFToken', csrfToken());
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.responseType = 'text';
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable && event.total > 0) onProgress(event.loaded / event.total);
    };
    xhr.onload = () => {
      let json = null;
      try {
        json = JSON.parse(xhr.responseText);
      } catch {
        json = null;
      }
      if (xhr.status >= 200 && xhr.status < 300 && json?.success !== false && json?.data?.id) {
        onProgress(1);
        resolve(json.data);
        return;
      }
      // A proxy in front may refuse a large body with its own page: 413 still means too large.
      const code = json?.error?.code ?? (xhr.status === 413 ? 'file_too_large' : xhr.status === 403 ? 'forbidden' : 'generic');
      if (xhr.status === 401 && code === 'not_authenticated') {
        location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
      }
      reject(new ApiError(xhr.status, code, json?.error?.message ?? '', xhr.getResponseHeader('Retry-After')));
    };
    xhr.onerror = () => reject(new ApiError(0, 'network_error', ''));
    xhr.onabort = () => reject(Object.assign(new Error('aborted'), { aborted: true }));
    xhr.send(body);
  });
  return { promise, abort: () => xhr.abort() };
}

/** Whether trying the same upload again may work (a dropped connection, a busy server), not a refusal of the file itself. */
export function retryable(code) {
  return !['file_too_large', 'empty_file', 'invalid_image', 'image_too_large', 'invalid_voice', 'voice_too_long', 'invalid_waveform'].includes(code);
}

/** An upload's failure in words: what happened, with the limit when there is one. */
export function uploadErrorText(error, limits = {}) {
  const code = error?.code ?? 'generic';
  const status = error?.status ?? 0;
  if (code === 'file_too_large') {
    return limits.maxBytes ? t('attach.error.file_too_large', { limit: formatBytes(limits.maxBytes) }) : t('attach.error.file_too_large_nolimit');
  }
  if (code === 'upload_quota_exceeded') {
    return limits.maxBytesPerDay ? t('attach.error.quota', { limit: formatBytes(limits.maxBytesPerDay) }) : t('attach.error.quota_nolimit');
  }
  const own = `attach.error.${code}`;
  const text = t(own);
  if (text !== own) return text;
  if (status === 403) return `${t('attach.error.forbidden')} ${errorText(code, '')}`.trim();
  return errorText(code, error?.message || undefined);
}

let itemCounter = 0;

export class UploadTray {
  /**
   * `el`: the tray's element; `room()`: the open room's id; `limits`:
   * { maxBytes, maxBytesPerDay, maxFiles }; `onChange()` after any item
   * changes state; `announce(text)`: for screen readers.
   */
  constructor({ el, room, limits, onChange, announce }) {
    Object.assign(this, { el, room, limits, onChange, announce });
    this.items = [];
    this.armed = null;
    this.list = h('ul', { class: 'upload-list', 'aria-label': t('attach.tray_label') });
    this.status = h('p', { class: 'upload-status', role: 'status' });
    el.append(this.list, this.status);
  }

  /** The open room's items. */
  current() {
    const room = this.room();
    return this.items.filter((item) => item.room === room);
  }

  /** 'none' (no files), 'busy' (uploading), 'error' (one failed) or 'ready' (all uploaded). */
  state(room = this.room()) {
    const items = this.items.filter((item) => item.room === room);
    if (!items.length) return 'none';
    if (items.some((item) => item.state === 'error')) return 'error';
    if (items.some((item) => item.state === 'uploading')) return 'busy';
    return 'ready';
  }

  /** Adds files for the open room and starts uploading them. */
  add(files) {
    const room = this.room();
    if (!room) return;
    const max = this.limits.maxFiles || 10;
    let inRoom = this.current().length;
    let refused = 0;
    for (const file of files) {
      if (inRoom >= max) {
        refused += 1;
        continue;
      }
      inRoom += 1;
      itemCounter += 1;
      const item = {
        key: `up-${itemCounter}`,
        room,
        file,
        name: file.name || t('attach.pasted_name'),
        size: file.size,
        state: 'uploading',
        progress: 0,
        attachment: null,
        error: null,
        // A thumbnail straight from the file, before the server has it.
        preview: IMAGE_TYPES.test(file.type) ? URL.createObjectURL(file) : null,
        el: null,
        job: null,
      };
      this.items.push(item);
      this.start(item);
    }
    if (refused) this.announce(t('attach.too_many', { n: max }));
    this.render();
  }

  start(item) {
    item.state = 'uploading';
    item.progress = 0;
    item.error = null;
    if (this.limits.maxBytes && item.size > this.limits.maxBytes) {
      // Known to be refused: said at once, without sending megabytes first.
      this.failed(item, new ApiError(413, 'file_too_large', ''));
      return;
    }
    if (item.size === 0) {
      this.failed(item, new ApiError(400, 'empty_file', ''));
      return;
    }
    item.job = uploadFile(item.room, item.file, { name: item.name, onProgress: (p) => this.progress(item, p) });
    item.job.promise.then(
      (attachment) => {
        item.job = null;
        if (!this.items.includes(item)) return;
        item.state = 'done';
        item.attachment = attachment;
        this.update(item);
        this.changed();
      },
      (error) => {
        item.job = null;
        if (error?.aborted || !this.items.includes(item)) return;
        this.failed(item, error);
      },
    );
  }

  failed(item, error) {
    item.state = 'error';
    item.error = { code: error.code ?? 'generic', status: error.status ?? 0, message: error.message ?? '' };
    this.disarm();
    this.update(item);
    this.announce(`${item.name}: ${uploadErrorText(item.error, this.limits)}`);
    this.changed();
  }

  progress(item, fraction) {
    item.progress = fraction;
    const bar = item.el?.querySelector('progress');
    if (bar) bar.value = Math.round(fraction * 100);
    const size = item.el?.querySelector('.upload-size');
    if (size && item.state === 'uploading') size.textContent = t('attach.uploading', { percent: Math.round(fraction * 100) });
  }

  retry(item) {
    this.start(item);
    this.update(item);
    this.changed();
  }

  remove(item) {
    item.job?.abort();
    if (item.preview) URL.revokeObjectURL(item.preview);
    const index = this.items.indexOf(item);
    if (index >= 0) this.items.splice(index, 1);
    // Focus stays in the tray: on the next item's remove button, else the composer.
    const next = item.el?.nextElementSibling ?? item.el?.previousElementSibling;
    const hadFocus = item.el?.contains(document.activeElement);
    item.el?.remove();
    if (hadFocus) (next?.querySelector('.upload-remove') ?? document.getElementById('composer-input'))?.focus();
    if (this.state() === 'none') this.disarm();
    this.render();
    this.changed();
  }

  /** The open room's uploaded attachments, taken out of the tray (the message carrying them is being sent). */
  take() {
    const room = this.room();
    const taken = this.items.filter((item) => item.room === room && item.state === 'done');
    this.items = this.items.filter((item) => !taken.includes(item));
    for (const item of taken) if (item.preview) URL.revokeObjectURL(item.preview);
    this.armed = null;
    this.render();
    return taken.map((item) => item.attachment);
  }

  /** Send was pressed while files were still uploading: the message goes when the last is up. */
  arm(room) {
    this.armed = room;
    this.showStatus();
  }

  disarm() {
    this.armed = null;
    this.showStatus();
  }

  changed() {
    this.showStatus();
    this.onChange?.();
  }

  showStatus() {
    const text = this.armed && this.armed === this.room() ? t('attach.send_when_ready') : '';
    if (this.status.textContent !== text) this.status.textContent = text;
    this.status.hidden = !text;
  }

  /** Shows the open room's items if another room's were shown (cheap: called on every composer update). */
  sync() {
    if (this.shownRoom !== this.room()) this.render();
  }

  /** Draws the open room's items (after a room switch, an add or a removal). */
  render() {
    this.shownRoom = this.room();
    const items = this.current();
    clear(this.list).append(...items.map((item) => this.itemEl(item)));
    this.el.hidden = items.length === 0;
    this.showStatus();
  }

  update(item) {
    if (!item.el?.isConnected) return;
    item.el.replaceWith(this.itemEl(item));
  }

  itemEl(item) {
    const thumb = item.preview
      ? h('img', { class: 'upload-thumb', src: item.preview, alt: '', width: 44, height: 44 })
      : h('span', { class: 'upload-thumb upload-icon', 'aria-hidden': 'true' }, icon(fileIconName(item.file.type, item.name)));
    const percent = Math.round(item.progress * 100);
    let detail;
    if (item.state === 'error') detail = h('span', { class: 'upload-error' }, icon('circle-alert'), uploadErrorText(item.error, this.limits));
    else if (item.state === 'uploading') detail = h('span', { class: 'upload-size' }, t('attach.uploading', { percent }));
    else detail = h('span', { class: 'upload-size' }, formatBytes(item.size));
    const buttons = [];
    if (item.state === 'error' && retryable(item.error.code)) {
      buttons.push(
        h(
          'button',
          { type: 'button', class: 'icon-btn upload-retry', 'aria-label': t('attach.retry_named', { name: item.name }), title: t('common.retry'), onclick: () => this.retry(item) },
          icon('refresh-cw'),
        ),
      );
    }
    const removeLabel = item.state === 'uploading' ? t('attach.cancel_named', { name: item.name }) : t('attach.remove_named', { name: item.name });
    buttons.push(h('button', { type: 'button', class: 'icon-btn upload-remove', 'aria-label': removeLabel, title: removeLabel, onclick: () => this.remove(item) }, icon('x')));
    const el = h(
      'li',
      { class: `upload-item ${item.state}`, dataset: { key: item.key, state: item.state } },
      thumb,
      h(
        'div',
        { class: 'upload-main' },
        h('span', { class: 'upload-name', title: item.name }, item.name),
        detail,
        item.state === 'uploading' ? h('progress', { max: 100, value: percent, 'aria-label': t('attach.progress_named', { name: item.name }) }) : null,
      ),
      buttons,
    );
    item.el = el;
    return el;
  }
}

/** The icon for a file of this type (a document, an archive, a sheet…). */
export function fileIconName(mime = '', name = '') {
  const ext = (name.match(/\.([a-z0-9]+)$/i)?.[1] ?? '').toLowerCase();
  if (mime.startsWith('image/')) return 'image';
  if (mime.startsWith('video/')) return 'file-video';
  if (mime.startsWith('audio/')) return 'file-audio';
  if (/zip|tar|gzip|x-7z|rar|compressed/.test(mime) || ['zip', 'tar', 'gz', 'tgz', '7z', 'rar', 'xz', 'bz2'].includes(ext)) return 'file-archive';
  if (/spreadsheet|excel|csv/.test(mime) || ['xls', 'xlsx', 'ods', 'csv', 'tsv'].includes(ext)) return 'file-spreadsheet';
  if (mime.startsWith('text/') || /pdf|document|msword|rtf|opendocument\.text/.test(mime) || ['pdf', 'doc', 'docx', 'odt', 'txt', 'md', 'rtf'].includes(ext)) {
    return 'file-text';
  }
  return 'file';
}
