// What a message carries, as the timeline shows it: images at their aspect
// ratio in a box reserved before anything loads (the placeholder, blurred,
// until the thumbnail is there: nothing below moves), several as a grid;
// videos with native controls; voice messages with their waveform; anything
// else as a card with the file's type, name, size and a download link.
import { h } from './dom.js';
import { t } from './i18n.js';
import { icon } from './icons.js';
import { attachmentsOf, formatBytes, formatDuration } from './format.js';
import { voicePlayer } from './voice.js';
import { fileIconName } from './uploads.js';

const BOX_MAX = 320;
const BOX_MIN_W = 120;
const BOX_MIN_H = 80;

/** A URL of this server (the API's own paths), never anything a message could smuggle in. */
export function localUrl(url) {
  return typeof url === 'string' && url.startsWith('/') && !url.startsWith('//') ? url : null;
}

/** The attachment's URL that downloads it under its name. */
export function downloadUrl(attachment) {
  const url = localUrl(attachment.url);
  if (!url) return null;
  return `${url}${url.includes('?') ? '&' : '?'}download=1`;
}

/** A tiny inline image, the only kind of placeholder shown. */
function placeholderOf(attachment) {
  const value = attachment.placeholder;
  return typeof value === 'string' && /^data:image\/(png|jpeg|webp|gif);base64,[A-Za-z0-9+/=]+$/.test(value) ? value : null;
}

/** The box a lone image (or video) is drawn in: its aspect ratio, within BOX_MAX, never tiny. */
export function boxSize(width, height) {
  if (!(width > 0 && height > 0)) return { width: 240, height: 180 };
  const scale = Math.min(1, BOX_MAX / width, BOX_MAX / height);
  return {
    width: Math.round(Math.min(BOX_MAX, Math.max(BOX_MIN_W, width * scale))),
    height: Math.round(Math.min(BOX_MAX, Math.max(BOX_MIN_H, height * scale))),
  };
}

function sized(el, { width, height }) {
  // Through the CSSOM: the page's CSP allows no style attributes.
  el.style.width = `${width}px`;
  el.style.aspectRatio = `${width} / ${height}`;
  return el;
}

/** One image: a button that opens the lightbox, the placeholder under the thumbnail. */
function imageTile(attachment, onOpen) {
  const tile = h('button', { type: 'button', class: 'att-image', 'aria-label': t('attach.open_image', { name: attachment.name }), title: attachment.name, onclick: onOpen });
  const placeholder = placeholderOf(attachment);
  if (placeholder) tile.append(h('img', { class: 'att-ph', src: placeholder, alt: '', 'aria-hidden': 'true' }));
  const thumb = h('img', { class: 'att-thumb', alt: '', decoding: 'async', width: attachment.width ?? null, height: attachment.height ?? null });
  thumb.addEventListener('load', () => tile.classList.add('loaded'), { once: true });
  thumb.addEventListener('error', () => tile.classList.add('failed'), { once: true });
  const src = localUrl(attachment.thumbnail_url) ?? localUrl(attachment.url);
  if (src) thumb.src = src;
  tile.append(thumb);
  if (attachment.animated) tile.append(h('span', { class: 'att-badge', 'aria-hidden': 'true' }, 'GIF'));
  return tile;
}

function imagesView(images, onOpenImage) {
  if (images.length === 1) {
    const tile = sized(imageTile(images[0], () => onOpenImage(images, 0, tile)), boxSize(images[0].width, images[0].height));
    return h('div', { class: 'att-images single' }, tile);
  }
  const columns = images.length === 2 || images.length === 4 ? 2 : 3;
  return h(
    'div',
    { class: `att-images grid cols-${columns}`, role: 'group', 'aria-label': t('attach.photos_group', { n: images.length }) },
    images.map((image, i) => {
      const tile = imageTile(image, () => onOpenImage(images, i, tile));
      return tile;
    }),
  );
}

function videoView(attachment) {
  const src = localUrl(attachment.url);
  const video = h('video', {
    class: 'att-video-el',
    controls: true,
    preload: 'metadata',
    playsinline: true,
    'aria-label': t('attach.video_named', { name: attachment.name }),
    poster: localUrl(attachment.thumbnail_url),
  });
  if (src) video.src = src;
  const box = sized(
    h('div', { class: attachment.thumbnail_url ? 'att-video' : 'att-video no-poster' }, h('span', { class: 'att-video-mark', 'aria-hidden': 'true' }, icon('play')), video),
    boxSize(attachment.width, attachment.height),
  );
  video.addEventListener('loadeddata', () => box.classList.add('loaded'), { once: true });
  video.addEventListener('play', () => box.classList.add('loaded'), { once: true });
  const meta = [attachment.duration_ms ? formatDuration(attachment.duration_ms) : null, formatBytes(attachment.size)].filter(Boolean).join(' · ');
  const link = downloadUrl(attachment);
  return h(
    'div',
    { class: 'att-video-wrap' },
    box,
    h(
      'div',
      { class: 'att-video-meta' },
      h('span', {}, meta),
      link ? h('a', { href: link, download: attachment.name, class: 'att-download-link', 'aria-label': t('attach.download_named', { name: attachment.name }), title: t('attach.download') }, icon('download')) : null,
    ),
  );
}

function fileCard(attachment) {
  const link = downloadUrl(attachment);
  return h(
    link ? 'a' : 'div',
    {
      class: 'att-file',
      href: link,
      download: link ? attachment.name : null,
      title: attachment.name,
    },
    h('span', { class: 'att-file-icon', 'aria-hidden': 'true' }, icon(fileIconName(attachment.mime, attachment.name))),
    h('span', { class: 'att-file-main' }, h('span', { class: 'att-file-name' }, attachment.name), h('span', { class: 'att-file-size' }, formatBytes(attachment.size))),
    link ? h('span', { class: 'att-file-get' }, icon('download'), h('span', { class: 'sr-only' }, t('attach.download'))) : null,
  );
}

/**
 * The attachments of `message` as nodes for its bubble (null without any).
 * `onOpenImage(images, index, opener)` shows the lightbox.
 */
export function attachmentsView(message, { onOpenImage }) {
  const attachments = attachmentsOf(message);
  if (!attachments.length) return null;
  const images = attachments.filter((a) => a.kind === 'image');
  const parts = [];
  if (images.length) parts.push(imagesView(images, onOpenImage));
  for (const attachment of attachments) {
    if (attachment.kind === 'video') parts.push(videoView(attachment));
    else if (attachment.kind === 'voice') {
      parts.push(voicePlayer({ key: attachment.id, src: localUrl(attachment.url) ?? '', durationMs: attachment.duration_ms ?? 0, waveform: attachment.waveform }));
    } else if (attachment.kind !== 'image') parts.push(fileCard(attachment));
  }
  return h('div', { class: 'attachments' }, parts);
}

/** Whether the message is pictures or videos only, drawn without a bubble around them. */
export function mediaOnly(message) {
  const attachments = attachmentsOf(message);
  return attachments.length > 0 && !(message.content ?? '').trim() && attachments.every((a) => a.kind === 'image' || a.kind === 'video');
}
