// The image viewer (loaded when first needed): a message's images one at a
// time at screen size (the 1280 px preview; the original when zoomed), ←/→
// and the arrow buttons (or a swipe) between them, Escape or the close
// button to leave, a download link. A modal <dialog>: focus stays inside and
// goes back to the picture that opened it.
import { h } from './dom.js';
import { t } from './i18n.js';
import { icon } from './icons.js';
import { trapTab } from './dialogs.js';
import { downloadUrl, localUrl } from './attachment-view.js';

const SWIPE_PX = 50;

/** Opens the viewer on images[index]; `opener` gets focus back when it closes. */
export function openLightbox(images, index, opener) {
  let at = Math.max(0, Math.min(images.length - 1, index));
  let zoomed = false;
  const several = images.length > 1;

  const counter = h('h2', { class: 'lb-counter', id: 'lightbox-title' });
  const name = h('p', { class: 'lb-name' });
  const zoom = h('button', { type: 'button', class: 'icon-btn lb-zoom', 'aria-pressed': 'false', onclick: () => setZoom(!zoomed) }, icon('zoom-in'));
  const download = h('a', { class: 'icon-btn lb-download' }, icon('download'));
  const close = h('button', { type: 'button', class: 'icon-btn lb-close', 'aria-label': t('common.close'), title: t('common.close'), onclick: () => dialog.close() }, icon('x'));
  const low = h('img', { class: 'lb-low', alt: '', 'aria-hidden': 'true' });
  const img = h('img', { class: 'lb-img', alt: '' });
  const stage = h('div', { class: 'lb-stage' }, low, img);
  const prev = h('button', { type: 'button', class: 'lb-nav lb-prev', 'aria-label': t('lightbox.prev'), title: t('lightbox.prev'), hidden: !several, onclick: () => go(-1) }, icon('chevron-left'));
  const next = h('button', { type: 'button', class: 'lb-nav lb-next', 'aria-label': t('lightbox.next'), title: t('lightbox.next'), hidden: !several, onclick: () => go(1) }, icon('chevron-right'));
  const dialog = h(
    'dialog',
    { class: 'lightbox', 'aria-labelledby': 'lightbox-title', 'aria-describedby': 'lightbox-name' },
    h('div', { class: 'lb-bar' }, h('div', { class: 'lb-title' }, counter, name), zoom, download, close),
    h('div', { class: 'lb-body' }, prev, stage, next),
  );
  name.id = 'lightbox-name';

  img.addEventListener('load', () => stage.classList.add('loaded'));
  img.addEventListener('click', () => setZoom(!zoomed));

  function show() {
    const image = images[at];
    stage.classList.remove('loaded');
    counter.textContent = several ? t('lightbox.counter', { index: at + 1, count: images.length }) : t('lightbox.label');
    name.textContent = image.name;
    img.alt = image.name;
    low.src = localUrl(image.thumbnail_url) ?? '';
    // An animated picture moves only in the original; its preview is a still.
    const src = zoomed || image.animated ? localUrl(image.url) : localUrl(image.preview_url) ?? localUrl(image.url);
    if (image.width && image.height) {
      img.width = image.width;
      img.height = image.height;
    } else {
      img.removeAttribute('width');
      img.removeAttribute('height');
    }
    if (src && img.getAttribute('src') !== src) img.src = src;
    else if (img.complete && img.naturalWidth) stage.classList.add('loaded');
    const link = downloadUrl(image);
    if (link) {
      download.href = link;
      download.setAttribute('download', image.name);
    }
    const label = t('attach.download_named', { name: image.name });
    download.setAttribute('aria-label', label);
    download.title = label;
    prev.disabled = at === 0;
    next.disabled = at === images.length - 1;
  }

  function go(step) {
    const to = at + step;
    if (to < 0 || to >= images.length) return;
    at = to;
    if (zoomed) setZoom(false, false);
    show();
  }

  function setZoom(on, redraw = true) {
    zoomed = on;
    dialog.classList.toggle('zoomed', on);
    zoom.setAttribute('aria-pressed', String(on));
    const label = on ? t('lightbox.zoom_out') : t('lightbox.zoom_in');
    zoom.setAttribute('aria-label', label);
    zoom.title = label;
    zoom.replaceChildren(icon(on ? 'zoom-out' : 'zoom-in'));
    if (redraw) show();
  }

  dialog.addEventListener('keydown', (event) => {
    trapTab(dialog, event);
    if (event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === 'ArrowLeft' || event.key === 'ArrowRight') {
      // A zoomed picture scrolls with the arrows; otherwise they page.
      if (zoomed) return;
      event.preventDefault();
      go(event.key === 'ArrowLeft' ? -1 : 1);
    }
  });
  let swipeFrom = null;
  stage.addEventListener('pointerdown', (event) => {
    if (!zoomed) swipeFrom = { x: event.clientX, y: event.clientY };
  });
  stage.addEventListener('pointerup', (event) => {
    if (!swipeFrom) return;
    const dx = event.clientX - swipeFrom.x;
    const dy = event.clientY - swipeFrom.y;
    swipeFrom = null;
    if (Math.abs(dx) > SWIPE_PX && Math.abs(dx) > Math.abs(dy)) go(dx < 0 ? 1 : -1);
  });
  // A click beside the picture (on the dark backdrop) closes, as in other dialogs.
  dialog.addEventListener('click', (event) => {
    if (event.target === dialog || event.target === stage) dialog.close();
  });
  dialog.addEventListener('close', () => {
    dialog.remove();
    if (opener?.isConnected) opener.focus();
  });

  setZoom(false, false);
  show();
  document.body.append(dialog);
  dialog.showModal();
  close.focus();
  return dialog;
}
