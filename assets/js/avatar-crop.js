// The avatar crop: the picked image in a square frame, moved by dragging (or
// the arrow keys) and zoomed by the slider, the wheel or a pinch; the square
// in the frame becomes a PNG drawn on a canvas, which is what gets uploaded.
import { h } from './dom.js';
import { t } from './i18n.js';
import { openDialog } from './dialogs.js';

/** The side of the uploaded image (the server keeps at most 256×256). */
export const OUTPUT_SIDE = 256;
const MAX_ZOOM = 4;
const KEY_STEP = 10;

/** Loads `file` as an image; rejects if the browser cannot decode it. */
export function loadImage(file) {
  return new Promise((resolve, reject) => {
    const url = URL.createObjectURL(file);
    const img = new Image();
    img.onload = () => resolve({ img, url });
    img.onerror = () => {
      URL.revokeObjectURL(url);
      reject(new Error('undecodable'));
    };
    img.src = url;
  });
}

/**
 * Opens the crop dialog for a loaded image. Resolves to a square PNG Blob,
 * or null if the user cancels.
 */
export function cropDialog({ img, url }) {
  return new Promise((resolve) => {
    const w = img.naturalWidth;
    const h0 = img.naturalHeight;
    let side = 0; // the frame's size on screen, measured once shown
    let zoom = 1;
    let x = 0; // the image's top-left corner in the frame, in screen pixels
    let y = 0;
    let done = false;

    const picture = h('img', { src: url, alt: '', class: 'crop-image', draggable: 'false' });
    const stage = h(
      'div',
      { class: 'crop-stage', tabindex: '0', role: 'group', 'aria-roledescription': t('keys.avatar.crop_area'), 'aria-label': t('keys.avatar.crop_label'), 'aria-describedby': 'crop-hint' },
      picture,
      h('div', { class: 'crop-ring', 'aria-hidden': 'true' }),
    );
    const slider = h('input', { type: 'range', min: '1', max: String(MAX_ZOOM), step: '0.01', value: '1', id: 'crop-zoom' });
    const body = h(
      'div',
      { class: 'crop-body' },
      stage,
      h('label', { class: 'crop-zoom', for: 'crop-zoom' }, h('span', {}, t('keys.avatar.zoom')), slider),
      h('p', { class: 'hint', id: 'crop-hint' }, t('keys.avatar.crop_hint')),
    );
    const cancel = h('button', { type: 'button', class: 'btn', onclick: () => dialog.close() }, t('common.cancel'));
    const save = h('button', { type: 'button', class: 'btn primary', id: 'avatar-save' }, t('keys.avatar.save'));
    const dialog = openDialog({ title: t('keys.avatar.crop_title'), body, footer: [cancel, save], className: 'crop-dialog' });

    const scale = () => (Math.max(side / w, side / h0) || 1) * zoom;
    function clamp() {
      const s = scale();
      x = Math.min(0, Math.max(side - w * s, x));
      y = Math.min(0, Math.max(side - h0 * s, y));
    }
    function draw() {
      clamp();
      const s = scale();
      picture.style.width = `${w * s}px`;
      picture.style.height = `${h0 * s}px`;
      picture.style.transform = `translate(${x}px, ${y}px)`;
    }
    /** Zooms to `next`, keeping the point (px, py) of the frame where it is. */
    function zoomTo(next, px = side / 2, py = side / 2) {
      const before = scale();
      zoom = Math.min(MAX_ZOOM, Math.max(1, next));
      const after = scale();
      x = px - ((px - x) * after) / before;
      y = py - ((py - y) * after) / before;
      slider.value = String(zoom);
      draw();
    }
    function measure() {
      const previous = side;
      side = stage.clientWidth;
      if (!previous) {
        // Centred to start with.
        const s = scale();
        x = (side - w * s) / 2;
        y = (side - h0 * s) / 2;
      } else if (previous !== side) {
        x = (x * side) / previous;
        y = (y * side) / previous;
      }
      draw();
    }
    measure();
    const resize = new ResizeObserver(() => measure());
    resize.observe(stage);

    slider.addEventListener('input', () => zoomTo(Number(slider.value)));
    stage.addEventListener(
      'wheel',
      (event) => {
        event.preventDefault();
        const box = stage.getBoundingClientRect();
        zoomTo(zoom * Math.exp(-event.deltaY / 400), event.clientX - box.left, event.clientY - box.top);
      },
      { passive: false },
    );
    stage.addEventListener('keydown', (event) => {
      const moves = { ArrowLeft: [KEY_STEP, 0], ArrowRight: [-KEY_STEP, 0], ArrowUp: [0, KEY_STEP], ArrowDown: [0, -KEY_STEP] };
      if (moves[event.key]) {
        event.preventDefault();
        x += moves[event.key][0];
        y += moves[event.key][1];
        draw();
      } else if (event.key === '+' || event.key === '=') {
        event.preventDefault();
        zoomTo(zoom * 1.1);
      } else if (event.key === '-') {
        event.preventDefault();
        zoomTo(zoom / 1.1);
      }
    });

    // Dragging with one pointer, pinching with two.
    const pointers = new Map();
    let pinch = null;
    stage.addEventListener('pointerdown', (event) => {
      stage.setPointerCapture(event.pointerId);
      pointers.set(event.pointerId, { x: event.clientX, y: event.clientY });
      stage.classList.add('dragging');
      if (pointers.size === 2) {
        const [a, b] = [...pointers.values()];
        pinch = { distance: Math.hypot(a.x - b.x, a.y - b.y), zoom };
      }
    });
    stage.addEventListener('pointermove', (event) => {
      const last = pointers.get(event.pointerId);
      if (!last) return;
      const now = { x: event.clientX, y: event.clientY };
      pointers.set(event.pointerId, now);
      if (pointers.size === 2 && pinch) {
        const [a, b] = [...pointers.values()];
        const box = stage.getBoundingClientRect();
        zoomTo((pinch.zoom * Math.hypot(a.x - b.x, a.y - b.y)) / (pinch.distance || 1), (a.x + b.x) / 2 - box.left, (a.y + b.y) / 2 - box.top);
      } else if (pointers.size === 1) {
        x += now.x - last.x;
        y += now.y - last.y;
        draw();
      }
    });
    const lift = (event) => {
      pointers.delete(event.pointerId);
      if (pointers.size < 2) pinch = null;
      if (!pointers.size) stage.classList.remove('dragging');
    };
    stage.addEventListener('pointerup', lift);
    stage.addEventListener('pointercancel', lift);

    save.addEventListener('click', () => {
      const s = scale();
      const canvas = document.createElement('canvas');
      canvas.width = OUTPUT_SIDE;
      canvas.height = OUTPUT_SIDE;
      const context = canvas.getContext('2d');
      context.imageSmoothingQuality = 'high';
      context.drawImage(img, -x / s, -y / s, side / s, side / s, 0, 0, OUTPUT_SIDE, OUTPUT_SIDE);
      save.disabled = true;
      canvas.toBlob((blob) => {
        done = true;
        dialog.close();
        resolve(blob);
      }, 'image/png');
    });
    dialog.addEventListener('close', () => {
      resize.disconnect();
      URL.revokeObjectURL(url);
      if (!done) resolve(null);
    });
    stage.focus();
  });
}
