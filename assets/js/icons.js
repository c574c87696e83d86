// The app's icons: symbols of one SVG sprite (img/icons.svg, Lucide, ISC
// licence), drawn in the text colour. An icon is decoration: the button or
// link that holds it carries the accessible name and a tooltip.

const SPRITE = new URL('../img/icons.svg', import.meta.url).pathname;
const SVG = 'http://www.w3.org/2000/svg';

/** <svg class="icon"><use href="…#name"/></svg>, hidden from assistive technology. */
export function icon(name, className = '') {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('class', className ? `icon ${className}` : 'icon');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('focusable', 'false');
  const use = document.createElementNS(SVG, 'use');
  use.setAttribute('href', `${SPRITE}#${name}`);
  svg.append(use);
  return svg;
}
